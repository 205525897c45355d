"""``refeed train RECIPE``: one objective, one dataset, one model -> ``runs/<id>/``.

    refeed train recipes/dpo.yaml objective.beta=0.2 train.max_steps=50
    refeed train recipes/kto.yaml --data feedback.jsonl
    accelerate launch -m refeed train recipes/dpo.yaml       # several processes / GPUs

A recipe has the sections ``model``, ``data``, ``objective``, ``train`` (``refeed.train.loop.TrainConfig``).
Data comes from a JSONL / Parquet file in TRL's columns (standard or conversational), or, when no
file is given, from the built-in task: the base model's own answers judged by the simulated user
(preference pairs, thumbs, or thumbs-up answers, whichever the objective's batch kind needs).
The run directory gets the resolved config, metrics.jsonl, checkpoints, the final model and report.html.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from refeed.config import ConfigError, to_dict
from refeed.pipelines.pretrain import PretrainConfig
from refeed.pipelines.simulate import SamplingConfig
from refeed.train.loop import TrainConfig, is_main_process


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


@dataclass(frozen=True)
class TrainJobConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "dpo"})
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)  # the built-in base model and task
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

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data file '{p}' does not exist")
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(p.suffix)
    if kind is None:
        raise ConfigError(f"data file '{p}' must end in .jsonl, .json or .parquet")
    try:
        return load_dataset(kind, data_files=str(p), split="train").to_list()
    except Exception as e:  # noqa: BLE001 - datasets raises many types for a malformed file
        raise ConfigError(f"could not read '{p}' as {kind}: {e}") from None


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


def _simulated_rows(cfg: TrainJobConfig, objective, model, tok, base: str, run_dir) -> list[dict]:
    from refeed.pipelines.simulate import rows_from_store, simulate_feedback, store_feedback

    task = cfg.pretrain.task.build()
    interactions, feedback = simulate_feedback(model, tok, task, cfg.data.sampling, cfg.train.seed, base)
    # Every process of a distributed run simulates the same feedback (same seed); each keeps its own store file.
    name = "feedback.db" if is_main_process(cfg.train) else f"feedback.rank{os.environ.get('RANK', '0')}.db"
    rows = rows_from_store(store_feedback(run_dir, interactions, feedback, name), objective.batch_kind)
    if rows is None:
        raise ConfigError(f"objective '{objective.name}' needs {objective.batch_kind.value} rows, which the simulated "
                          f"user does not produce; pass --data with such rows")
    return rows


def run_train(cfg: TrainJobConfig, resume: str | None = None, progress=None) -> dict[str, Any]:
    """Run one training job; returns its summary (also written to ``run_dir/summary.json``)."""
    import json

    from refeed.batch.encode import check_columns
    from refeed.eval.report import write_report
    from refeed.objectives import build
    from refeed.train.loop import train

    t0 = time.perf_counter()
    params = dict(cfg.objective)
    objective = build(params.pop("name", "dpo"), params)
    rows = load_rows(cfg.data.path) if cfg.data.path else None
    if rows is not None:
        check_columns(objective, set(rows[0]) if rows else set())
    resume_dir = Path(resume) if resume else None
    if resume_dir and not resume_dir.is_dir():
        raise ConfigError(f"checkpoint '{resume_dir}' does not exist")
    model, tok, base = _model(cfg)
    from refeed.models.templates import is_conversational, require_chat_template

    if rows is None or any(is_conversational(r) for r in rows):  # the built-in task's prompts are chats too
        require_chat_template(tok, base)
    run_dir = resume_dir.parent if resume_dir else Path(cfg.run_root) / (cfg.name or f"{objective.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if rows is None:
        rows = _simulated_rows(cfg, objective, model, tok, base, run_dir)
    if cfg.data.limit:
        rows = rows[: cfg.data.limit]
    if is_main_process(cfg.train):
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    result = train(model, tok, rows, objective, cfg.train, run_dir=run_dir, progress=progress, resume_from=resume_dir)
    summary = {"run_dir": str(run_dir), "objective": objective.name, "base_model": base, "rows": len(rows),
               "train_steps": result.steps, "train_seconds": result.seconds, "seconds": time.perf_counter() - t0,
               "final_loss": result.history[-1]["loss"] if result.history else None,
               "report": str(run_dir / "report.html")}
    if is_main_process(cfg.train):  # under accelerate launch, one process writes the run's outputs
        final = run_dir / "model"
        _merged(result.model, cfg.model.lora.r > 0 and not cfg.model.quantization).save_pretrained(final)  # QLoRA: the adapters
        tok.save_pretrained(final)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        write_report(run_dir, _all_history(run_dir), summary)
    return summary


def _merged(model, lora: bool):
    """The model to save: LoRA adapters merged into the weights (inside a reward model's LM too)."""
    if not lora:
        return model
    if hasattr(model, "score_head"):  # a ScoreModel around a peft model
        model.lm = model.lm.merge_and_unload()
        return model
    return model.merge_and_unload()


def _all_history(run_dir: Path) -> list[dict]:
    import json

    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
