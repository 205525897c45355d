"""A headless Chromium (Debian's ``chromium`` package, installed by ``make test``) driven by Playwright."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.api.conftest import model_server, server  # noqa: F401  (real servers: no model / the tiny model)
from tests.store.conftest import store, store_url  # noqa: F401  (store tests on both backends)

try:  # the PostgreSQL server fixture lives in tests/store/conftest.py, or in tests/conftest.py (then shared)
    from tests.store.conftest import pg_server_url  # noqa: F401
except ImportError:
    pass

# Quiet and offline: no sandbox (containers), no GPU, no background fetches or updates.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]  # fmt: skip


def chromium_path() -> str | None:
    return os.environ.get("REFEED_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")  # module: sync_playwright runs an event loop in the thread while open, which breaks asyncio.run in later files of the same xdist worker
def browser():
    exe = chromium_path()
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the browser tests need Chromium (apt-get install chromium); CI skips nothing")
        pytest.skip("Chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()
