"""GRPO throughput and peak memory: refeed's online loop against TRL's GRPOTrainer, side by side in one run.

    .venv/bin/pip install -e ".[bench]"        # TRL is a benchmark extra only, never a runtime dependency
    .venv/bin/python bench/grpo_vs_trl.py      # CPU; --steps, --repeats, --prompts, --k, --tokens

The shape of the online-loop issue: 8 prompts x 8 generations x 64 completion tokens per step, the built-in
tiny model (Llama architecture, random init, written once and loaded through from_pretrained), fp32, the
same threads (torch's default: one per core), beta 0 (no reference model), mu 1 (TRL: num_iterations=1), the
same lr / clipping / optimizer, one cheap reward function on both sides. Every completion runs to the cap:
EOS is suppressed on both sides (TRL: ``generation_kwargs={"min_new_tokens": 64}``, transformers' processor
that masks EOS until then; refeed: ``online.logit_bias`` of -100 on EOS), and each side's logged mean
completion length is checked to be 64. TRL gets its documented fast options for this setting: the whole
generation batch in one ``generate`` call (``generation_batch_size`` = 64 = the train batch,
one generation per step), no gradient checkpointing (GRPOConfig's default turns it on: it saves memory and
costs a forward), dropout off, no completion logging, no checkpoints, no reporting; vLLM, Liger and
paged attention are GPU options. refeed keeps its default logging ON: every rollout goes to a SQLite store
(interactions, exact tokens, outcome feedback), inside the timed loop, through the same code as
``refeed train`` (``refeed.pipelines.online_job._RolloutLog``).

Each run is its own subprocess (peak RSS = ``ru_maxrss`` of that process, the Python / torch / library
baseline included), alternating refeed / TRL ``--repeats`` times; time is the whole ``train`` call (generation,
scoring, logging, the update) over ``--steps`` steps; completion tokens/s = steps x prompts x k x tokens / time.
Writes bench/results/grpo_vs_trl.json with the machine and its load.
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


def _prompts(n: int) -> list[dict]:
    from refeed.tasks import SplitSizes, get_task

    task = get_task("arithmetic", levels=(1, 2), seed=0, sizes=SplitSizes(n, 10, 10))
    return [{"prompt": list(e.messages)} for e in task.examples("train")]


def digits(completions, **kwargs) -> list[float]:
    """The reward on both sides: the fraction of the answer's characters that are digits."""
    text = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in text]


def _run_refeed(model_dir: str, rows: list[dict], a, out: Path) -> tuple[float, float]:
    from refeed.models import load
    from refeed.objectives import build
    from refeed.pipelines.online_job import _RolloutLog
    from refeed.store import Store
    from refeed.train.loop import Schedule, TrainConfig
    from refeed.train.online import OnlineConfig, train_online

    model, tok = load(model_dir)
    cfg = TrainConfig(lr=a.lr, batch_size=a.prompts, max_steps=a.steps, warmup_ratio=0.0, schedule=Schedule.CONSTANT,
                      seed=0, max_grad_norm=1.0)
    online = OnlineConfig(num_generations=a.k, mu=1, max_new_tokens=a.tokens, logit_bias=((tok.eos_token_id, -100.0),))
    log = _RolloutLog(Store(f"sqlite:///{out / 'rollouts.db'}"), None, "digits")
    t = time.perf_counter()
    res = train_online(model, tok, rows, [digits], build("grpo", {"beta": 0.0}), cfg, online, on_rollouts=log)
    seconds = time.perf_counter() - t
    assert len(log.feedback_ids) == a.steps * a.prompts * a.k
    return seconds, statistics.mean(r["completions/mean_length"] for r in res.history)


