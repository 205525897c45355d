"""Held-out gains of the online objectives on the built-in tasks, next to offline DPO from the same number of
sampled answers (issue 12, "Must show"; ../shared/ACCEPTANCE.md).

    nice -n 19 timeout 3000 .venv/bin/python bench/online_gain.py --seeds 0 1 2              # the README table
    .venv/bin/python bench/online_gain.py --split dev --seeds 0 --methods grpo rloo --lr 1e-4  # tuning, on DEV

For each task (arithmetic, reverse) the built-in base is pretrained once (``refeed.pipelines.pretrain``, a TEST
split of 1,200 prompts and a DEV split of 300, the same cache key as bench/objectives_gain.py) and measured once
(greedy, ``refeed.eval.harness.evaluate``). Each method then starts from that base, per seed:
- online (grpo and its knobs dr_grpo, dapo, gspo; rloo; nft_online; weighted_grpo): ``refeed.train.online.
  train_online`` on ``steps * batch`` TRAIN prompts (each seen once), K answers each, the task's verifier as
  the reward (1 right, 0 wrong);
- dpo: the same number of answers (steps * batch prompts, K each) sampled ONCE from the base with the same
  sampling, judged by the same verifier, best vs worst per prompt (ties skipped), offline DPO
  (``refeed.train.loop.train``) for one epoch over those pairs.
Measured on the chosen split (TEST for the table, DEV for tuning): accuracy before / after, the gain with its
paired 95% bootstrap interval over the same prompts (``refeed.eval.heldout.compare``), the paired interval of
method minus DPO on the same seed, and per task and method the mean +- sd of the gain over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

METHODS: dict[str, tuple[str, dict]] = {
    "grpo": ("grpo", {}),
    "dr_grpo": ("grpo", {"loss_type": "dr_grpo", "scale_rewards": False}),
    "dapo": ("grpo", {"loss_type": "dapo", "epsilon_high": 0.28, "mask_zero_std": True, "mask_truncated": True}),
    "gspo": ("grpo", {"importance": "sequence"}),
    "rloo": ("rloo", {}),
    "nft_online": ("nft_online", {}),
    "weighted_grpo": ("weighted_grpo", {"w_plus": 2.0, "w_minus": 2.0}),
    "dpo": ("dpo", {}),  # offline, from answers sampled once from the base
}


def _objective(name: str, params: dict):
    from refeed.config import from_dict
    from refeed.objectives import OBJECTIVES, build

    if name in OBJECTIVES:
        return build(name, params)
    from refeed.objectives.grpo import GRPO, GRPOConfig  # grpo registers with the online recipes

    return GRPO(from_dict(GRPOConfig, params, where="objective"))


def _base(task_name: str, root: str, base_dir: str | None):
    from refeed.pipelines.pretrain import PretrainConfig, TaskConfig, pretrain

    cfg = PretrainConfig(task=TaskConfig(name=task_name, test_size=1200, dev_size=300), out_root=root)
    if base_dir:
        return Path(base_dir), cfg.task.build(), None
    res = pretrain(cfg)
    return res.model_dir, cfg.task.build(), res.dev_accuracy


def _verifier(task, reward: str = "exact"):
    """The task's verifier as a TRL-style reward function over the ``example_id`` column: ``exact`` is 1 for a
    right answer and 0 otherwise (what TEST counts), ``score`` the task's partial credit."""
    by_id = {e.id: e for e in task.examples("train")}

    def verifier(prompts, completions, example_id, **kwargs):
        verdicts = (task.verify(by_id[i], c[0]["content"] if isinstance(c, list) else c)
                    for c, i in zip(completions, example_id, strict=True))
        return [float(v.correct) if reward == "exact" else v.score for v in verdicts]

    return verifier


