"""Four processes writing to one SQLite file at once lose no write and never see "database is locked"."""

from __future__ import annotations

import multiprocessing as mp

from refeed.store import Store

WRITERS, BATCHES, PER_BATCH = 4, 15, 20


def _writer(url: str, n: int, errors) -> None:
    try:
        store = Store(url)
        for b in range(BATCHES):
            items = []
            for k in range(PER_BATCH):
                key = f"w{n}-b{b}-k{k}"
                items.append(
                    {
                        "type": "interaction",
                        "messages": [{"role": "user", "content": key}],
                        "completion": "x",
                        "idempotency_key": key,
                    }
                )
            store.write_batch(items)
            i = store.log([{"role": "user", "content": f"single {n} {b}"}], "y")
            store.feedback(i, "thumbs", up=bool(b % 2), idempotency_key=f"f{n}-{b}")
    except Exception as e:  # report anything, "database is locked" included
        errors.put(f"writer {n}: {type(e).__name__}: {e}")


def test_four_processes_lose_no_write(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Store(url).close()  # schema first, so the writers race on data, not on migrations
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, n, errors)) for n in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found
    assert all(p.exitcode == 0 for p in procs)
    stats = Store(url).stats()
    assert stats["interactions"] == WRITERS * BATCHES * (PER_BATCH + 1)
    assert stats["feedback"] == WRITERS * BATCHES
