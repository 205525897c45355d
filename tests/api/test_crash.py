"""Clients keep sending feedback while the server is SIGKILLed and restarted, on SQLite and on PostgreSQL:
every feedback that got a 2xx is in the store, and none twice (each client retries with the same
idempotency key until it gets an answer; a retry of a request whose commit landed before the kill is
answered 200, replayed)."""

from __future__ import annotations

import threading

import pytest

from refeed.store import Store
from tests.api.conftest import free_port, make_keys, start_server
from tests.api.faults import keep_writing, kill_twice
from tests.conftest import fresh_pg_database

CLIENTS, PER_CLIENT = 4, 60


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_feedback_survives_sigkill(backend, request, tmp_path):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'feedback.db'}"
    else:
        url = fresh_pg_database(request.getfixturevalue("pg_server_url"))
    keys = make_keys(url)
    iid = Store(url).log([{"role": "user", "content": "q"}], "a")
    port = free_port()
    proc = start_server(None, url, port)
    acked, codes = {}, []
    threads = [threading.Thread(target=keep_writing, args=(f"http://127.0.0.1:{port}", keys["feedback"], iid,
                                                           f"crash-{c}", PER_CLIENT, acked, codes))
               for c in range(CLIENTS)]  # fmt: skip
    for t in threads:
        t.start()
    proc = kill_twice(proc, acked, threads, lambda: start_server(None, url, port))  # same port each time
    for t in threads:
        t.join(timeout=300)
    proc.terminate()
    proc.wait(timeout=20)
    assert len(acked) == CLIENTS * PER_CLIENT and len(codes) > len(acked)  # some failed and were retried
    assert all(c in (200, 201, "transport") for c in codes), sorted({str(c) for c in codes})
    rows = list(Store(url).iter_feedback(kinds=["critique"]))
    assert sorted(f.idempotency_key for f in rows) == sorted(acked)  # every ack stored, none twice
    assert {f.idempotency_key: f.id for f in rows} == acked
