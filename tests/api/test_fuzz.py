"""Schemathesis fuzzes every operation of the published OpenAPI spec against a real server: no 5xx, and
no invalid payload accepted (negative data must get a 4xx)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import free_port, make_keys, start_server


@pytest.mark.slow
def test_openapi_fuzz_finds_no_server_error_and_no_accepted_invalid_payload(tmp_path, tiny_model_dir):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    keys = make_keys(url)
    port = free_port()
    proc = start_server(tiny_model_dir, url, port)
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe, "schemathesis is part of the dev extra"
    try:
        res = subprocess.run(
            [
                exe,
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "-H",
                f"Authorization: Bearer {keys['admin']}",
                "--checks",
                "not_a_server_error,negative_data_rejection",
                "--mode",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--request-timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=400,
            cwd=tmp_path,
        )  # its cache stays out of the repo
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert res.returncode == 0, res.stdout[-4000:]
    assert " passed" in res.stdout
