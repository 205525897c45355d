"""``refeed train RECIPE``: one objective, one dataset, one model -> ``runs/<id>/``, measured held out.

    refeed train recipes/dpo.yaml objective.beta=0.2 train.max_steps=50
    refeed train recipes/kto.yaml --data feedback.jsonl --eval-data feedback.eval.jsonl
    accelerate launch -m refeed train recipes/dpo.yaml       # several processes / GPUs

A recipe has the sections ``model``, ``data``, ``objective``, ``train`` (``refeed.train.loop.TrainConfig``)
and ``eval``; an objective that learns from rewards (GRPO ...) runs the online loop instead
(``refeed.pipelines.online_job``, sections ``online`` and ``rewards`` too). Data comes from a JSONL / Parquet file in TRL's columns (standard or conversational), or, when
no file is given, from the built-in task: the base model's own answers judged by the simulated user, with the
feedback kind the objective needs (``refeed.pipelines.simulate.PLANS``; ``data.feedback`` picks another),
logged into the run's store and built into rows by ``refeed.datasets`` as real feedback would be.

Held out: a policy is measured on the task's TEST split before and after (accuracy by difficulty, n, the
paired 95% interval of the gain); a reward model on eval rows (``--eval-data``, the ``.eval`` file beside
``--data`` that ``refeed build --split-by prompt`` writes, or simulated feedback on TEST prompts) against the
majority-class and length-only baselines. ``eval.every`` adds points during training (DEV split or eval rows).
The run is recorded in the store: a ``runs`` row and the ``dataset_builds`` membership of what it trained on.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from refeed.config import ConfigError, to_dict
from refeed.pipelines.demo import Stage
from refeed.pipelines.pretrain import PretrainConfig
from refeed.pipelines.simulate import SamplingConfig
from refeed.train.loop import TrainConfig, is_main_process
from refeed.train.online import OnlineConfig


@dataclass(frozen=True)
class LoraSection:
    r: int = 0  # 0: full fine-tuning; > 0: LoRA adapters of this rank through peft
    alpha: int = 16
    dropout: float = 0.0
    # "auto": peft's default for the architecture (all-linear where it has none); "all-linear"; or a list
    target_modules: str | list[str] = "auto"


@dataclass(frozen=True)
class ModelSection:
    path: str = ""  # a model directory or hub id; empty: the built-in tiny model (pretrained, cached)
    dtype: str = "float32"  # weights as loaded; bf16 autocast on GPU comes from train.dtype
    lora: LoraSection = field(default_factory=LoraSection)
    quantization: str = ""  # "4bit" (QLoRA: NF4 base weights + LoRA adapters) or "8bit"; CUDA + bitsandbytes only
    chat_template: str = ""  # a named template (chatml, llama3, ...) or a Jinja file; empty: the tokenizer's own

    def __post_init__(self) -> None:
        if self.quantization and self.lora.r <= 0:
            raise ValueError(f"model.quantization={self.quantization} trains adapters only: set model.lora.r (e.g. 16)")


@dataclass(frozen=True)
class DataSection:
    path: str = ""  # .jsonl / .json / .parquet in TRL columns; empty: simulated feedback on the built-in task
    limit: int = 0  # use the first N rows (0: all)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    feedback: str = ""  # simulated feedback plan (refeed.pipelines.simulate.PLANS); empty: what the objective needs
    eval_path: str = ""  # held-out rows; empty: <data>.eval.<ext> beside data.path when it exists
    store: str = ""  # store URL that records the run and its dataset build; empty: <run_dir>/feedback.db
    from_store: str = ""  # online objectives: prompts from this store (distinct last user messages)


@dataclass(frozen=True)
class EvalSection:
    enabled: bool = True
    every: int = 0  # an eval point every N optimizer steps (DEV split, or the eval rows); 0: before / after only
    prompts: int = 0  # TEST prompts for task accuracy (0: the whole split)
    split: str = "test"  # the held-out split measured before / after ("dev" while tuning a recipe's defaults)
    dev_prompts: int = 100  # DEV prompts per eval.every point
    rm_prompts: int = 200  # TEST prompts the simulated user judges for reward-model eval rows
    max_new_tokens: int = 16
    examples: int = 5  # held-out answers shown in the report, before and after


GENERATOR_BACKENDS = ("transformers", "openai", "vllm")


@dataclass(frozen=True)
class GeneratorSection:
    """Where an online recipe's rollouts are sampled (``refeed.models``' generators).

    transformers: the policy itself, in process (the default; tested). openai: any OpenAI-compatible endpoint
    (``url`` and ``model``); its model is not updated by this run, so its rollouts are off-policy samples whose
    sampling log-probs the importance ratios use, unless the endpoint serves the policy being trained. vllm: an
    in-process ``vllm.LLM`` on the base, its weights (or, with LoRA, a new adapter ``name@vN``) synced from the
    trainer before every generation; **untested** (no machine here can install vLLM).
    """

    backend: str = "transformers"
    url: str = ""  # openai: the endpoint's base URL, e.g. http://127.0.0.1:8000/v1
    model: str = ""  # openai: the model name sent in requests
    api_key_env: str = ""  # openai: the environment variable that holds the key
    token_ids: bool = True  # openai: ask for the exact sampled ids (vLLM's and refeed serve's return_token_ids)
    options: dict[str, Any] = field(default_factory=dict)  # openai: merged into every request; vllm: vllm.LLM kwargs

    def __post_init__(self) -> None:
        if self.backend not in GENERATOR_BACKENDS:
            raise ValueError(f"generator.backend must be one of {', '.join(GENERATOR_BACKENDS)}, got '{self.backend}'")
        if self.backend == "openai" and not (self.url and self.model):
            raise ValueError("generator.backend=openai needs generator.url (e.g. http://127.0.0.1:8000/v1) and "
                             "generator.model (the name the endpoint serves)")
        if self.backend != "openai" and (self.url or self.model or self.api_key_env):
            raise ValueError(f"generator.url / model / api_key_env are for backend=openai, not '{self.backend}'")


@dataclass(frozen=True)
class TrainJobConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "dpo"})
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalSection = field(default_factory=EvalSection)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # the built-in base model and task
    online: OnlineConfig = field(default_factory=OnlineConfig)  # objectives that learn from rewards (GRPO ...)
    rewards: list[dict[str, Any]] = field(default_factory=list)  # their reward specs (refeed.pipelines.online_job)
    generator: GeneratorSection = field(default_factory=GeneratorSection)  # where online rollouts are sampled
    run_root: str = "runs"
    name: str = ""  # run directory name; empty: <objective>-<time>


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a data file, every TRL type (implicit prompts, language modelling) read as an explicit
    prompt and its answers by ``refeed.store.trl``, as the importer reads them."""
    from refeed.store.trl import explicit_rows

    try:
        return explicit_rows(_read_rows(path))
    except ValueError as e:
        raise ConfigError(f"data file '{path}': {e}") from None


