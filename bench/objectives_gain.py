"""A measured held-out gain for every offline recipe, on the simulated user's feedback, over seeds.

    nice -n 19 timeout 3000 .venv/bin/python bench/objectives_gain.py --seeds 0 1 2          # the README table
    .venv/bin/python bench/objectives_gain.py --split dev --seeds 0 --recipes dpo dpo+objective.beta=1.0  # tuning

Every offline ``recipes/*.yaml`` (the online ones, grpo.yaml and the like, are bench/online_gain.py's) runs through ``refeed.pipelines.train_job.run_train`` with no
``--data``, as ``refeed train recipes/<x>.yaml train.seed=S`` would (the seed drives the simulated user's sampling
and the training), plus the naive reward model CausalRM is compared with (``binary_rm`` on the same observed
signals, ``data.feedback=observed_signals``). Measures, following ../shared/ACCEPTANCE.md:

- policies: task accuracy on the held-out split before and after, the paired 95% bootstrap interval of the gain;
- reward models: held-out accuracy (pairs, labels or level concordance) against the majority-class / chance and
  length-only baselines; CausalRM also against the naive reward model;
- C3PO: in-scope adherence to its rule before / after (paired interval) and how many out-of-scope answers changed;
- FLR: the policy's preference accuracy on pairs FLR mines from the simulated user's follow-ups on held-out
  prompts (before / after, paired interval), and how often those mined pairs agree with the verifier.

The built-in base is pretrained once with a TEST split of 1,200 prompts (``pretrain.task.test_size=1200``; the
default 300 is under ACCEPTANCE's 1,000) and reused from its cache. Within one process the base model's samples
and its greedy "before" evaluation are computed once and reused by every run: the same model, prompts and seed give
the same texts (``refeed.models.generate.sample`` seeds once per call), so each run's numbers are the ones an
independent ``refeed train`` would print. ``--split dev`` measures on DEV, for tuning; the table is TEST.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_OVERRIDES = ["pretrain.task.test_size=1200", "pretrain.task.dev_size=300"]
RM_PROMPTS = 1000  # TEST prompts the simulated user judges for reward-model eval rows
NAIVE = "binary_rm@observed_signals"  # CausalRM's baseline: BCE on the same observed reactions


def _online(path: Path) -> bool:
    """An online recipe (its objective learns from rewards): bench/online_gain.py measures those."""
    import yaml

    from refeed.objectives import OBJECTIVES, build

    name = (yaml.safe_load(path.read_text()).get("objective") or {}).get("name")
    return name not in OBJECTIVES or build(name, {}).needs.rewards


def recipes(names: list[str] | None) -> list[str]:
    """Recipe names; while tuning, ``dpo+objective.beta=1.0+train.epochs=1`` is a variant with overrides."""
    found = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml") if not _online(p))
    if names:
        return [n for n in names if n.split("+")[0].split("@")[0] in found]
    return [*found, NAIVE]


def _install_caches(state: dict) -> None:
    """Reuse the base model's samples and its greedy TEST / DEV evaluation across runs (see the docstring)."""
    from refeed.pipelines import heldout
    from refeed.pipelines import simulate as sim

    sample_answers, task_eval = sim.sample_answers, heldout.Measure._task_eval
    samples: dict = {}
    before: dict = {}

    def cached_sample(model, tok, examples, cfg, seed, model_name, tick=None, k=None):
        key = (model_name, tuple(e.id for e in examples), cfg, seed, k)
        if key not in samples:
            samples[key] = sample_answers(model, tok, examples, cfg, seed, model_name, tick, k)
        return samples[key]

    def cached_eval(self, model, split, limit, stage):
        key = (self.task.name, split, limit, self.ecfg.max_new_tokens)
        if stage == "eval before":
            if key not in before:
                before[key] = task_eval(self, model, split, limit, stage)
            out = before[key]
        else:
            out = task_eval(self, model, split, limit, stage)
        state[stage] = out
        return out

    sim.sample_answers = cached_sample
    heldout.Measure._task_eval = cached_eval


def _interval(before: list[float], after: list[float]) -> dict:
    from refeed.eval.heldout import paired_bootstrap

    n = len(before)
    lo, hi = paired_bootstrap(before, after)
    return {"n": n, "before": sum(before) / n, "after": sum(after) / n, "gain": (sum(after) - sum(before)) / n,
            "gain_ci": [lo, hi]}


