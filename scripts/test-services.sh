#!/usr/bin/env bash
# Start what the test suite needs beyond Python (nothing yet), then run the given command.
# Later services (PostgreSQL, Chromium) are started here so that `make test` stays one command.
set -euo pipefail
exec "$@"
