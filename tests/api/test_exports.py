"""Exports leave nothing behind (issue 11, hardening 5): ``/v1/export`` and every ``/v1/datasets/*`` stream
their JSONL; the server's ``$TMPDIR`` (a fresh directory here) is as empty after the calls as before."""

from __future__ import annotations

import json

import httpx

from refeed.api.routes.data import DATASETS
from refeed.store import Store
from tests.api.conftest import free_port, make_keys, start_server


def test_exports_stream_and_leave_no_file_in_tmpdir(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    keys = make_keys(url)
    store = Store(url)
    a = store.log([{"role": "user", "content": "2+2?"}], "4")
    b = store.log([{"role": "user", "content": "2+2?"}], "5")
    store.feedback(a, "preference", rejected=b)
    store.feedback(b, "critique", text="wrong")
    store.close()
    tmp = tmp_path / "server-tmp"
    tmp.mkdir()
    port = free_port()
    proc = start_server(None, url, port, env={"TMPDIR": str(tmp)})
    try:
        before = sorted(p.name for p in tmp.iterdir())
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {keys['admin']}"},
                          timeout=60) as c:  # fmt: skip
            export = c.get("/v1/export")
            assert export.status_code == 200 and export.headers["content-type"].startswith("application/jsonl")
            lines = [json.loads(line) for line in export.text.splitlines()]
            assert {x["id"] for x in lines if x["type"] == "interaction"} == {a, b}
            pairs = c.get("/v1/datasets/pairs")
            assert pairs.status_code == 200 and json.loads(pairs.text.splitlines()[0])["chosen"]
            for kind in DATASETS:
                assert c.get(f"/v1/datasets/{kind}").status_code == 200, kind
        assert sorted(p.name for p in tmp.iterdir()) == before
    finally:
        proc.terminate()
        proc.wait(timeout=20)
