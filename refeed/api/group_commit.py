"""Group commit: feedback writes that arrive together share one transaction.

A request hands its records to the writer and awaits a future on the event loop. While one group
is being written (``Store.write_batch`` in a worker thread: one commit), newly arriving requests
queue up; when the write returns, everything queued (up to ``max_batch`` records) becomes the next
group. Under light load a group is one request and nothing waits; under heavy load one commit
serves hundreds of requests. This is why the write path is fast: the commit (an fsync on
PostgreSQL, a WAL append on SQLite) and the thread hand-off are paid once per group, not once per
request, and no request thread ever blocks waiting for another (thread hand-offs under the GIL
cost milliseconds each).

SQLite has one writer at a time, so one group is in flight; PostgreSQL takes concurrent writers, so
up to ``parallel`` (2) groups are written at once: one commit waits on its WAL flush while the next
group is being inserted. Four at once (the first setting) made the groups smaller for no gain: a
group costs five or six round trips (six when an author is new to the process) and a millisecond
of Python whatever its size, and each round trip's reply waits for the GIL while the event loop is busy. Two (together with pinging only idle
pooled connections, ``refeed/store/engine.py``) gave larger groups (about 5 requests per transaction
at 16 in flight), 0.05 to 0.4 ms less server CPU per request and a lower p99 at 32 in flight, in
alternating runs of ``bench/serve_load.py`` against the old code.

If the shared write fails for any reason but the database being unavailable (a bad reference, an
idempotency conflict, a value the database refused although ``refeed.store.checks`` let it through),
the group is written again one request at a time, so each request gets its own outcome and no
request's error touches another's data. When the database is down, every request of the group is
answered 503 (``Unavailable``) at once. A request is answered only after its own commit.
"""

from __future__ import annotations

import asyncio
import dataclasses

from refeed.store import Store
from refeed.store.errors import Unavailable
from refeed.types import Feedback


def _fresh(items: list) -> list:
    """Copies of the records for one write attempt: the store fills in an edit's payload and targets,
    and a failed group attempt must not leave that behind for the next one."""
    return [
        dataclasses.replace(i, payload=dict(i.payload), targets=list(i.targets))
        if isinstance(i, Feedback)
        else i
        for i in items
    ]


class GroupWriter:
    """Batches concurrent ``write`` calls of one event loop into shared ``Store.write_batch`` calls."""

    def __init__(self, store: Store, max_batch: int = 512, parallel: int | None = None):
        self.store, self.max_batch = store, max_batch
        self.parallel = parallel or (1 if store.engine.dialect.name == "sqlite" else 2)
        self.pending: list[tuple[list, str, asyncio.Future]] = []
        self.flushing = 0  # groups being written now

    async def write(self, items: list[dict], project: str) -> list[str]:
        """Write ``items`` (as ``Store.write_batch`` takes them); return their ids once committed."""
        done = asyncio.get_running_loop().create_future()
        self.pending.append((items, project, done))
        if self.flushing < self.parallel:
            self.flushing += 1
            asyncio.get_running_loop().create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        try:
            while self.pending:
                group, size = [], 0
                while self.pending and (not group or size + len(self.pending[0][0]) <= self.max_batch):
                    entry = self.pending.pop(0)
                    group.append(entry)
                    size += len(entry[0])
                outcomes = await asyncio.to_thread(self._commit_all, [(i, p) for i, p, _ in group])
                for (_, _, done), (ok, value) in zip(group, outcomes, strict=True):
                    if done.cancelled():
                        continue  # the client went away; its records are committed all the same
                    done.set_result(value) if ok else done.set_exception(value)
        finally:
            self.flushing -= 1

    def _commit_all(self, group: list[tuple[list, str]]) -> list[tuple[bool, object]]:
        """(ok, ids or exception) per request, in order; runs in a worker thread."""
        out: list = [None] * len(group)
        for project in dict.fromkeys(p for _, p in group):
            idx = [n for n, (_, p) in enumerate(group) if p == project]
            for n, outcome in zip(idx, self._commit([group[n][0] for n in idx], project), strict=True):
                out[n] = outcome
        return out

    def _commit(self, requests: list[list], project: str) -> list[tuple[bool, object]]:
        if len(requests) > 1:
            try:
                ids = self.store.write_batch(
                    _fresh([i for items in requests for i in items]), project=project
                )
            except Unavailable as e:  # the database is down: every waiting request gets the 503
                return [(False, e)] * len(requests)
            except Exception:  # noqa: BLE001 - somebody's record is bad: write one request at a time
                pass
            else:
                out, start = [], 0
                for items in requests:
                    out.append((True, ids[start : start + len(items)]))
                    start += len(items)
                return out
        out = []
        for items in requests:
            try:
                out.append((True, self.store.write_batch(_fresh(items), project=project)))
            except Exception as e:  # noqa: BLE001 - handed to the request that sent it
                out.append((False, e))
        return out
