"""Measured starting points of the built-in bases (tiny, small): what every later method is measured against.

    nice -n 19 .venv/bin/python bench/base_models.py --bases tiny small --tasks arithmetic sort

For each base and task (the base pretrained or reused from cache with ``PretrainConfig(preset=base)``), on
1,000 TEST prompts (tiny's own TEST split is 300 prompts; it is topped up with prompts of a larger TEST split
that are in neither its TRAIN nor its DEV split):

- TEST accuracy per difficulty (greedy);
- uptake: accuracy after one more turn, the oracle's critique vs a bare "try again", both sampled at the same
  temperature, with the paired 95% bootstrap interval of the difference (same prompts, same first answers);
- friction over 5 turns (METHODS.md section 12): cumulative accuracy with a critique after every wrong
  answer, against the any-correct target of 5 independent answers at the same temperatures. Uptake and
  friction run on the multi-turn core (``refeed.eval.friction``, as ``refeed eval friction`` does): each turn is
  sampled from the episode's served tokens, never from a re-tokenized history;
- rules (oracle.RULES as the system message): adherence in scope, and change out of scope (how often the
  answer takes the rule's form out of scope with the rule minus without it), with paired intervals. Both
  answers are sampled at the same temperature: greedy answers turn the prior's 30% tendency to overreach into
  all or nothing per prompt, and on 200 DEV prompts the greedy change swung from +0.01 to +0.16 between bases
  made with the same dials.

Writes bench/results/base_models.json and prints the markdown table for the README ("Built-in bases and tasks").
One base and task per process, several side by side, then ``--merge a.json b.json ...`` combines them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from refeed.eval.heldout import paired_bootstrap
from refeed.pipelines.pretrain import PretrainConfig, TaskConfig, pretrain
from refeed.tasks import oracle

TURNS = 5


def heldout(cfg: PretrainConfig, n: int) -> list:
    """``n`` TEST prompts the base never trained on: its TEST split, topped up from a larger TEST split."""
    task = cfg.task.build()
    test = task.examples("test")
    if len(test) >= n:
        return test[:n]
    seen = {e.id for s in ("train", "dev") for e in task.examples(s)} | {e.id for e in test}
    for size in (4 * n, 3 * n, 2 * n):  # the largest TEST split the task's prompts allow
        try:
            big = TaskConfig(**{**cfg.task.__dict__, "train_size": 0, "dev_size": 0, "test_size": size}).build()\
                .examples("test")
            break
        except ValueError:
            continue
    else:
        raise ValueError(f"{cfg.task.name}: too few distinct prompts to top TEST up to {n}")
    fresh = [e for e in big if e.id not in seen][: n - len(test)]
    if len(test) + len(fresh) < n:
        raise ValueError(f"{cfg.task.name}: only {len(test) + len(fresh)} held-out prompts, not {n}")
    return test + fresh


def _ci(before: list[float], after: list[float]) -> dict:
    lo, hi = paired_bootstrap(before, after)
    m = len(before)
    return {"value": (sum(after) - sum(before)) / m, "ci": [lo, hi], "n": m}


def measure(base: str, task_name: str, n: int, temperature: float, seed: int, out_root: str,
            overrides: tuple[str, ...] = (), split: str = "test") -> dict:
    from refeed.config import load as load_config
    from refeed.models import load

    cfg = load_config(PretrainConfig, None, [f"preset={base}", f"task.name={task_name}", f"out_root={out_root}",
                                             *overrides])
    t0 = time.perf_counter()
    res = pretrain(cfg)
    model, tok = load(res.model_dir)
    model.eval()
    task = cfg.task.build()
    exs = heldout(cfg, n) if split == "test" else task.examples("dev")[:n]  # dev: for tuning the prior
    out = starting_points(model, tok, task, exs, temperature, seed)
    return {"base": base, "split": split, "model_dir": str(res.model_dir), "cached": res.cached,
            "pretrain_seconds": res.seconds, **out, "seconds": time.perf_counter() - t0}


def starting_points(model, tok, task, exs: list, temperature: float, seed: int) -> dict:
    """Every measure of the module docstring for one model on ``exs``."""
    from refeed.eval.friction import friction
    from refeed.models.generate import sample
    from refeed.models.hf_generator import TransformersGenerator

    room = max(len(e.answer) for e in exs) + 3  # the answer, a rule's mark, EOS and a spare token
    gen = lambda prompts, temp, s=seed: [o[0] for o in sample(  # noqa: E731
        model, tok, prompts, temperature=temp, max_new_tokens=room, seed=s, batch_size=100)]
    # Uptake and friction on the multi-turn core (refeed eval friction): a greedy first answer, then TURNS - 1
    # revisions at ``temperature``, each sampled from the episode's served tokens; "try again" in the other arm
    # with the same seeds, and the any-correct target of one fresh answer per turn at the same temperatures.
    fr = friction(TransformersGenerator(model, tok, batch_size=100), tok, task, exs, turns=TURNS,
                  temperatures=[0.0] + [temperature] * (TURNS - 1), max_new_tokens=room, seed=seed)
    curve, retry_curve = fr["cumulative_accuracy"], fr["cumulative_accuracy_try_again"]

    # Rules: the task's rule as the system message.
    rule = oracle.RULES[task.name]
    ruled = gen([[{"role": "system", "content": rule.text}, *e.messages] for e in exs], temperature, seed + 200)
    plain = gen([list(e.messages) for e in exs], temperature, seed + 200)
    inside = [i for i, e in enumerate(exs) if rule.in_scope(e)]
    out = [i for i, e in enumerate(exs) if not rule.in_scope(e)]
    follows = lambda texts, ids: [float(rule.follows(texts[i])) for i in ids]  # noqa: E731
    return {
        "task": task.name, "n": len(exs), "temperature": temperature,
        "accuracy": curve[0], "accuracy_by_difficulty": fr["first_by_difficulty"],
        "n_by_difficulty": fr["n_by_difficulty"],
        "uptake": {"first": curve[0], "after_critique": curve[1], "after_try_again": retry_curve[1],
                   "critique_minus_try_again": fr["uptake_by_turn"][1]},
        "friction": {"cumulative_accuracy": curve, "cumulative_accuracy_try_again": retry_curve,
                     "any_correct_target": fr["target"], "ended": fr["ended"], "friction": fr["friction"]},
        "rules": {"rule": rule.text, "n_in_scope": len(inside), "n_out_of_scope": len(out),
                  "adherence_in_scope": sum(follows(ruled, inside)) / max(1, len(inside)),
                  "form_out_of_scope_without_rule": sum(follows(plain, out)) / max(1, len(out)),
                  "change_out_of_scope": _ci(follows(plain, out), follows(ruled, out)),
                  "accuracy_with_rule": sum(task.verify(e, a).correct for e, a in zip(exs, ruled, strict=True)) / len(exs)},
    }


def table(results: list[dict]) -> str:
    f = lambda x: f"{x:.3f}"  # noqa: E731
    ci = lambda d: f"{d['value']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"  # noqa: E731
    lines = ["| base | task | n | TEST acc | by difficulty | after critique | after try again | critique − try again "
             "(95% CI) | 5-turn acc | any-correct target | friction (95% CI) | rule in scope | out-of-scope change "
             "(95% CI) |", "|" + "---|" * 13]
    for r in results:
        lv = ", ".join(f"{d}: {f(a)}" for d, a in r["accuracy_by_difficulty"].items())
        u, fr, ru = r["uptake"], r["friction"], r["rules"]
        lines.append(f"| {r['base']} | {r['task']} | {r['n']} | {f(r['accuracy'])} | {lv} | {f(u['after_critique'])} | "
                     f"{f(u['after_try_again'])} | {ci(u['critique_minus_try_again'])} | "
                     f"{f(fr['cumulative_accuracy'][-1])} | {f(fr['any_correct_target'])} | {ci(fr['friction'])} | "
                     f"{f(ru['adherence_in_scope'])} | {ci(ru['change_out_of_scope'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bases", nargs="+", default=["tiny", "small"])
    ap.add_argument("--tasks", nargs="+", default=["arithmetic", "sort"])
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("test", "dev"), default="test",
                    help="dev: the first --prompts DEV prompts, for tuning the prior's dials (never reported)")
    ap.add_argument("--out-root", default="runs", help="where the pretrained bases are cached")
    ap.add_argument("--out", default="bench/results/base_models.json")
    ap.add_argument("--set", nargs="*", default=[], metavar="BASE:KEY=VALUE",
                    help="a pretrain override for one base, e.g. tiny:task.test_size=1200")
    ap.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                    help="combine the results of earlier runs (one base and task each, run side by side) into --out")
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(Path(p).read_text()) for p in args.merge]
        results = [r for part in parts for r in part["results"]]
        Path(args.out).write_text(json.dumps({
            "machine": parts[0]["machine"], "load_average_at_end": [part["load_average_at_end"] for part in parts],
            "commands": [c for part in parts for c in part.get("commands", [part.get("command")])],
            "notes": [part["note"] for part in parts if "note" in part],
            "results": results, "table": table(results)}, indent=2))
        print(table(results))
        return
    results = []
    for base in args.bases:
        for task in args.tasks:
            mine = tuple(o.split(":", 1)[1] for o in args.set if o.split(":", 1)[0] == base)
            r = measure(base, task, args.prompts, args.temperature, args.seed, args.out_root, mine, args.split)
            results.append(r)
            print(json.dumps({k: r[k] for k in ("base", "task", "accuracy", "uptake", "seconds")}), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "machine": f"{platform.machine()}  {os.cpu_count()} cores", "load_average_at_end": os.getloadavg(),
        "command": "bench/base_models.py " + " ".join(f"--{k.replace('_', '-')} {v if not isinstance(v, list) else ' '.join(v)}"
                                                        for k, v in vars(args).items()),
        "results": results, "table": table(results)}, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
