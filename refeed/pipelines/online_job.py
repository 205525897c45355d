"""``refeed train`` for objectives that learn from rewards (GRPO and the rest of its family): the online loop.

    refeed train recipes/grpo.yaml                                  # arithmetic, the task's verifier as reward
    refeed train recipes/grpo.yaml pretrain.task.name=reverse        # the reverse task
    refeed train recipes/grpo.yaml --data prompts.jsonl 'rewards=[{path: mypkg.rewards:exact_match}]'
    refeed train recipes/grpo.yaml data.from_store=sqlite:///feedback.db   # what users asked

``run_train`` hands any objective whose ``needs.rewards`` is set (GROUP rows) to ``run_online``; nothing
here knows GRPO. Sections beyond the offline recipe's: ``online`` (``refeed.train.online.OnlineConfig``:
num_generations, mu, temperature, top_p, max_new_tokens) and ``rewards``, a list of specs:
``{name: verifier}`` (the built-in task's verifier: 1 when right, 0 when wrong, on the row's ``answer``
column; prompts from a file or a store without one get the answer of the task prompt they are, if any), ``{path: "pkg.mod:fn", weight: w}`` (a user function
with TRL's signature ``fn(prompts, completions, **columns) -> list[float | None]``).

Prompts come from the built-in task's TRAIN split (``data.sampling.prompts`` of them), from ``--data`` (a
``prompt`` column; the other columns go to the reward functions, as in TRL), or from ``data.from_store``
(the distinct last user messages logged there, ``refeed.datasets.prompts``). Every rollout is logged to the
run's store as it is sampled: an interaction with its exact tokens (``served_tokens``: ids, sampling
log-probs, finish reason, the policy version ``<run>@step<N>``) and an ``outcome`` feedback (pass when the
weighted reward is > 0, score = the reward), one transaction per generation; the run's dataset build is
that feedback, so ``refeed build pairs`` on the store reuses the online data offline. The held-out
before/after table, eval points (``eval.every``, DEV), report and ``runs`` row are the offline job's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from refeed.config import ConfigError, to_dict
from refeed.pipelines.demo import Stage
from refeed.pipelines.train_job import (
    GeneratorSection,
    TrainJobConfig,
    _model,
    _open_store,
    _read_rows,
    _record_end,
    checkpoint_dir,
    foreign_data_warning,
    make_run_dir,
    save_outputs,
)
from refeed.train.loop import is_main_process


def _last_user(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt.strip()
    users = [m for m in prompt if m.get("role") == "user"]
    return str(users[-1].get("content") or "").strip() if users else ""


def _with_answers(rows: list[dict], task) -> list[dict]:
    """Rows without an ``answer`` column get the task's answer where the prompt is one of its prompts (any
    split), None elsewhere, so the verifier can score prompts from a file or a store."""
    if not rows or "answer" in rows[0]:
        return rows
    known = {_last_user(e.messages): e.answer for s in ("train", "dev", "test") for e in task.examples(s)}
    return [{**r, "answer": known.get(_last_user(r["prompt"]))} for r in rows]


def _rewards(specs: list[dict], task: str | None) -> tuple[list[Any], list[float]]:
    """The recipe's ``rewards:`` list as functions and weights (``refeed.rewards.build_rewards``), its errors
    as one-line config errors."""
    from refeed.rewards import build_rewards

    try:
        return build_rewards(specs, task=task)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def _prompts(cfg: TrainJobConfig, task) -> tuple[list[dict], str]:
    """The prompt rows and where they came from."""
    d = cfg.data
    if d.path and d.from_store:
        raise ConfigError("give the prompts as data.path (--data) or data.from_store, not both")
    if d.path:
        rows, source = _read_rows(d.path), f"file:{Path(d.path).name}"
        if not rows or "prompt" not in rows[0]:
            have = ", ".join(sorted(rows[0])) if rows else "no rows"
            raise ConfigError(f"data file '{d.path}' has no 'prompt' column, the one the online loop samples "
                              f"answers to (it has: {have})")
        rows = _with_answers(rows, task)
    elif d.from_store:
        from refeed.datasets.prompts import logged_prompts
        from refeed.store import Store

        rows, source = logged_prompts(Store(d.from_store)), f"store:{d.from_store}"
        if not rows:
            raise ConfigError(f"data.from_store '{d.from_store}' holds no user prompts")
        rows = _with_answers(rows, task)
    else:
        examples = task.examples("train")
        examples = examples[: d.sampling.prompts] if d.sampling.prompts else examples
        rows = [{"prompt": list(e.messages), "answer": e.answer, "difficulty": e.difficulty} for e in examples]
        source = f"simulated:online:{task.name}"  # the built-in task's prompts, scored by its verifier
    return (rows[: d.limit] if d.limit else rows), source


class _RolloutLog:
    """``on_rollouts``: each generation's rollouts into the store with their outcome feedback, one commit."""

    def __init__(self, store, run_id: str | None, names: str) -> None:
        self.store, self.run_id, self.names = store, run_id, names
        self.feedback_ids: list[str] = []
        self.seconds = 0.0

    def __call__(self, generation: int, rollouts: list) -> None:
        from refeed.store import records
        from refeed.store.tokens import log_rollouts

        t0 = time.perf_counter()
        extra = []
        for r in rollouts:
            total = float(r.rewards.get("total") or 0.0)
            extra.append(records.feedback_record(r.id, "outcome", source="rule", author=f"reward:{self.names}",
                                                 idempotency_key=None,
                                                 fields={"passed": total > 0, "score": total, "verifier": self.names}))
        log_rollouts(self.store, rollouts, params=rollouts[0].sampling.to_dict(), extra=extra,
                     metadata={"origin": "online", "run_id": self.run_id, "generation": generation})
        self.feedback_ids += [f.id for f in extra]
        self.seconds += time.perf_counter() - t0