def c3po_measures(task, split: str, before, after) -> dict:
    """In-scope adherence to the task's rule (paired interval), out-of-scope answers changed and following it."""
    from refeed.tasks import oracle

    rule = oracle.RULES[task.name]
    exs = {e.id: e for e in task.examples(split)}
    b = {r["id"]: r for r in before.records}
    inside = [(b[r["id"]], r) for r in after.records if rule.in_scope(exs[r["id"]])]
    outside = [(b[r["id"]], r) for r in after.records if not rule.in_scope(exs[r["id"]])]
    follows = lambda ps, i: [float(rule.follows(p[i]["completion"])) for p in ps]  # noqa: E731
    return {"rule": rule.text,
            "in_scope_adherence": _interval(follows(inside, 0), follows(inside, 1)),
            "out_of_scope_adherence": _interval(follows(outside, 0), follows(outside, 1)),
            "out_of_scope_changed": sum(p[0]["completion"] != p[1]["completion"] for p in outside) / len(outside),
            "out_of_scope_accuracy": _interval([float(p[0]["correct"]) for p in outside],
                                               [float(p[1]["correct"]) for p in outside])}


def flr_heldout_pairs(cfg, seed: int, prompts: int) -> list[dict]:
    """FLR pairs mined by the base model from the simulated user's follow-ups on held-out prompts."""
    from dataclasses import replace

    from refeed.models import load
    from refeed.pipelines import simulate as sim
    from refeed.pipelines.pretrain import pretrain
    from refeed.store import Store

    base = cfg.model.path or str(pretrain(cfg.pretrain).model_dir)
    model, tok = load(base)
    task = cfg.pretrain.task.build()
    scfg = replace(cfg.data.sampling, prompts=prompts)
    its, items = sim.simulate_feedback(model, tok, task, scfg, seed + 1, base, kinds=("followup",), split=cfg.eval.split)
    with tempfile.TemporaryDirectory() as d:
        store = Store(f"sqlite:///{d}/flr-eval.db")
        store.write_batch([*its.values(), *items])
        rows = sim.followup_rows(model, tok, store)
    by_prompt = {e.messages[-1]["content"]: e for e in task.examples(cfg.eval.split)}
    for r in rows:
        ex = by_prompt[r["prompt"][-1]["content"]]
        r["verifier"] = [task.verify(ex, r["chosen"]).correct, task.verify(ex, r["rejected"]).correct]
    return rows


def flr_measures(cfg, run_dir: str, pairs: list[dict]) -> dict:
    from refeed.models import load
    from refeed.pipelines.heldout import policy_row_measure
    from refeed.pipelines.pretrain import pretrain

    base, _ = load(cfg.model.path or str(pretrain(cfg.pretrain).model_dir))
    after, tok = load(str(Path(run_dir) / "model"))
    b = policy_row_measure(base, tok, pairs, cfg.train.max_length)
    a = policy_row_measure(after, tok, pairs, cfg.train.max_length)
    decided = [p for p in pairs if p["verifier"][0] != p["verifier"][1]]
    return {"heldout_pairs": len(pairs), "policy_pair_accuracy": _interval(b, a),
            "mined_pairs_with_a_verdict_gap": len(decided),
            "mined_pairs_agreeing_with_verifier": (sum(p["verifier"][0] for p in decided) / len(decided)
                                                   if decided else None)}


def rm_passes(h: dict) -> dict:
    """Whether a reward model's held-out measure beats each cheap baseline, by its 95% bootstrap interval: a
    binary reward model by AUC, where the majority class (any constant score) has 0.5; accuracy at the 0.5
    threshold against the majority class's is reported beside it (``accuracy_above_majority``)."""
    base = h["baselines"]
    if h["measure"] == "binary_accuracy":
        lo = (h.get("auc_ci") or [0.0])[0]
        return {"majority_class": lo > 0.5, "length_only": lo > (base["length_only_auc"] or 0.5)}
    lo = (h.get("value_ci") or [0.0])[0]
    return {"chance": lo > base["chance"], "length_only": lo > (base["length_only"] or 0.5)}


def dev_gain(cfg, run_dir: str, state: dict) -> dict:
    """The trained policy's task accuracy gain on DEV (what variants are chosen by; the table reports TEST)."""
    from refeed.eval.harness import evaluate
    from refeed.eval.heldout import compare
    from refeed.models import load
    from refeed.pipelines.pretrain import pretrain

    task = cfg.pretrain.task.build()
    dev = task.examples("dev")
    key = ("dev-before", task.name)
    if key not in state.setdefault("_dev", {}):
        base, tok = load(cfg.model.path or str(pretrain(cfg.pretrain).model_dir))
        state["_dev"][key] = evaluate(base, tok, task, examples=dev, max_new_tokens=cfg.eval.max_new_tokens)
    after, tok = load(str(Path(run_dir) / "model"))
    out = compare(state["_dev"][key], evaluate(after, tok, task, examples=dev, max_new_tokens=cfg.eval.max_new_tokens))
    out.pop("by_difficulty")
    return out


