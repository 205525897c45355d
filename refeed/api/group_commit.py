"""Group commit: feedback writes that arrive together share one transaction.

Each request thread hands its records to one writer thread and waits; the writer takes everything
queued (up to ``max_batch`` records), writes it with one ``Store.write_batch`` (one commit), and
answers each request with its own ids. If the shared write fails (a bad reference, an idempotency
conflict), the group is written again one request at a time, so each request gets its own outcome
and no request's error touches another's data. A request is answered only after its commit.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from refeed.store import Store, StoreError


class GroupWriter:
    def __init__(self, store: Store, max_batch: int = 512):
        self.store, self.max_batch = store, max_batch
        self.pending: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="refeed-group-commit", daemon=True).start()

    def write(self, items: list[dict], project: str) -> list[str]:
        """Write ``items`` (as ``Store.write_batch`` takes them) and return their ids, after the commit."""
        done: Future = Future()
        self.pending.put((items, project, done))
        return done.result()

    def _run(self) -> None:
        while True:
            group = [self.pending.get()]
            size = len(group[0][0])
            while size < self.max_batch:
                try:
                    entry = self.pending.get_nowait()
                except queue.Empty:
                    break
                group.append(entry)
                size += len(entry[0])
            for project in {p for _, p, _ in group}:
                self._commit([e for e in group if e[1] == project], project)

    def _commit(self, group, project: str) -> None:
        if len(group) > 1:
            try:
                ids = self.store.write_batch([item for items, _, _ in group for item in items], project=project)
            except StoreError:
                pass  # somebody's record is bad: fall through and write one request at a time
            except Exception as e:  # noqa: BLE001 - a database failure answers every waiting request
                for _, _, done in group:
                    done.set_exception(e)
                return
            else:
                start = 0
                for items, _, done in group:
                    done.set_result(ids[start : start + len(items)])
                    start += len(items)
                return
        for items, _, done in group:
            try:
                done.set_result(self.store.write_batch(items, project=project))
            except Exception as e:  # noqa: BLE001 - handed to the request that sent it
                done.set_exception(e)