def _read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL / JSON / Parquet file (TRL conventions), read with the ``datasets`` library."""
    from datasets import load_dataset

    from refeed.pipelines.quiet import quiet_third_party

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data file '{p}' does not exist")
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(p.suffix)
    if kind is None:
        raise ConfigError(f"data file '{p}' must end in .jsonl, .json or .parquet")
    try:
        with quiet_third_party():
            return load_dataset(kind, data_files=str(p), split="train").to_list()
    except Exception as e:  # noqa: BLE001 - datasets raises many types for a malformed file
        raise ConfigError(f"could not read '{p}' as {kind}: {e}") from None


def eval_path(cfg: DataSection) -> Path | None:
    """``data.eval_path``, else the ``.eval`` file ``refeed build --split-by prompt`` wrote beside data.path."""
    if cfg.eval_path:
        return Path(cfg.eval_path)
    if cfg.path:
        p = Path(cfg.path)
        sibling = p.with_name(f"{p.stem}.eval{p.suffix}")
        return sibling if sibling.is_file() else None
    return None


def _model(cfg: TrainJobConfig):
    from refeed.models import load
    from refeed.pipelines.pretrain import pretrain

    path = cfg.model.path or str(pretrain(cfg.pretrain).model_dir)
    if cfg.model.quantization:
        from refeed.models import load_model, load_tokenizer
        from refeed.models.loading import quantization_config

        device = "cuda" if cfg.train.device == "auto" else cfg.train.device
        try:
            quantization_config(cfg.model.quantization, device)  # refuse before any loading
        except ValueError as e:
            raise ConfigError(str(e)) from None
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(load_model(path, cfg.model.dtype, device, cfg.model.quantization))
        tok = load_tokenizer(path, cfg.model.chat_template)
    else:
        model, tok = load(path, dtype=cfg.model.dtype, chat_template=cfg.model.chat_template)
    if cfg.model.lora.r > 0:
        from refeed.models.loading import add_lora

        lc = cfg.model.lora
        try:
            model = add_lora(model, lc.r, lc.alpha, lc.dropout, lc.target_modules)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return model, tok, path


def foreign_data_warning(cfg: TrainJobConfig, rows: list[dict]) -> str | None:
    """A warning when the built-in tiny model (no model.path) is to train on rows that are not its task's."""
    from refeed.tasks import task_of

    if cfg.model.path or not rows:
        return None
    sample = rows[:50]
    own = sum(task_of(r.get("prompt")) == cfg.pretrain.task.name for r in sample)
    if own >= len(sample) / 2:
        return None
    return (f"--data does not look like the built-in '{cfg.pretrain.task.name}' task ({own} of the first "
            f"{len(sample)} prompts are), yet no model was given: the built-in tiny model (a character-level "
            f"model that only knows that task) will train on it. Pass model.path=<your model dir or hub id>.")