def run_one(name: str, task: str, seed: int, split: str, extra: list[str], run_root: Path, state: dict,
            flr_pairs_cache: dict, dev: bool = True) -> dict:
    from refeed.config import load
    from refeed.pipelines.train_job import TrainJobConfig, run_train

    recipe, *variant = name.split("+")
    recipe, _, feedback = recipe.partition("@")
    ov = [*BASE_OVERRIDES, f"pretrain.task.name={task}", f"train.seed={seed}", f"eval.split={split}",
          f"eval.rm_prompts={RM_PROMPTS}", "eval.examples=0", f"run_root={run_root}",
          f"name={name.replace('@', '-').replace('+', '_').replace('=', '')}-{task}-s{seed}", *([f"data.feedback={feedback}"] if feedback else []),
          *extra, *variant]
    cfg = load(TrainJobConfig, ROOT / "recipes" / f"{recipe}.yaml", ov)
    shutil.rmtree(Path(cfg.run_root) / cfg.name, ignore_errors=True)  # the bench's own scratch: a rerun starts clean
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    for k in ("eval before", "eval after"):
        state.pop(k, None)
    summary = run_train(cfg, notice=lambda m: print(f"warning: {m}", file=sys.stderr))
    rec = {"recipe": name, "task": task, "seed": seed, "split": split, "overrides": ov,
           "objective": dict(cfg.objective), "train": {"lr": cfg.train.lr, "epochs": cfg.train.epochs,
                                                       "batch_size": cfg.train.batch_size, "max_steps": cfg.train.max_steps},
           "sampling_prompts": cfg.data.sampling.prompts, "rows": summary["rows"], "train_steps": summary["train_steps"],
           "train_seconds": summary["train_seconds"], "final_loss": summary["final_loss"], "heldout": summary["heldout"]}
    h = summary["heldout"] or {}
    if h.get("kind") == "reward_model":
        rec["passes"] = rm_passes(h)
    elif recipe == "c3po":
        rec["c3po"] = c3po_measures(cfg.pretrain.task.build(), split, state["eval before"], state["eval after"])
    elif recipe == "flr":
        key = (task, seed, split)
        if key not in flr_pairs_cache:
            flr_pairs_cache[key] = flr_heldout_pairs(cfg, seed, 500)
        rec["flr"] = flr_measures(cfg, summary["run_dir"], flr_pairs_cache[key])
    if h.get("kind") == "policy" and split == "test" and dev:
        rec["dev"] = dev_gain(cfg, summary["run_dir"], state)
    rec["seconds"] = time.perf_counter() - t0
    rec["load_1m"] = [load0, os.getloadavg()[0]]
    return rec


def headline(rec: dict) -> tuple[str, float, float, float, list[float]]:
    """(measure, before, after, gain, gain_ci) of one run: the figure the table shows."""
    if "c3po" in rec:
        m = rec["c3po"]["in_scope_adherence"]
        return "in-scope rule adherence", m["before"], m["after"], m["gain"], m["gain_ci"]
    if "flr" in rec:
        m = rec["flr"]["policy_pair_accuracy"]
        return "pair accuracy on held-out FLR-mined pairs", m["before"], m["after"], m["gain"], m["gain_ci"]
    h = rec["heldout"]
    return f"{h['task']} accuracy", h["before"], h["after"], h["gain"], h["gain_ci"]


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"


