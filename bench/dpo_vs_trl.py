"""DPO throughput and peak memory: refeed's loop against TRL's DPOTrainer, side by side in one run.

    .venv/bin/pip install -e ".[bench]"        # TRL is a benchmark extra only, never a runtime dependency
    .venv/bin/python bench/dpo_vs_trl.py       # all workloads; --workloads realistic to run one

Workloads (rows of the result, headline first):
- ``realistic``: conversational rows with random-word prompts of 8-24 words and answers of 8-48 words
  (the built-in character-level tokenizer: ~50-130 prompt tokens, ~20-220 answer tokens), the built-in
  tiny Llama (~0.9M parameters), ``max_length`` 256, batch 8.
- ``arithmetic``: the arithmetic task, the correct answer over a wrong one (1-3 answer tokens), tiny Llama,
  batch 16, ``max_length`` 128.
- ``30m``: the realistic rows on a ~30M-parameter Llama (hidden 512, 8 layers), where compute dominates.

Both sides train the same model (random init, written once, loaded through from_pretrained), on the same
rows, with the same batch size, ``max_length``, AdamW settings, lr, beta, steps, threads and float32.
Reference log-probs are computed once before training on both sides (refeed always does; TRL with
``precompute_ref_log_probs=True``, its documented option for a fixed reference), and each side's time
covers tokenization + reference pass + training (TRL: from ``DPOTrainer(...)``, where it tokenizes and
precomputes, to the end of ``train()``; refeed: ``train()``). TRL's other fast options: gradient
checkpointing off (``DPOConfig`` turns it on by default; off is faster and, at these sizes, costs no
visible memory); its fused, chunked LM head is always on in 1.16; ``padding_free`` falls back to padding
in 1.16 (and needs FlashAttention); ``pad_to_multiple_of`` does not pad on CPU. Truncation is each library's own (TRL keeps
the start, refeed drops prompt tokens from the left); both cap every sequence at ``max_length``.
Each run is its own subprocess, alternating refeed / TRL ``--repeats`` times; the medians are reported;
memory is the subprocess's peak RSS (``ru_maxrss``), which includes the Python, torch and library baseline
of each. Writes bench/results/dpo_vs_trl.json with the machine and the load before / after every run;
every row names the command and date it was measured with (``--keep-other-rows`` reruns some workloads
and keeps the other rows of the file as they were).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKLOADS = {  # name: (model shape, rows, batch, max_length, steps)
    "realistic": ({}, "words", 8, 256, 30),
    "arithmetic": ({}, "arithmetic", 16, 128, 40),
    "30m": ({"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 4,
             "intermediate_size": 2048}, "words", 8, 256, 4),
}


def _words(n: int, seed: int = 0) -> list[dict]:
    """Conversational pairs: a random-word prompt of 8-24 words, two random-word answers of 8-48 words."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 5))) for _ in range(2000)]

    def text(lo, hi):
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi)))

    return [{"prompt": [{"role": "user", "content": text(8, 24)}],
             "chosen": [{"role": "assistant", "content": text(8, 48)}],
             "rejected": [{"role": "assistant", "content": text(8, 48)}]} for _ in range(n)]


def _arithmetic(n: int) -> list[dict]:
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
    dataset = Dataset.from_list(rows)
    with tempfile.TemporaryDirectory() as out:
        cfg = DPOConfig(output_dir=out, per_device_train_batch_size=a.batch, max_steps=a.steps, learning_rate=a.lr,
                        lr_scheduler_type="constant", warmup_steps=0, beta=a.beta, max_length=a.max_length,
                        precompute_ref_log_probs=True, precompute_ref_batch_size=a.batch, report_to="none",
                        save_strategy="no", logging_steps=10_000, use_cpu=True, seed=0, max_grad_norm=1.0,
                        dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=False)
        t = time.perf_counter()  # DPOTrainer tokenizes and precomputes the reference in its constructor
        trainer = DPOTrainer(model=model, args=cfg, train_dataset=dataset, processing_class=tok)
        trainer.train()
        return time.perf_counter() - t