@dataclass
class _Data:
    rows: list[dict]
    builder: str
    params: dict[str, Any]
    eval_rows: list[dict] | None = None  # reward-model eval rows


def _simulated(cfg: TrainJobConfig, objective, model, tok, base: str, task, store, report) -> _Data:
    """The plan's feedback on TRAIN prompts into ``store`` and built into rows (and, for reward models,
    the same on TEST prompts into a second store for eval rows)."""
    from refeed.objectives import Head
    from refeed.pipelines import simulate as sim
    from refeed.tasks import oracle

    plan = sim.plan_for(objective, cfg.data.feedback)
    p = sim.PLANS[plan]
    tick = lambda what: (lambda d, t: report(Stage(what, d, t)))  # noqa: E731

    def feedback(split: str, into, tick_name: str, prompts: int) -> None:
        scfg = cfg.data.sampling if split == "train" else _with_prompts(cfg.data.sampling, prompts)
        its, items = sim.simulate_feedback(model, tok, task, scfg, cfg.train.seed, base, tick(tick_name),
                                           kinds=tuple(k for k in p.kinds if k != "principle"), split=split)
        into.write_batch([*its.values(), *items])

    if p.builder == "principles":
        store.write_batch(oracle.principle_items(task))
        rows = sim.principle_rows(model, tok, store, task, cfg.data.sampling, cfg.train.seed, base, tick("sample"))
    else:
        feedback("train", store, "sample", 0)
        rows = sim.followup_rows(model, tok, store) if p.builder == "followups" else sim.build_rows(store, plan).to_list()
    eval_rows = None
    if objective.needs.head is Head.SCORE and cfg.eval.enabled:
        ev = sim.PLANS[p.eval_plan or plan]
        from refeed.store import Store

        held = Store(f"sqlite:///{Path(store.url.removeprefix('sqlite:///')).with_name('eval.db')}") \
            if store.url.startswith("sqlite:///") else Store(store.url, project=f"{store.project}-eval")
        its, items = sim.simulate_feedback(model, tok, task, _with_prompts(cfg.data.sampling, cfg.eval.rm_prompts),
                                           cfg.train.seed + 1, base, tick("sample eval"), kinds=ev.kinds, split=cfg.eval.split)
        held.write_batch([*its.values(), *items])
        eval_rows = sim.build_rows(held, p.eval_plan or plan).to_list()
    if not rows:
        raise RuntimeError(f"the simulated user's {plan} gave no {objective.batch_kind.value} rows; sample more "
                           f"prompts (data.sampling.prompts) or answers (data.sampling.k)")
    return _Data(rows, f"simulated:{plan}", {"plan": plan, "builder": p.builder, **dict(p.params)}, eval_rows)


def _with_prompts(s: SamplingConfig, prompts: int) -> SamplingConfig:
    from dataclasses import replace

    return replace(s, prompts=prompts)