def _dpo_pairs(model, tok, task, rows, args, seed) -> tuple[list[dict], int]:
    """Best vs worst of K answers sampled once per prompt from the base (ties skipped), and the tie count."""
    from refeed.models.hf_generator import TransformersGenerator
    from refeed.types import SamplingParams

    by_id, k = {e.id: e for e in task.examples("train")}, args.k
    sampling = SamplingParams(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=seed)
    outs = TransformersGenerator(model, tok).generate([r["prompt"] for r in rows], sampling, n=k)
    pairs, ties = [], 0
    for i, row in enumerate(rows):
        group = outs[i * k:(i + 1) * k]
        verdicts = [task.verify(by_id[row["example_id"]], r.completion) for r in group]
        scores = [float(v.correct) if args.reward == "exact" else v.score for v in verdicts]
        if max(scores) == min(scores):
            ties += 1
            continue
        pairs.append({"prompt": row["prompt"], "chosen": group[scores.index(max(scores))].completion,
                      "rejected": group[scores.index(min(scores))].completion})
    return pairs, ties


def run_one(method: str, base_dir: Path, task, seed: int, args) -> tuple[object, dict]:
    """Train ``method`` from the base for one seed; returns (the trained model's eval, run info)."""
    from refeed.eval.harness import evaluate
    from refeed.models import load
    from refeed.train.loop import train
    from refeed.train.online import OnlineConfig, train_online
    from refeed.train.step import Schedule, TrainConfig

    model, tok = load(base_dir)
    n = args.steps * args.batch
    train_ex = task.examples("train")
    start = (seed * n) % max(1, len(train_ex) - n)  # each seed its own TRAIN prompts
    rows = [{"prompt": list(e.messages), "example_id": e.id} for e in train_ex[start:start + n]]
    name, params = METHODS[method]
    t0 = time.perf_counter()
    info: dict = {"method": method, "seed": seed, "prompts": n, "answers": n * args.k}
    if method == "dpo":
        pairs, ties = _dpo_pairs(model, tok, task, rows, args, seed)
        info |= {"pairs": len(pairs), "tied_prompts": ties}
        cfg = TrainConfig(lr=args.dpo_lr, batch_size=args.batch, epochs=1, warmup_ratio=0.0,
                          schedule=Schedule.CONSTANT, seed=seed)
        if pairs:
            train(model, tok, pairs, _objective("dpo", {"beta": args.dpo_beta}), cfg)
    else:
        cfg = TrainConfig(lr=args.lr, batch_size=args.batch, max_steps=args.steps, warmup_ratio=0.0,
                          schedule=Schedule.CONSTANT, seed=seed)
        online = OnlineConfig(num_generations=args.k, max_new_tokens=args.max_new_tokens, temperature=args.temperature)
        res = train_online(model, tok, rows, [_verifier(task, args.reward)], _objective(name, params), cfg, online)
        h = res.history
        info |= {"reward_first": h[0]["reward/mean"], "reward_last": statistics.mean(r["reward/mean"] for r in h[-5:])}
    info["train_seconds"] = time.perf_counter() - t0
    after = evaluate(model, tok, task, examples=_eval_examples(task, args), max_new_tokens=args.max_new_tokens)
    return after, info


def _eval_examples(task, args):
    ex = task.examples(args.split)
    return ex[: args.eval_prompts] if args.eval_prompts else ex


def _table(summary: dict) -> str:
    lines = ["| task | method | before | after (mean) | gain mean ± sd over seeds | per-seed gain [paired 95% CI] | "
             "minus DPO, per seed [paired 95% CI] |", "|---|---|---|---|---|---|---|"]
    for task, methods in summary["tasks"].items():
        for m, s in methods["methods"].items():
            per = "; ".join(f"{r['gain']:+.3f} [{r['gain_ci'][0]:+.3f}, {r['gain_ci'][1]:+.3f}]" for r in s["runs"])
            vs = "; ".join(f"{r['vs_dpo']:+.3f} [{r['vs_dpo_ci'][0]:+.3f}, {r['vs_dpo_ci'][1]:+.3f}]"
                           for r in s["runs"] if "vs_dpo" in r) or "—"
            lines.append(f"| {task} | {m} | {methods['before']:.3f} | {s['after_mean']:.3f} | "
                         f"{s['gain_mean']:+.3f} ± {s['gain_sd']:.3f} | {per} | {vs} |")
    return "\n".join(lines)


