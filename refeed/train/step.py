"""The one update step: the offline loop (``loop.py``) and the online loop (``online.py``) both call it.

    acc = make_accelerator(cfg)
    update = Update.create(acc, model, module, cfg, total_steps, run_dir, rng, resume_from=None)
    record = update(micro_batches, loss_fn)        # one optimizer step; loss_fn(micro) -> LossOutput
    update.close()

What one call does, in order: for each of its micro-batches, ``loss_fn`` (forward + objective) and
``accelerator.backward(loss / n_micro)``, under ``no_sync`` for all but the last when several
processes run (DDP all-reduces once per step); the metrics averaged over the micro-batches and, across
processes, over the global batch; gradient clipping (``max_grad_norm``; 0 disables it); the optimizer
(AdamW, no decay on norms and biases); the schedule (warm-up, then cosine / linear / constant);
``metrics.jsonl`` (and TensorBoard) every ``log_every`` steps; a checkpoint every ``checkpoint_every``
steps (``refeed.train.checkpoint``: weights, optimizer, scheduler, RNG states, the data RNG and
whatever ``extra_state()`` returns, e.g. the online loop's generator state).

The loss is scaled by ``1 / len(micro_batches)``, so batch 8 x 1 and batch 1 x 8 give the same update.
The caller keeps the data: what a micro-batch is (row indices, rollouts) is opaque here.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from refeed.config import to_dict
from refeed.objectives.base import LossOutput
from refeed.train import checkpoint as ckpt


class Schedule(StrEnum):
    COSINE = "cosine"
    LINEAR = "linear"
    CONSTANT = "constant"


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-4
    batch_size: int = 8  # rows per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    epochs: int = 1
    max_steps: int = 0  # 0: run `epochs` full passes; > 0: stop after this many optimizer steps
    warmup_ratio: float = 0.1
    schedule: Schedule = Schedule.COSINE
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0 disables clipping
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU
    max_length: int = 512  # tokens per sequence; longer prompts lose tokens from the left
    logprob_chunk: int = 1024  # completion positions per LM-head chunk (see refeed.batch.logprobs)
    share_prompt: bool = True  # rows with several answers (pairs, groups): run each prompt once for all of them
    pack: bool = True  # with share_prompt, on Llama-family models: a micro-batch's rows in one unpadded sequence
    log_every: int = 1
    checkpoint_every: int = 0  # 0: no checkpoints
    keep_checkpoints: int = 2  # the newest N are kept
    eval_every: int = 0  # > 0: call train()'s ``callback(step, model)`` every N steps (held-out eval points)
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "epochs", "max_length", "logprob_chunk", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.max_steps < 0 or not 0 <= self.warmup_ratio < 1:
            raise ValueError("train.lr must be > 0, train.max_steps >= 0 and 0 <= train.warmup_ratio < 1")
        if self.eval_every < 0:
            raise ValueError(f"train.eval_every must be >= 0, got {self.eval_every}")


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warmup = int(cfg.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.schedule is Schedule.CONSTANT:
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.schedule is Schedule.LINEAR:
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def on_cpu(cfg: TrainConfig) -> bool:
    return cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())


def is_main_process(cfg: TrainConfig) -> bool:
    """Whether this is the process that writes a run's outputs (always True without a launcher).

    Goes through the same ``cpu`` flag as the loop's Accelerator: accelerate's process state is a
    singleton set up by its first caller, and a first caller without ``cpu=True`` under torchrun on
    CPUs leaves every process believing it is alone.
    """
    from accelerate import PartialState

    return PartialState(cpu=on_cpu(cfg)).is_main_process


def make_accelerator(cfg: TrainConfig):
    """The Accelerator of a run: CPU or GPU per ``cfg.device``; bf16 autocast on CUDA with ``dtype=auto``."""
    from accelerate import Accelerator

    cpu = on_cpu(cfg)
    mixed = "bf16" if not cpu and cfg.dtype in ("auto", "bfloat16") and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(cpu=cpu, mixed_precision=mixed)


def make_optimizer(model, cfg: TrainConfig, total_steps: int):
    """AdamW (no weight decay on biases and norms) and its LambdaLR schedule over ``total_steps``."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps))