def table(results: dict) -> str:
    runs = results["runs"]
    names = list(dict.fromkeys(r["recipe"] for r in runs))
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    split = results["split"].upper()
    out = []
    for task in tasks:
        pol = [n for n in names if any(r["recipe"] == n and r["task"] == task and r["heldout"]["kind"] == "policy"
                                       for r in runs)]
        rms = [n for n in names if n not in pol and any(r["recipe"] == n and r["task"] == task for r in runs)]
        if pol:
            out += [f"**Policies, {task}, {split} split** (mean ± sd over seeds {results['seeds']}; the 95% paired "
                    "bootstrap interval of the gain per seed)", "",
                    "| recipe | measure | n | before | after | gain | gain 95% CI per seed | CI > 0 | DEV gain |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for n in pol:
                rs = [r for r in runs if r["recipe"] == n and r["task"] == task]
                hs = [headline(r) for r in rs]
                cis = ", ".join(f"[{h[4][0]:+.3f}, {h[4][1]:+.3f}]" for h in hs)
                nn = rs[0]["c3po"]["in_scope_adherence"]["n"] if "c3po" in rs[0] else (
                    rs[0]["flr"]["heldout_pairs"] if "flr" in rs[0] else rs[0]["heldout"]["n"])
                ok = sum(h[4][0] > 0 for h in hs)
                devs = [r["dev"]["gain"] for r in rs if "dev" in r]
                out.append(f"| {n} | {hs[0][0]} | {nn} | {_ms([h[1] for h in hs])} | {_ms([h[2] for h in hs])} | "
                           f"{_ms([h[3] for h in hs])} | {cis} | {ok}/{len(hs)} | {_ms(devs) if devs else '-'} |")
            out.append("")
            for n in ("c3po", "flr"):
                rs = [r for r in runs if r["recipe"] == n and r["task"] == task]
                if n == "c3po" and rs:
                    c = [r["c3po"] for r in rs]
                    out.append(f"C3PO ({c[0]['rule']}): out-of-scope answers changed {_ms([x['out_of_scope_changed'] for x in c])}; "
                               f"out-of-scope rule adherence {_ms([x['out_of_scope_adherence']['before'] for x in c])} -> "
                               f"{_ms([x['out_of_scope_adherence']['after'] for x in c])}; task accuracy gain "
                               f"{_ms([r['heldout']['gain'] for r in rs])} (in scope and out: "
                               f"{_ms([x['out_of_scope_accuracy']['gain'] for x in c])} out of scope).")
                if n == "flr" and rs:
                    f = [r["flr"] for r in rs]
                    agree = [x["mined_pairs_agreeing_with_verifier"] for x in f if x["mined_pairs_agreeing_with_verifier"] is not None]
                    out.append(f"FLR: held-out mined pairs agree with the verifier {_ms(agree)} (of those with a verdict "
                               f"gap); task accuracy gain {_ms([r['heldout']['gain'] for r in rs])}, 95% CI per seed "
                               + ", ".join(f"[{r['heldout']['gain_ci'][0]:+.3f}, {r['heldout']['gain_ci'][1]:+.3f}]" for r in rs) + ".")
            out.append("")
        if rms:
            out += [f"**Reward models, {task}, {split} split** (held-out eval rows from the simulated user on "
                    f"{RM_PROMPTS} prompts; mean ± sd over seeds)", "",
                    "| recipe | measure | n rows | value | majority / chance | length only | beats both (interval) |",
                    "|---|---|---|---|---|---|---|"]
            for n in rms:
                rs = [r for r in runs if r["recipe"] == n and r["task"] == task]
                hs = [r["heldout"] for r in rs]
                binary = hs[0]["measure"] == "binary_accuracy"
                cis = [h.get("auc_ci" if binary else "value_ci") for h in hs]
                ci = ", ".join(f"[{c[0]:.3f}, {c[1]:.3f}]" for c in cis if c) or "no interval"
                val = (f"accuracy {_ms([h['value'] or 0.0 for h in hs])}; AUC {_ms([h['auc'] or 0.0 for h in hs])} "
                       f"(95% CI per seed {ci})" if binary else f"{_ms([h['value'] or 0.0 for h in hs])} (95% CI per seed {ci})")
                maj = (f"accuracy {_ms([h['baselines']['majority_class'] for h in hs])}; AUC 0.5" if binary
                       else _ms([h["baselines"]["chance"] for h in hs]))
                lk = "length_only_auc" if binary else "length_only"
                ln = _ms([h["baselines"][lk] or 0.5 for h in hs]) + (" (AUC)" if binary else "")
                ok = sum(all(r["passes"].values()) for r in rs)
                out.append(f"| {n} | {hs[0]['measure']} | {hs[0]['n']} | {val} | {maj} | {ln} | {ok}/{len(rs)} |")
            c = [r for r in runs if r["recipe"] == "causal_rm" and r["task"] == task]
            nv = [r for r in runs if r["recipe"] == NAIVE and r["task"] == task]
            if c and nv:
                out += ["", f"CausalRM vs the naive reward model on the same observed signals: binary accuracy "
                        f"{_ms([r['heldout']['value'] for r in c])} vs {_ms([r['heldout']['value'] for r in nv])}, AUC "
                        f"{_ms([r['heldout']['auc'] or 0.0 for r in c])} vs {_ms([r['heldout']['auc'] or 0.0 for r in nv])}."]
            out.append("")
    return "\n".join(out)


def merge(args) -> None:
    """One table from result files written by processes run side by side (e.g. one per seed)."""
    parts = [json.loads(Path(p).read_text()) for p in args.merge]
    seen: set = set()  # a run that two files both hold counts once (the first)
    runs = [r for p in parts for r in p["runs"] if not ((r["recipe"], r["task"], r["seed"]) in seen
                                                        or seen.add((r["recipe"], r["task"], r["seed"])))]
    loads = [x for p in parts for x in p.get("load_1m", {}).get("samples", [])] or [r["load_1m"][1] for r in runs]
    results = {"command": " ".join(["python", *sys.argv]), "merged_from": args.merge,
               "commands": [p.get("command") for p in parts], "split": runs[0]["split"],
               "seeds": sorted({r["seed"] for r in runs}), "tasks": sorted({r["task"] for r in runs}),
               "base_overrides": BASE_OVERRIDES, "rm_prompts": RM_PROMPTS,
               "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
               "processes": len(parts), "wall_seconds_per_process": [p.get("total_seconds") for p in parts],
               "run_seconds_sum": sum(r["seconds"] for r in runs),
               "load_1m": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
               "partial": any(p.get("partial") for p in parts), "runs": runs}
    results["table"] = table(results)
    print(results["table"])
    out = args.out or "bench/results/objectives_gain.json"
    Path(out).write_text(json.dumps(results, indent=2, default=str) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", nargs="+", default=["arithmetic"])
    ap.add_argument("--recipes", nargs="+", default=None, help=f"recipe names (default: all, with {NAIVE})")
    ap.add_argument("--split", default="test", choices=["test", "dev"], help="dev while tuning; the table is test")
    ap.add_argument("--out", default=None, help="result JSON (default: bench/results/objectives_gain.json on test)")
    ap.add_argument("--run-root", default="runs/gain")
    ap.add_argument("--set", dest="overrides", nargs="+", default=[],
                    help="dotted overrides for every run (e.g. train.epochs=1)")
    ap.add_argument("--merge", nargs="+", default=None, help="result JSONs of runs made in parallel: one table")
    args = ap.parse_args()
    if args.merge:
        return merge(args)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # 1: runs in parallel, one per seed
    out = args.out or ("bench/results/objectives_gain.json" if args.split == "test" else "")
    state: dict = {}
    _install_caches(state)
    flr_cache: dict = {}
    t0, runs = time.perf_counter(), []
    loads = [os.getloadavg()[0]]
    for task in args.tasks:
        for name in recipes(args.recipes):
            if task != "arithmetic" and name not in ("sft", "nft", "dpo", "ipo", "simpo", "ld_dpo", "kto",
                                                      "curry_dpo", "plackett_luce"):
                continue  # the second task: the task-accuracy policy objectives only
            for seed in args.seeds:
                rec = run_one(name, task, seed, args.split, args.overrides, Path(args.run_root), state, flr_cache)
                runs.append(rec)
                loads.append(os.getloadavg()[0])
                if out:  # every finished run is kept, should the whole table not finish
                    Path(out).parent.mkdir(parents=True, exist_ok=True)
                    Path(out).write_text(json.dumps({"partial": True, "runs": runs}, indent=2, default=str) + "\n")
                m, b, a, g, ci = headline(rec) if rec["heldout"]["kind"] == "policy" else (
                    rec["heldout"]["measure"], rec["heldout"]["baselines"], rec["heldout"]["value"], 0, [0, 0])
                print(json.dumps({"recipe": name, "task": task, "seed": seed, "measure": m, "before": b, "after": a,
                                  "gain": g, "ci": ci, "seconds": round(rec["seconds"], 1),
                                  "load": round(loads[-1], 2)}, default=str), flush=True)
    results = {"command": " ".join(["python", *sys.argv]), "split": args.split, "seeds": args.seeds,
               "tasks": args.tasks, "base_overrides": BASE_OVERRIDES, "rm_prompts": RM_PROMPTS,
               "extra_overrides": args.overrides,
               "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
               "torch_threads": torch.get_num_threads(), "total_seconds": time.perf_counter() - t0,
               "load_1m": {"min": min(loads), "median": statistics.median(loads), "max": max(loads), "samples": loads},
               "runs": runs}
    results["table"] = table(results)
    print(results["table"])
    print(f"total {results['total_seconds']:.0f} s, load (1 min) median {results['load_1m']['median']:.2f}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