def main() -> None:
    from refeed.eval.harness import evaluate
    from refeed.eval.heldout import compare, paired_bootstrap
    from refeed.models import load

    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="+", default=["arithmetic", "reverse"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--split", default="test", choices=["test", "dev"])
    ap.add_argument("--eval-prompts", type=int, default=0, help="first N prompts of the split; 0 = all")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8, help="prompts per generation (online) / pairs per step (DPO)")
    ap.add_argument("--k", type=int, default=8, help="answers sampled per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--reward", default="exact", choices=["exact", "score"],
                    help="exact: 1 right / 0 wrong, what TEST counts; score: the task's partial credit")
    ap.add_argument("--lr", type=float, default=5e-5, help="online methods (DEV, arithmetic, seed 0: 2e-5 .. 5e-4)")
    ap.add_argument("--dpo-lr", type=float, default=1e-5, help="offline DPO (DEV, arithmetic, seed 0: 1e-5 .. 5e-4)")
    ap.add_argument("--dpo-beta", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--base-root", default="runs", help="where pretrained bases are cached")
    ap.add_argument("--base-dir", default=None, help="use this model instead of the pretrained base (smoke runs)")
    ap.add_argument("--out", default="bench/results/online_gain.json")
    ap.add_argument("--merge", nargs="+", default=None, help="join these result files' tasks into --out (runs split "
                    "over processes, e.g. one per task) and exit")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        merged = {**parts[0], "tasks": {t: v for p in parts for t, v in p["tasks"].items()},
                  "seconds": max(p["seconds"] for p in parts), "merged_from": args.merge,
                  "configs": [p["config"] for p in parts]}
        merged["table"] = _table(merged)
        Path(args.out).write_text(json.dumps(merged, indent=2) + "\n")
        print(merged["table"])
        return
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    summary: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "split": args.split,
                     "config": vars(args), "tasks": {}}
    for task_name in args.tasks:
        base_dir, task, dev_acc = _base(task_name, args.base_root, args.base_dir)
        model, tok = load(base_dir)
        before = evaluate(model, tok, task, examples=_eval_examples(task, args), max_new_tokens=args.max_new_tokens)
        entry = {"before": before.accuracy, "n": before.n, "base": str(base_dir), "base_dev_accuracy": dev_acc,
                 "methods": {}}
        summary["tasks"][task_name] = entry
        dpo_after: dict[int, object] = {}
        order = (["dpo"] if "dpo" in args.methods else []) + [m for m in args.methods if m != "dpo"]  # DPO first
        for method in order:
            runs = []
            for seed in args.seeds:
                after, info = run_one(method, base_dir, task, seed, args)
                c = compare(before, after)
                rec = {**info, "after": c["after"], "gain": c["gain"], "gain_ci": c["gain_ci"],
                       "by_difficulty": {d: v["gain"] for d, v in c["by_difficulty"].items()}}
                if method == "dpo":
                    dpo_after[seed] = after
                elif seed in dpo_after:
                    x = [float(r["correct"]) for r in dpo_after[seed].records]
                    y = [float(r["correct"]) for r in after.records]
                    rec["vs_dpo"], rec["vs_dpo_ci"] = (sum(y) - sum(x)) / len(x), list(paired_bootstrap(x, y))
                runs.append(rec)
                print(json.dumps({"task": task_name, **{k: v for k, v in rec.items() if k != "by_difficulty"}}),
                      flush=True)
            gains = [r["gain"] for r in runs]
            entry["methods"][method] = {
                "gain_mean": statistics.mean(gains), "gain_sd": statistics.stdev(gains) if len(gains) > 1 else 0.0,
                "after_mean": statistics.mean(r["after"] for r in runs),
                "seeds_with_ci_above_zero": sum(r["gain_ci"][0] > 0 for r in runs), "runs": runs}
    summary["seconds"] = time.perf_counter() - t_start
    summary["load_average_1m_at_end"] = os.getloadavg()[0]
    summary["table"] = _table(summary)
    print(summary["table"])
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