def _attach_build(store, run_id: str, build_id: str) -> None:
    """Name the dataset build (made at the end: its feedback did not exist at the start) on the run row."""
    from sqlalchemy import select, update

    from refeed.store.tables import Run

    with store._writes.begin() as conn:
        config = dict(conn.execute(select(Run.config).where(Run.id == run_id)).scalar() or {})
        config["dataset_builds"] = [*config.get("dataset_builds", []), build_id]
        conn.execute(update(Run).where(Run.id == run_id).values(config=config))


def run_online(cfg: TrainJobConfig, objective, resume: str | None, report: Callable[[Stage], None],
               notice: Callable[[str], None], t0: float) -> dict[str, Any]:
    """The online training job; returns its summary (also ``run_dir/summary.json``)."""
    from refeed.models.templates import require_chat_template
    from refeed.objectives import BatchKind
    from refeed.store import provenance
    from refeed.train.online import check_context

    if objective.batch_kind is not BatchKind.GROUP:
        raise ConfigError(f"objective '{objective.name}' learns from rewards but not from groups of answers; "
                          f"the online loop samples groups")
    resume_dir = checkpoint_dir(resume)
    task = cfg.pretrain.task.build()
    rows, source = _prompts(cfg, task)
    builtin = source.startswith("simulated:")
    specs = list(cfg.rewards) or ([{"name": "verifier"}] if builtin else [])
    if not specs:
        raise ConfigError("the online loop needs a reward: add e.g. rewards: [{path: mypkg.rewards:exact_match}] "
                          "or [{name: verifier}] to the recipe")
    fns, weights = _rewards(specs, cfg.pretrain.task.name)
    online = cfg.online if cfg.online.reward_weights else replace(cfg.online, reward_weights=tuple(weights))
    if not builtin and (msg := foreign_data_warning(cfg, rows)) is not None:
        notice(msg)
    model, tok, base = _model(cfg)
    require_chat_template(tok, base)  # the generator samples to chats (a text prompt is one user message)
    check_context(model, tok, rows, online.max_new_tokens)  # before any eval or sampling
    run_dir = make_run_dir(cfg, objective, resume_dir)
    store = _open_store(cfg, run_dir)
    main = is_main_process(cfg.train)
    if main:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    config = json.loads(json.dumps({"run_dir": str(run_dir), "objective": objective.name, "recipe": to_dict(cfg)},
                                   default=str))
    run_id = provenance.start_run(store, "train", config, []) if main else None
    names = "+".join(getattr(f, "__name__", type(f).__name__) for f in fns)
    log = _RolloutLog(store, run_id, names)
    try:
        task_eval = cfg.eval.enabled and (builtin or foreign_data_warning(
            TrainJobConfig(pretrain=cfg.pretrain, data=cfg.data), rows) is None)
        summary = _train_and_measure(cfg, objective, model, tok, base, task, rows, fns, online, run_dir, resume_dir,
                                     report, task_eval, log, t0)
        summary |= {"data": source, "rewards": specs, "rollouts_logged": len(log.feedback_ids),
                    "rollout_log_seconds": log.seconds}
        if main:
            build_id = provenance.record_build(store, "online:rollouts", {"prompts": source, "rewards": specs,
                                                                          "run_dir": str(run_dir)},
                                               log.feedback_ids, rows=len(log.feedback_ids))
            _attach_build(store, run_id, build_id)
    except BaseException:
        if run_id:
            _record_end(store, run_id, "failed", {})
        raise
    summary["run_id"] = run_id
    if main:
        keep = ("rows", "train_steps", "train_seconds", "final_loss", "heldout", "rollouts_logged")
        _record_end(store, run_id, "finished", {k: summary[k] for k in keep if k in summary})
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def make_generator(gen: GeneratorSection, model, tok, base: str, name: str, run_dir: Path):
    """The run's ``Generator`` (``GeneratorSection``): the policy in process, an endpoint, or vLLM (untested)."""
    if gen.backend == "openai":
        from refeed.models.openai_generator import OpenAIGenerator

        return OpenAIGenerator(gen.url, gen.model, api_key_env=gen.api_key_env or None, token_ids=gen.token_ids,
                               extra_body=gen.options)
    if gen.backend == "vllm":
        from refeed.models.vllm_generator import VLLMGenerator

        try:
            return VLLMGenerator(base, name=name, enable_lora=hasattr(model, "peft_config"),
                                 adapter_root=run_dir / "adapters", **gen.options)
        except ImportError as e:
            raise ConfigError(f"generator.backend=vllm: {e}") from None
    from refeed.models.hf_generator import TransformersGenerator

    return TransformersGenerator(model, tok, name=name, version=f"{name}@step0")