def _open_store(cfg: TrainJobConfig, run_dir: Path):
    from refeed.store import Store

    main = is_main_process(cfg.train)
    if cfg.data.store:
        return Store(cfg.data.store)
    # Every process of a distributed run simulates the same feedback (same seed); each keeps its own store file.
    name = "feedback.db" if main else f"feedback.rank{os.environ.get('RANK', '0')}.db"
    return Store(f"sqlite:///{(run_dir / name).resolve()}")


def checkpoint_dir(resume: str | None) -> Path | None:
    """``--resume``'s checkpoint directory, refused before any work when it does not exist."""
    resume_dir = Path(resume) if resume else None
    if resume_dir and not resume_dir.is_dir():
        raise ConfigError(f"checkpoint '{resume_dir}' does not exist")
    return resume_dir


def make_run_dir(cfg: TrainJobConfig, objective, resume_dir: Path | None) -> Path:
    """The run directory: the checkpoint's parent on resume, else ``run_root/<name or objective-time>``.

    A new run never writes into a directory that holds files: its store would add a second set of simulated
    feedback to the first one's and train on both. A named one is refused; an unnamed one started in the same
    second as another gets a suffix (``-2``, ``-3``, ...)."""
    if resume_dir:
        return resume_dir.parent
    root = Path(cfg.run_root)
    run_dir = root / (cfg.name or f"{objective.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if cfg.name:
            raise ConfigError(f"run directory {run_dir} already holds a run: resume it (--resume {run_dir}/checkpoint-N), "
                              f"choose another name=, or remove the directory")
        n = 2
        while (root / f"{run_dir.name}-{n}").exists():
            n += 1
        run_dir = root / f"{run_dir.name}-{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_train(cfg: TrainJobConfig, resume: str | None = None, report: Callable[[Stage], None] | None = None,
              notice: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one training job; returns its summary (also written to ``run_dir/summary.json``).

    ``report`` gets every stage's progress (sample, eval, train); ``notice`` gets warnings (default:
    ``warnings.warn``)."""
    from refeed.batch.encode import check_columns
    from refeed.objectives import Head, build

    report = report or (lambda s: None)
    notice = notice or (lambda m: warnings.warn(m, stacklevel=2))
    t0 = time.perf_counter()
    params = dict(cfg.objective)
    objective = build(params.pop("name", "dpo"), params)
    if objective.needs.rewards:  # sampled from the policy and scored: the online loop
        from refeed.pipelines.online_job import run_online

        return run_online(cfg, objective, resume, report, notice, t0)
    rows = load_rows(cfg.data.path) if cfg.data.path else None
    if rows is not None:
        check_columns(objective, set(rows[0]) if rows else set())
        if (msg := foreign_data_warning(cfg, rows)) is not None:
            notice(msg)
    elif cfg.data.feedback:
        from refeed.pipelines.simulate import plan_for

        plan_for(objective, cfg.data.feedback)  # an unknown plan fails before any work
    ev_path = eval_path(cfg.data)
    eval_rows = load_rows(ev_path) if ev_path else None
    task = cfg.pretrain.task.build()
    resume_dir = checkpoint_dir(resume)
    model, tok, base = _model(cfg)
    from refeed.models.templates import is_conversational, require_chat_template

    if rows is None or any(is_conversational(r) for r in rows):  # the built-in task's prompts are chats too
        require_chat_template(tok, base)
    run_dir = make_run_dir(cfg, objective, resume_dir)
    store = _open_store(cfg, run_dir)
    if rows is None:
        data = _simulated(cfg, objective, model, tok, base, task, store, report)
    else:
        data = _Data(rows, f"file:{Path(cfg.data.path).name}", {"path": str(cfg.data.path)})
    if cfg.data.limit:
        data.rows = data.rows[: cfg.data.limit]
    if eval_rows is not None:
        data.eval_rows = eval_rows
    is_rm = objective.needs.head is Head.SCORE
    task_eval = cfg.eval.enabled and not is_rm and (not cfg.data.path or foreign_data_warning(
        TrainJobConfig(pretrain=cfg.pretrain, data=cfg.data), data.rows) is None)
    main = is_main_process(cfg.train)
    if main:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    run_id = _record_start(store, cfg, objective, data, run_dir) if main else None
    try:
        summary = _train_and_measure(cfg, objective, model, tok, base, task, data, run_dir, resume_dir, report,
                                     task_eval, is_rm, t0)
    except BaseException:
        if run_id:
            _record_end(store, run_id, "failed", {})
        raise
    summary["run_id"] = run_id
    if main:
        _record_end(store, run_id, "finished", _run_metrics(summary))
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _train_and_measure(cfg, objective, model, tok, base, task, data: _Data, run_dir: Path, resume_dir, report,
                       task_eval: bool, is_rm: bool, t0: float) -> dict[str, Any]:
    from refeed.pipelines import heldout
    from refeed.train.loop import train

    # Custom data with eval rows: a policy is measured on those rows (no task to sample).
    rows_eval = not task_eval and not is_rm and bool(data.eval_rows) and cfg.eval.enabled
    measure = heldout.Measure(cfg.eval, None if rows_eval else task, tok, objective, data.eval_rows, report, run_dir,
                              main=is_main_process(cfg.train), max_length=cfg.train.max_length)
    model = measure.wrap(model)
    before = measure.before(model) if task_eval or rows_eval else None
    curve = measure.curve_hook(model, task_eval)

    def progress(step: int, total: int, record: dict) -> bool:
        report(Stage("train", step, total, record))
        curve(step, total)
        return False

    result = train(model, tok, data.rows, objective, cfg.train, run_dir=run_dir, progress=progress,
                   resume_from=resume_dir, reference_progress=lambda done, total: report(Stage("reference", done, total)))
    heldout_summary = (measure.after(result.model, before)
                       if task_eval or rows_eval or (is_rm and data.eval_rows and cfg.eval.enabled) else None)
    summary = {"run_dir": str(run_dir), "objective": objective.name, "base_model": base, "rows": len(data.rows),
               "data": data.builder, "train_steps": result.steps, "train_seconds": result.seconds,
               "seconds": time.perf_counter() - t0,
               "final_loss": result.history[-1]["loss"] if result.history else None,
               "config": {"objective": dict(cfg.objective), "lr": cfg.train.lr, "steps": result.steps,
                          "batch_size": cfg.train.batch_size, "epochs": cfg.train.epochs},
               "heldout": heldout_summary, "report": str(run_dir / "report.html")}
    save_outputs(cfg, result.model, tok, run_dir, summary)
    return summary


def save_outputs(cfg: TrainJobConfig, model, tok, run_dir: Path, summary: dict[str, Any]) -> None:
    """The trained model (LoRA merged; QLoRA: the adapters) and ``report.html``, written by the main process
    only (under accelerate launch)."""
    from refeed.eval.report import write_report
    from refeed.pipelines import heldout

    if not is_main_process(cfg.train):
        return
    final = run_dir / "model"
    _merged(model, cfg.model.lora.r > 0 and not cfg.model.quantization).save_pretrained(final)
    tok.save_pretrained(final)
    write_report(run_dir, _all_history(run_dir), summary, heldout.read_curve(run_dir))


def _record_start(store, cfg, objective, data: _Data, run_dir: Path) -> str:
    from refeed.store import provenance

    ids = provenance.feedback_ids_of(store, {i for r in data.rows for i in r.get("source_ids") or []})
    if data.builder.startswith("file:"):  # rows built elsewhere: keep every id they name
        ids = sorted({i for r in data.rows for i in r.get("source_ids") or []})
    build_id = provenance.record_build(store, data.builder, data.params, ids, rows=len(data.rows))
    config = {"run_dir": str(run_dir), "objective": objective.name, "recipe": to_dict(cfg)}
    return provenance.start_run(store, "train", json.loads(json.dumps(config, default=str)), [build_id])


def _record_end(store, run_id: str, status: str, metrics: dict) -> None:
    from refeed.store import provenance

    provenance.finish_run(store, run_id, status, json.loads(json.dumps(metrics, default=str)))


def _run_metrics(summary: dict) -> dict:
    keep = ("rows", "train_steps", "train_seconds", "final_loss", "heldout")
    return {k: summary[k] for k in keep if k in summary}


def _merged(model, lora: bool):
    """The model to save: LoRA adapters merged into the weights (inside a reward model's LM too)."""
    if not lora:
        return model
    if hasattr(model, "score_head"):  # a ScoreModel around a peft model
        model.lm = model.lm.merge_and_unload()
        return model
    return model.merge_and_unload()


def _all_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