def _run_trl(model_dir: str, rows: list[dict], a, out: Path) -> tuple[float, float]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from refeed.models import load

    model, tok = load(model_dir)
    n = a.prompts * a.k
    cfg = GRPOConfig(output_dir=str(out), per_device_train_batch_size=n, gradient_accumulation_steps=1,
                     num_generations=a.k, generation_batch_size=n, max_completion_length=a.tokens,
                     generation_kwargs={"min_new_tokens": a.tokens}, max_steps=a.steps, learning_rate=a.lr,
                     lr_scheduler_type="constant", warmup_steps=0, beta=0.0, num_iterations=1, temperature=1.0,
                     max_grad_norm=1.0, report_to="none", save_strategy="no", logging_steps=1, use_cpu=True, bf16=False,
                     seed=0, dataloader_num_workers=0, disable_tqdm=True, disable_dropout=True, log_completions=False,
                     gradient_checkpointing=False)  # TRL's GRPO default is True: a recompute that costs time
    trainer = GRPOTrainer(model=model, reward_funcs=[digits], args=cfg, train_dataset=Dataset.from_list(rows),
                          processing_class=tok)
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return seconds, statistics.mean(lengths)


def child(which: str, model_dir: str, a) -> None:
    import torch

    rows = _prompts(a.steps * a.prompts)
    with tempfile.TemporaryDirectory() as out:
        seconds, length = (_run_refeed if which == "refeed" else _run_trl)(model_dir, rows, a, Path(out))
    tokens = a.steps * a.prompts * a.k * a.tokens
    print(json.dumps({"which": which, "seconds": seconds, "s_per_step": seconds / a.steps,
                      "completion_tokens_per_s": tokens / seconds, "mean_completion_length": length,
                      "threads": torch.get_num_threads(),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["refeed", "trl"], help="run one side (profiling)")
    ap.add_argument("--child", choices=["refeed", "trl"])
    ap.add_argument("--model-dir")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "grpo_vs_trl.json"))
    a = ap.parse_args()
    if a.child:
        child(a.child, a.model_dir, a)
        return
    from refeed.models.tiny import write_tiny_model

    sides = [a.only] if a.only else ["refeed", "trl"]
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(write_tiny_model(Path(tmp) / "tiny"))
        runs = {s: [] for s in sides}
        for r in range(a.repeats):
            for which in sides if r % 2 == 0 else sides[::-1]:  # alternate who goes first
                cmd = [sys.executable, __file__, "--child", which, "--model-dir", model_dir, "--steps", str(a.steps),
                       "--prompts", str(a.prompts), "--k", str(a.k), "--tokens", str(a.tokens), "--lr", str(a.lr)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                                          "PYTHONPATH": str(ROOT)})
                if out.returncode:
                    sys.exit(f"{which} failed:\n{out.stderr[-3000:]}")
                runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(runs[which][-1]), flush=True)
    keys = ("completion_tokens_per_s", "s_per_step", "peak_rss_mib", "mean_completion_length")
    med = {k: {m: statistics.median(r[m] for r in v) for m in keys} for k, v in runs.items()}
    if a.only:
        print(json.dumps(med))
        return
    import trl

    result = {
        "refeed_completion_tokens_per_s": round(med["refeed"]["completion_tokens_per_s"]),
        "trl_completion_tokens_per_s": round(med["trl"]["completion_tokens_per_s"]),
        "throughput_ratio": round(med["refeed"]["completion_tokens_per_s"] / med["trl"]["completion_tokens_per_s"], 2),
        "refeed_s_per_step": round(med["refeed"]["s_per_step"], 3), "trl_s_per_step": round(med["trl"]["s_per_step"], 3),
        "refeed_peak_rss_mib": round(med["refeed"]["peak_rss_mib"]), "trl_peak_rss_mib": round(med["trl"]["peak_rss_mib"]),
        "memory_ratio": round(med["refeed"]["peak_rss_mib"] / med["trl"]["peak_rss_mib"], 2),
        "goal": "throughput_ratio >= 2 and memory_ratio <= 0.7",
        "mean_completion_length": {k: med[k]["mean_completion_length"] for k in med},
        "shape": {"prompts": a.prompts, "k": a.k, "completion_tokens": a.tokens, "steps": a.steps, "beta": 0.0, "mu": 1,
                  "dtype": "float32", "eos": "suppressed on both sides"},
        "rollout_logging": "refeed: on (SQLite store, one transaction per generation, inside the timed loop)",
        "repeats": a.repeats, "trl": trl.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU",
        "load_average_1m_at_start": load_start[0], "load_average_1m_at_end": os.getloadavg()[0],
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
