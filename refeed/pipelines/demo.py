"""``refeed demo``: a small model gets better at held-out tasks because of feedback it received.

    refeed demo                 # pretrain (or reuse) -> sample -> simulated feedback -> DPO -> compare
    refeed demo --json          # the final metrics as one JSON object
    refeed demo dpo.beta=0.2 train.lr=1e-4 seed=1

``refeed demo objective.name=grpo`` runs the online path instead (``refeed.pipelines.online_job``: the policy
samples answers to TRAIN prompts, the task's verifier scores them, GRPO updates; the same held-out table).

Steps: (1) the base model (``refeed pretrain``, cached); (2) held-out accuracy before; (3) ``k``
sampled answers per train prompt, logged as interactions; (4) a simulated user who knows the answers
gives thumbs and preferences (correct beats incorrect, ties dropped); (5) DPO on the preference pairs
with the base model as reference; (6) held-out accuracy after. Everything lands in ``runs/<id>/``:
the resolved config, metrics (JSONL), the feedback (``feedback.db``, a refeed store: the pairs are
built from it by ``refeed.datasets.preference_pairs``, as for real users), and ``report.html``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from refeed.config import to_dict
from refeed.pipelines.pretrain import PretrainConfig, pretrain
from refeed.pipelines.simulate import SamplingConfig, rows_from_store, simulate_feedback, store_feedback
from refeed.train.loop import Schedule, TrainConfig

DPO_BETA = 1.0


@dataclass(frozen=True)
class DemoConfig:
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    model: str = ""  # a model directory or hub id to start from; empty: the built-in tiny model, pretrained
    # beta=1.0 keeps the policy close to the base; with beta=0.1 the tiny model drifts and greedy accuracy
    # drops even while the pair accuracy rises (measured with scripts in bench/, see README).
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "dpo", "beta": DPO_BETA})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-4, batch_size=16, epochs=2, warmup_ratio=0.1))
    seed: int = 0
    run_root: str = "runs"


@dataclass
class Stage:
    """What the pipeline reports to a progress display: a named stage, done / total, a metrics dict."""

    name: str
    done: int
    total: int
    info: dict[str, float] = field(default_factory=dict)


def run_demo(cfg: DemoConfig, report: Callable[[Stage], None] = lambda s: None) -> dict[str, Any]:
    """Run the whole demo; returns the final metrics (also written to ``runs/<id>/summary.json``)."""
    import torch

    from refeed.eval.harness import evaluate
    from refeed.eval.report import write_report
    from refeed.models import load
    from refeed.objectives import BatchKind, build
    from refeed.train.loop import train

    t0 = time.perf_counter()
    params = dict(cfg.objective)
    name = params.pop("name", "dpo")
    if name != "dpo" and params.get("beta") == DPO_BETA:
        params.pop("beta")  # the default's DPO beta is not another objective's (GRPO's weighs a KL); give another
    objective = build(name, params)  # refuse a bad objective before any work
    if objective.needs.rewards:  # GRPO and the online family: sample, score with the verifier, update
        return _online_demo(cfg, {"name": name, **params}, report)
    if objective.batch_kind is not BatchKind.PAIR:
        raise ValueError(f"the demo trains on preference pairs; objective '{objective.name}' needs {objective.batch_kind.value} rows")
    task = cfg.pretrain.task.build()  # an unknown task fails here, before any work
    if cfg.model:
        model, tok = load(cfg.model)
        base_name, base_dev, cached = cfg.model, None, True
    else:
        base = pretrain(cfg.pretrain, on_step=lambda s, t, r: report(Stage("pretrain", s, t, r)))
        report(Stage("pretrain", 1, 1, {"dev_accuracy": base.dev_accuracy}))
        model, tok = load(base.model_dir)
        base_name, base_dev, cached = str(base.model_dir), base.dev_accuracy, base.cached
    run_dir = Path(cfg.run_root) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}-s{cfg.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    before = evaluate(model, tok, task, "test")
    report(Stage("eval before", 1, 1, {"accuracy": before.accuracy}))

    interactions, feedback = simulate_feedback(model, tok, task, cfg.sampling, cfg.seed, base_name,
                                               tick=lambda d, t: report(Stage("sample", d, t)))
    store = store_feedback(run_dir, interactions, feedback)
    rows = rows_from_store(store, objective.batch_kind)
    thumbs_up = sum(f["kind"] == "thumbs" and f["up"] for f in feedback)
    report(Stage("feedback", 1, 1, {"pairs": len(rows), "thumbs_up": thumbs_up}))
    if len(rows) < cfg.train.batch_size * cfg.train.grad_accum:
        raise RuntimeError(f"only {len(rows)} preference pairs: too few to train; sample more prompts")

    torch.manual_seed(cfg.seed)
    result = train(model, tok, rows, objective, cfg.train, run_dir=run_dir,
                   progress=lambda st, tot, rec: report(Stage("train", st, tot, rec)))
    after = evaluate(model, tok, task, "test")
    report(Stage("eval after", 1, 1, {"accuracy": after.accuracy}))
    model.save_pretrained(run_dir / "model")
    tok.save_pretrained(run_dir / "model")

    summary = {
        "run_dir": str(run_dir),
        "task": task.name,
        "objective": objective.name,
        "seed": cfg.seed,
        "accuracy_before": before.accuracy,
        "accuracy_after": after.accuracy,
        "accuracy_gain": after.accuracy - before.accuracy,
        "accuracy_before_by_difficulty": before.by_difficulty,
        "accuracy_after_by_difficulty": after.by_difficulty,
        "heldout_examples": before.n,
        "base_model": base_name,
        "base_dev_accuracy": base_dev,
        "base_cached": cached,
        "interactions": len(interactions),
        "feedback": len(feedback),
        "pairs": len(rows),
        "train_steps": result.steps,
        "train_seconds": result.seconds,
        "seconds": time.perf_counter() - t0,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    summary["report"] = str(write_report(run_dir, result.history, summary))
    return summary


def _online_demo(cfg: DemoConfig, objective: dict[str, Any], report: Callable[[Stage], None]) -> dict[str, Any]:
    """``refeed demo objective.name=grpo``: ``refeed train recipes/grpo.yaml``'s job on the demo's task and
    model (train settings: the demo's when changed, else the online defaults below), in the demo's summary."""
    from refeed.pipelines.train_job import DataSection, ModelSection, TrainJobConfig, run_train
    from refeed.train.online import OnlineConfig

    train = cfg.train if cfg.train != DemoConfig().train else ONLINE_TRAIN
    job = TrainJobConfig(model=ModelSection(path=cfg.model), data=DataSection(sampling=cfg.sampling),
                         objective=objective, train=train, pretrain=cfg.pretrain, run_root=cfg.run_root,
                         name=f"demo-{time.strftime('%Y%m%d-%H%M%S')}-s{cfg.seed}",
                         online=OnlineConfig(num_generations=8, temperature=0.7, max_new_tokens=cfg.sampling.max_new_tokens),
                         rewards=[{"name": "verifier"}])
    s = run_train(job, report=report)
    h = s["heldout"]
    return {**s, "task": h["task"], "seed": cfg.seed, "accuracy_before": h["before"], "accuracy_after": h["after"],
            "accuracy_gain": h["gain"], "gain_ci": h["gain_ci"],
            "accuracy_before_by_difficulty": {d: r["before"] for d, r in h["by_difficulty"].items()},
            "accuracy_after_by_difficulty": {d: r["after"] for d, r in h["by_difficulty"].items()},
            "heldout_examples": h["n"], "pairs": 0, "feedback": s["rollouts_logged"]}


ONLINE_TRAIN = TrainConfig(lr=5e-5, batch_size=8, max_steps=20,  # recipes/grpo.yaml's, tuned on DEV
                           warmup_ratio=0.0, schedule=Schedule.CONSTANT)