class MetricsLog:
    """metrics.jsonl (truncated to ``start_step`` on resume) and optional TensorBoard events."""

    def __init__(self, run_dir: Path | None, start_step: int, tensorboard: bool, enabled: bool) -> None:
        self.file = self.tb = None
        if not (run_dir and enabled):
            return
        path = run_dir / "metrics.jsonl"
        kept = [ln for ln in path.read_text().splitlines() if json.loads(ln)["step"] <= start_step] if path.is_file() else []
        self.file = path.open("w")
        self.file.writelines(line + "\n" for line in kept)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1)

    def write(self, record: dict[str, float]) -> None:
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.tb:
            for k, v in record.items():
                if k != "step":
                    self.tb.add_scalar(k, v, record["step"])

    def close(self) -> None:
        for h in (self.file, self.tb):
            if h:
                h.close()


@dataclass
class Update:
    """One optimizer step per call; holds what a step touches. Build it with ``Update.create``."""

    acc: Any
    model: Any  # the unwrapped model: what checkpoints save
    module: Any  # the prepared module the forward goes through (DDP / FSDP / DeepSpeed wrap it)
    optimizer: Any
    scheduler: Any
    cfg: TrainConfig
    run_dir: Path | None
    rng: random.Random  # the loop's data RNG, saved with every checkpoint
    log: MetricsLog
    step: int = 0
    extra_state: Callable[[], dict[str, Any]] | None = None  # more state for checkpoints (online: the generator)

    @classmethod
    def create(cls, acc, model, module, cfg: TrainConfig, total_steps: int, run_dir: Path | None, rng: random.Random,
               resume_from: Path | None = None, extra_state=None) -> tuple[Update, dict[str, Any] | None]:
        """Optimizer and schedule for ``model``; with ``resume_from``, its weights, optimizer, schedule and
        step from that checkpoint. Returns the update and the checkpoint's state (None without resume),
        whose RNG states the caller restores once its data position is replayed."""
        optimizer, scheduler = make_optimizer(model, cfg, total_steps)
        state, step = None, 0
        if resume_from:
            state = ckpt.load_state(Path(resume_from))
            ckpt.load_weights(model, Path(resume_from))
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step = state["step"]
        # The optimizer goes through prepare with the module (DeepSpeed needs both; FSDP re-points it at
        # the sharded parameters); the scheduler does not: it steps once per optimizer step, here.
        module, optimizer = acc.prepare(module, optimizer)
        log = MetricsLog(run_dir, step, cfg.tensorboard, acc.is_main_process)
        return cls(acc, model, module, optimizer, scheduler, cfg, run_dir, rng, log, step, extra_state), state

    def __call__(self, micro: Sequence[Any], loss_fn: Callable[[Any], LossOutput],
                 extra: dict[str, float] | None = None) -> dict[str, float]:
        """One optimizer step over ``micro`` (each item goes to ``loss_fn``); returns the step's record
        (step, loss, the objective's metrics, lr, grad_norm, then ``extra``), logged and checkpointed."""
        acc, cfg = self.acc, self.cfg
        sums: dict[str, float] = {}
        scale = 1 / len(micro)
        for m, item in enumerate(micro):
            last = m == len(micro) - 1  # DDP all-reduces gradients on the last micro-batch only
            with acc.no_sync(self.module) if not last and acc.num_processes > 1 else contextlib.nullcontext():
                out = loss_fn(item)
                acc.backward(out.loss * scale)  # accelerate's backward: loss scaling, DeepSpeed's engine
            for k, v in {"loss": out.loss, **out.metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v) * scale
        if acc.num_processes > 1:  # report the global batch's mean, as one process would
            t = acc.reduce(torch.tensor(list(sums.values()), device=acc.device), reduction="mean")
            sums = dict(zip(sums, t.tolist(), strict=True))
        params = [p for p in self.module.parameters() if p.requires_grad]
        norm = acc.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        record = {"step": self.step, **sums, "lr": self.scheduler.get_last_lr()[0], "grad_norm": float(norm), **(extra or {})}
        if self.step % cfg.log_every == 0:
            self.log.write(record)
        if self.run_dir and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and acc.is_main_process:
            self.checkpoint()
        return record

    def checkpoint(self) -> Path:
        """Write ``run_dir/checkpoint-<step>`` and drop all but the newest ``keep_checkpoints``."""
        run_dir, cfg = Path(self.run_dir), self.cfg
        extra = self.extra_state() if self.extra_state else None
        path = ckpt.save(run_dir / f"checkpoint-{self.step}", self.model, self.optimizer, self.scheduler, self.step,
                         self.rng, to_dict(cfg), extra)
        olds = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
        for old in olds[: -cfg.keep_checkpoints] if cfg.keep_checkpoints > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def close(self) -> None:
        self.log.close()
