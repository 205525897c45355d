"""DPO throughput and peak memory: refeed's loop against TRL's DPOTrainer, side by side in one run.

    .venv/bin/pip install -e ".[bench]"        # TRL is a benchmark extra only, never a runtime dependency
    .venv/bin/python bench/dpo_vs_trl.py       # CPU; --steps, --batch, --repeats to change the load

Both train the same tiny model (written once, loaded through from_pretrained), on the same pairs (the
arithmetic task: the correct answer over a wrong one), with the same batch size, sequence limit,
optimizer settings, beta and number of steps, with reference log-probs precomputed once (refeed always
does; TRL with ``precompute_ref_log_probs=True``). Each run is its own subprocess, alternating refeed /
TRL ``--repeats`` times; time covers reference pass + training; memory is the subprocess's peak RSS
(``ru_maxrss``), which includes the Python, torch and library baseline of each. Writes
bench/results/dpo_vs_trl.json with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pairs(n: int) -> list[dict]:
    from refeed.tasks import SplitSizes, get_task

    task = get_task("arithmetic", levels=(1, 2), seed=0, sizes=SplitSizes(n, 10, 10))
    rows = []
    for ex in task.examples("train"):
        wrong = str(int(ex.answer) + 1)
        rows.append({"prompt": list(ex.messages), "chosen": [{"role": "assistant", "content": ex.answer}],
                     "rejected": [{"role": "assistant", "content": wrong}]})
    return rows


def _run_refeed(model_dir: str, rows: list[dict], a) -> float:
    from refeed.models import load
    from refeed.objectives import build
    from refeed.train.loop import Schedule, TrainConfig, train

    model, tok = load(model_dir)
    cfg = TrainConfig(lr=a.lr, batch_size=a.batch, max_steps=a.steps, warmup_ratio=0.0, schedule=Schedule.CONSTANT,
                      max_length=a.max_length, seed=0, max_grad_norm=1.0)
    t = time.perf_counter()
    train(model, tok, rows, build("dpo", {"beta": a.beta}), cfg)
    return time.perf_counter() - t


def _run_trl(model_dir: str, rows: list[dict], a) -> float:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from refeed.models import load

    model, tok = load(model_dir)
    with tempfile.TemporaryDirectory() as out:
        cfg = DPOConfig(output_dir=out, per_device_train_batch_size=a.batch, max_steps=a.steps, learning_rate=a.lr,
                        lr_scheduler_type="constant", warmup_steps=0, beta=a.beta, max_length=a.max_length,
                        precompute_ref_log_probs=True, precompute_ref_batch_size=a.batch, report_to="none",
                        save_strategy="no", logging_steps=10_000, use_cpu=True, seed=0, max_grad_norm=1.0,
                        dataloader_num_workers=0, disable_tqdm=True)
        trainer = DPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok)
        t = time.perf_counter()
        trainer.train()
        return time.perf_counter() - t


def child(which: str, model_dir: str, a) -> None:
    rows = _pairs(a.steps * a.batch)
    seconds = (_run_refeed if which == "refeed" else _run_trl)(model_dir, rows, a)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"which": which, "seconds": seconds, "pairs_per_s": a.steps * a.batch / seconds,
                      "peak_rss_mib": peak_mib}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", choices=["refeed", "trl"])
    ap.add_argument("--model-dir")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.model_dir, a)
        return
    from refeed.models.tiny import write_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(write_tiny_model(Path(tmp) / "tiny"))
        runs = {"refeed": [], "trl": []}
        for _ in range(a.repeats):
            for which in ("refeed", "trl"):
                cmd = [sys.executable, __file__, "--child", which, "--model-dir", model_dir, "--steps", str(a.steps),
                       "--batch", str(a.batch), "--max-length", str(a.max_length), "--lr", str(a.lr),
                       "--beta", str(a.beta)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
                if out.returncode:
                    sys.exit(f"{which} failed:\n{out.stderr[-3000:]}")
                runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(runs[which][-1]), flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("pairs_per_s", "peak_rss_mib")} for k, v in runs.items()}
    import trl

    result = {
        "refeed_pairs_per_s": round(med["refeed"]["pairs_per_s"], 1), "trl_pairs_per_s": round(med["trl"]["pairs_per_s"], 1),
        "throughput_ratio": round(med["refeed"]["pairs_per_s"] / med["trl"]["pairs_per_s"], 2),
        "refeed_peak_rss_mib": round(med["refeed"]["peak_rss_mib"]), "trl_peak_rss_mib": round(med["trl"]["peak_rss_mib"]),
        "memory_ratio": round(med["refeed"]["peak_rss_mib"] / med["trl"]["peak_rss_mib"], 2),
        "steps": a.steps, "batch": a.batch, "max_length": a.max_length, "repeats": a.repeats, "trl": trl.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU", "load_average_1m_at_end": os.getloadavg()[0],
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    out = ROOT / "bench" / "results" / "dpo_vs_trl.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
