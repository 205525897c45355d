"""Mean and spread of the demo's held-out gain over seeds (the figure in the README).

    .venv/bin/python bench/demo_seeds.py --seeds 0 1 2

Each seed changes everything random: the base model's pretraining, sampling and DPO. Runs
`refeed demo --json` as a user would, one process per seed, and prints one JSON line per seed and
a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="bench/results/demo_seeds.json", help="where the summary JSON goes")
    ap.add_argument("overrides", nargs="*", help="extra dotted overrides passed to refeed demo")
    args = ap.parse_args()
    results = []
    for seed in args.seeds:
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "refeed", "demo", "--json", f"seed={seed}", f"pretrain.seed={seed}", *args.overrides]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        summary = json.loads(out.strip().splitlines()[-1])
        summary["wall_seconds"] = time.perf_counter() - t
        results.append(summary)
        keep = ("seed", "accuracy_before", "accuracy_after", "accuracy_gain", "pairs", "seconds", "wall_seconds")
        print(json.dumps({k: summary[k] for k in keep}), flush=True)
    gains = [r["accuracy_gain"] for r in results]
    summary = {
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "seeds": args.seeds,
        "gain_mean": statistics.mean(gains),
        "gain_std": statistics.stdev(gains) if len(gains) > 1 else 0.0,
        "gain_min": min(gains),
        "before_mean": statistics.mean(r["accuracy_before"] for r in results),
        "after_mean": statistics.mean(r["accuracy_after"] for r in results),
        "seconds_mean": statistics.mean(r["seconds"] for r in results),
        "load_average_1m_at_end": os.getloadavg()[0],
        "runs": results,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
