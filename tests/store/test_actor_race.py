"""Concurrent first feedback of a new author: every write lands (the actor row is created once).

Two transactions that both find no actor for (project, author) both insert one; the second breaks
the actor fingerprint's unique index. That is a race, not bad input: the write retries and finds the
first transaction's actor, as it does for idempotency keys.
"""

from __future__ import annotations

import threading

from refeed.store import Store


def test_new_authors_writing_at_once_all_land(store_url):
    stores = [Store(store_url) for _ in range(4)]
    iid = stores[0].log([{"role": "user", "content": "q"}], "a")
    errors, ids = [], []
    for round_ in range(8):
        barrier = threading.Barrier(len(stores))

        def write(s, n, author=f"new-author-{round_}", barrier=barrier):
            barrier.wait()
            try:
                ids.append(s.feedback(iid, "rating", score=n % 5 + 1, scale=(1, 5), author=author))
            except Exception as e:  # noqa: BLE001 - the test reports every failure
                errors.append(repr(e))

        threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert len(set(ids)) == 8 * len(stores)
    assert stores[0].stats()["feedback_by_kind"] == {"rating": 8 * len(stores)}
    for s in stores:
        s.close()


def test_only_committed_actors_are_remembered(store_url):
    """An actor created by a transaction that rolls back is not reused: the next write creates it again."""
    from sqlalchemy import func, select

    from refeed.store import records, writer
    from refeed.store.tables import Actor

    store = Store(store_url)
    iid = store.log([{"role": "user", "content": "q"}], "a")
    pid = store._pid(None)
    fb = records.feedback_record(iid, "rating", source="human", author="rolled-back", idempotency_key=None,
                                 fields={"score": 1, "scale": (1, 5)})
    learned: dict = {}
    with store._writes.connect() as conn:
        tx = conn.begin()
        writer._write(conn, pid, [fb], learned)
        tx.rollback()
    assert learned and not set(learned) & set(writer._ACTOR_IDS.get(store._writes, {}))
    store.feedback(iid, "rating", score=2, scale=(1, 5), author="rolled-back")
    store.feedback(iid, "rating", score=3, scale=(1, 5), author="rolled-back")  # the cached actor
    with store._writes.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Actor).where(Actor.external_id == "rolled-back")).scalar() == 1
    store.close()


def test_a_pooled_postgresql_connection_killed_while_idle_is_replaced(store_url):
    """Connections are pinged only after sitting idle (no ping per write under load): one the server
    closed while it sat in the pool is found dead at checkout and replaced, so the write succeeds."""
    if not store_url.startswith("postgresql"):
        return  # SQLite has no server to lose a connection to
    import time

    from sqlalchemy import create_engine, text

    from refeed.store.engine import PING_AFTER_IDLE_S

    store = Store(store_url)
    iid = store.log([{"role": "user", "content": "q"}], "a")  # the pool now holds a live connection
    killer = create_engine(store_url)
    with killer.connect() as conn:
        killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    killer.dispose()
    assert killed >= 1
    time.sleep(PING_AFTER_IDLE_S + 0.2)
    assert store.feedback(iid, "thumbs", up=True)  # no error reaches the caller
    store.close()
