"""``--local`` and keys (issue 11, hardening 7): any bearer key works in local mode (the official openai
client always sends one), the Host header is checked (DNS rebinding), the SQLite file is created 0600,
and ``--init-admin-key`` makes a key only when the project has none."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import openai
import pytest

from refeed.store import Store
from tests.api.conftest import free_port, start_server


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    db = tmp_path_factory.mktemp("local") / "feedback.db"
    port = free_port()
    proc = start_server(None, f"sqlite:///{db}", port, "--local")
    yield f"http://127.0.0.1:{port}", db
    proc.terminate()
    proc.wait(timeout=20)


def test_the_openai_client_works_against_local_mode_with_any_key(local_server):
    base, _ = local_server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-anything-at-all", max_retries=0)
    assert [m.id for m in client.models.list().data]  # 401 before: every key was checked
    with httpx.Client(base_url=base, headers={"Authorization": "Bearer not-a-refeed-key"}) as c:
        r = c.post("/v1/interactions", json={"messages": [{"role": "user", "content": "q"}], "completion": "a"})
        assert r.status_code == 201, r.text
        assert c.post("/v1/feedback", json={"kind": "thumbs", "interaction_id": r.json()["id"],
                                            "up": True}).status_code == 201  # fmt: skip
        assert c.get("/v1/whoami").json() == {"project": "default", "role": "admin"}


def test_a_foreign_host_header_is_refused(local_server):
    base, _ = local_server
    port = base.rsplit(":", 1)[1]
    with httpx.Client(base_url=base) as c:
        r = c.get("/v1/export", headers={"Host": "attacker.example"})
        assert r.status_code == 400 and "--allowed-host" in r.text, r.text
        assert c.get("/v1/export", headers={"Host": f"attacker.example:{port}"}).status_code == 400
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
            assert c.get("/v1/export", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_and_the_body_limit_are_configurable(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    key = Store(url).create_api_key("default", "admin")
    port = free_port()
    proc = start_server(None, url, port, "--allowed-host", "refeed.internal", env={"REFEED_MAX_BODY_BYTES": "4096"})
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as c:
            assert c.get("/v1/whoami", headers={"Host": "refeed.internal:8080"}).status_code == 200
            assert c.get("/v1/whoami", headers={"Host": "attacker.example"}).status_code == 400
            assert c.get("/v1/whoami").status_code == 200  # 127.0.0.1 always
            big = {"kind": "principle", "text": "x" * 5000}  # the body limit is configurable: 4 kB here
            r = c.post("/v1/feedback", json=big)
            assert r.status_code == 413 and "REFEED_MAX_BODY_BYTES" in r.text, r.text
            assert c.post("/v1/feedback", json={**big, "text": "x" * 3000}).status_code == 201
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_database_file_is_private(local_server):
    _, db = local_server
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    for side in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        if side.exists():
            assert stat.S_IMODE(os.stat(side).st_mode) & 0o077 == 0, side


@pytest.mark.slow  # two server starts
def test_init_admin_key_creates_one_only_when_none_exists(tmp_path):
    url = f"sqlite:///{tmp_path / 'f.db'}"
    logs = []
    for _ in range(2):
        port = free_port()
        proc = start_server(None, url, port, "--init-admin-key")
        proc.terminate()
        proc.wait(timeout=20)
        logs.append(Path(proc.log_path).read_text())
    assert "admin key for project 'default' (shown once): rf_" in logs[0]
    assert "already has an admin key; none created" in logs[1] and "rf_" not in logs[1]
    store = Store(url)
    assert [k["role"] for k in store.list_api_keys("default")] == ["admin"]
    store.close()