def child(which: str, model_dir: str, a) -> None:
    import torch

    torch.set_num_threads(a.threads)
    n = a.steps * a.batch
    rows = _words(n) if a.rows == "words" else _arithmetic(n)
    seconds = (_run_refeed if which == "refeed" else _run_trl)(model_dir, rows, a)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"which": which, "seconds": seconds, "pairs_per_s": n / seconds, "peak_rss_mib": peak_mib,
                      "threads": torch.get_num_threads()}))


def _write_model(path: Path, shape: dict) -> tuple[str, int]:
    from refeed.models.tiny import TinyConfig, write_tiny_model

    out = write_tiny_model(path, TinyConfig(**shape))
    from transformers import AutoConfig, AutoModelForCausalLM

    n = sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out)).parameters())
    return str(out), n


def run_workload(name: str, a, tmp: Path) -> dict:
    shape, rows, batch, max_length, steps = WORKLOADS[name]
    steps = a.steps or steps
    model_dir, n_params = _write_model(tmp / name, shape)
    runs: dict[str, list[dict]] = {"refeed": [], "trl": []}
    for _ in range(a.repeats):
        for which in ("refeed", "trl"):
            cmd = [sys.executable, __file__, "--child", which, "--model-dir", model_dir, "--rows", rows,
                   "--steps", str(steps), "--batch", str(batch), "--max-length", str(max_length),
                   "--lr", str(a.lr), "--beta", str(a.beta), "--threads", str(a.threads)]
            load_before = os.getloadavg()[0]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                      "PYTHONPATH": str(ROOT)})
            if out.returncode:
                sys.exit(f"{name}/{which} failed:\n{out.stderr[-3000:]}")
            run = json.loads(out.stdout.strip().splitlines()[-1])
            run.update(load_1m_before=round(load_before, 2), load_1m_after=round(os.getloadavg()[0], 2))
            runs[which].append(run)
            print(name, json.dumps(run), flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("pairs_per_s", "peak_rss_mib")} for k, v in runs.items()}
    return {
        "workload": name, "parameters": n_params, "batch": batch, "max_length": max_length, "steps": steps,
        "refeed_pairs_per_s": round(med["refeed"]["pairs_per_s"], 1), "trl_pairs_per_s": round(med["trl"]["pairs_per_s"], 1),
        "throughput_ratio": round(med["refeed"]["pairs_per_s"] / med["trl"]["pairs_per_s"], 2),
        "refeed_peak_rss_mib": round(med["refeed"]["peak_rss_mib"]), "trl_peak_rss_mib": round(med["trl"]["peak_rss_mib"]),
        "memory_ratio": round(med["refeed"]["peak_rss_mib"] / med["trl"]["peak_rss_mib"], 2),
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="realistic,arithmetic,30m")
    ap.add_argument("--steps", type=int, default=0, help="0: each workload's own")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--rows", default="words")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads on both sides (1: the cores are shared)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=["refeed", "trl"])
    ap.add_argument("--model-dir")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dpo_vs_trl.json"))
    ap.add_argument("--keep-other-rows", action="store_true",
                    help="keep the rows of workloads not run from the existing --out file (each row names its command)")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.model_dir, a)
        return
    import torch
    import transformers
    import trl

    command = " ".join(["python", "bench/dpo_vs_trl.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_workload(name, a, Path(tmp)) for name in a.workloads.split(",")]
    for r in rows:
        r.update(repeats=a.repeats, command=command, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 load_average_after=[round(x, 2) for x in os.getloadavg()])
    if a.keep_other_rows and Path(a.out).is_file():
        ran = {r["workload"] for r in rows}
        old = [r for r in json.loads(Path(a.out).read_text())["workloads"] if r["workload"] not in ran]
        for r in old:
            r.setdefault("command", "an earlier run (command not recorded)")
            r.setdefault("repeats", len(r["runs"]["refeed"]))
        rows = sorted(rows + old, key=lambda r: list(WORKLOADS).index(r["workload"]))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU ({platform.processor() or 'unknown'})",
        "threads": a.threads, "precision": "float32", "repeats": a.repeats, "lr": a.lr, "beta": a.beta,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "load_average_at_end": os.getloadavg(), "workloads": rows,
    }
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if k != "runs"}))
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