def _train_and_measure(cfg, objective, model, tok, base, task, rows, fns, online, run_dir: Path, resume_dir,
                       report, task_eval: bool, log: _RolloutLog, t0: float) -> dict[str, Any]:
    from refeed.pipelines import heldout
    from refeed.train.online import train_online

    measure = heldout.Measure(cfg.eval, task, tok, objective, None, report, run_dir, main=is_main_process(cfg.train),
                              max_length=cfg.train.max_length)
    before = measure.before(model) if task_eval else None
    curve = measure.curve_hook(model, task_eval)

    def progress(step: int, total: int, record: dict) -> bool:
        report(Stage("train", step, total, {k: record[k] for k in ("loss", "reward/mean", "entropy") if k in record}))
        curve(step, total)
        return False

    name = run_dir.name + (":lora" if cfg.model.lora.r > 0 else "")
    generator = make_generator(cfg.generator, model, tok, base, name, run_dir)
    result = train_online(model, tok, rows, fns, objective, cfg.train, online, run_dir=run_dir, generator=generator,
                          resume_from=resume_dir, progress=progress, on_rollouts=log)
    heldout_summary = measure.after(result.model, before) if task_eval else None
    h = result.history
    summary = {"run_dir": str(run_dir), "objective": objective.name, "base_model": base, "rows": len(rows),
               "train_steps": result.steps, "train_seconds": result.seconds, "seconds": time.perf_counter() - t0,
               "final_loss": h[-1]["loss"] if h else None,
               "reward_first": h[0]["reward/mean"] if h else None, "reward_last": h[-1]["reward/mean"] if h else None,
               "config": {"objective": dict(cfg.objective), "lr": cfg.train.lr, "steps": result.steps,
                          "batch_size": cfg.train.batch_size, "epochs": cfg.train.epochs,
                          **{f"online.{k}": v for k, v in to_dict(online).items()}},
               "heldout": heldout_summary, "report": str(run_dir / "report.html")}
    save_outputs(cfg, result.model, tok, run_dir, summary)
    return summary
