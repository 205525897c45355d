"""The offline loop: rows -> batches -> log-probs -> objective -> AdamW. Every offline objective uses it.

    result = train(model, tokenizer, rows, build("dpo", {"beta": 0.1}), TrainConfig(lr=5e-4), run_dir=Path("runs/x"))

What the loop does, and in which order:
1. tokenizes the rows for the objective's ``batch_kind`` (``refeed.train.batching``);
2. if ``objective.needs_reference``: computes the reference log-probs of every sequence ONCE, before
   the first update, with the policy as it is (the reference is the starting policy) or with
   ``ref_model`` when given, and keeps only completion-token values (a few floats per sequence);
3. per optimizer step: ``grad_accum`` micro-batches of ``batch_size`` rows, each one forward for all
   its sequences (chosen and rejected together), loss scaled by ``1/grad_accum`` so that
   batch 8 x 1 and batch 1 x 8 give the same update; gradient clipping; AdamW; warm-up then decay;
4. logs one JSON line per step to ``run_dir/metrics.jsonl`` (loss, lr, grad norm, objective metrics)
   and, with ``tensorboard=true``, TensorBoard events in ``run_dir/tb``;
5. every ``checkpoint_every`` steps writes ``run_dir/checkpoint-<step>`` (``refeed.train.checkpoint``);
   ``resume_from=<checkpoint dir>`` continues exactly where that checkpoint left off.
On CUDA with ``dtype="auto"`` the forward runs under bf16 autocast with float32 master weights.

Processes: the loop runs under ``accelerate``. Launched with ``accelerate launch`` (DDP over gloo on
CPUs or NCCL on GPUs), each process takes ``batch_size`` rows of every micro-batch, so one optimizer
step sees ``batch_size * grad_accum * num_processes`` rows, and the averaged gradients equal those of
one process running that global batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from refeed.config import ConfigError, to_dict
from refeed.objectives.base import Head, Objective, TokenLogps, capability
from refeed.train import checkpoint as ckpt
from refeed.train.batching import (
    ANSWER_COLUMNS,
    EncodedRow,
    collate,
    encode_rows,
    scatter_cached,
    shape_for_objective,
)
from refeed.train.logprobs import CompletionLogps


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
    logprob_chunk: int = 1024  # completion positions per LM-head chunk (see refeed.train.logprobs)
    log_every: int = 1
    checkpoint_every: int = 0  # 0: no checkpoints
    keep_checkpoints: int = 2  # the newest N are kept
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "epochs", "max_length", "logprob_chunk", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.max_steps < 0 or not 0 <= self.warmup_ratio < 1:
            raise ValueError("train.lr must be > 0, train.max_steps >= 0 and 0 <= train.warmup_ratio < 1")


@dataclass
class TrainResult:
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


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


def _on_cpu(cfg: TrainConfig) -> bool:
    return cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())


def is_main_process(cfg: TrainConfig) -> bool:
    """Whether this is the process that writes a run's outputs (always True without a launcher).

    Goes through the same ``cpu`` flag as the loop's Accelerator: accelerate's process state is a
    singleton set up by its first caller, and a first caller without ``cpu=True`` under torchrun on
    CPUs leaves every process believing it is alone.
    """
    from accelerate import PartialState

    return PartialState(cpu=_on_cpu(cfg)).is_main_process


def _make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator

    cpu = _on_cpu(cfg)
    mixed = "bf16" if not cpu and cfg.dtype in ("auto", "bfloat16") and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(cpu=cpu, mixed_precision=mixed)


def _forward(module, batch: dict[str, torch.Tensor], device: torch.device) -> TokenLogps:
    values, mask = module(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                          batch["completion_mask"].to(device))
    return TokenLogps(values=values, mask=mask)


@torch.no_grad()
def reference_logps(model, encoded: list[EncodedRow], cfg: TrainConfig, pad_id: int, device) -> list[list[torch.Tensor]]:
    """Per row, per sequence: the 1-D log-probs of its completion tokens under ``model`` (no grad)."""
    was_training = model.training
    model.eval()
    module = CompletionLogps(model, cfg.logprob_chunk)
    out: list[list[torch.Tensor]] = []
    for start in range(0, len(encoded), cfg.batch_size):
        rows = encoded[start : start + cfg.batch_size]
        lp = _forward(module, collate(rows, pad_id), torch.device(device))
        per_seq = [lp.values[i][lp.mask[i]].float().cpu() for i in range(lp.values.shape[0])]
        n_ans = len(rows[0].answers)
        out.extend([per_seq[j * len(rows) + r] for j in range(n_ans)] for r in range(len(rows)))
    model.train(was_training)
    return out


def _micro_batches(n_rows: int, cfg: TrainConfig, rng: random.Random, world: int, rank: int):
    """Yield, per optimizer step, ``grad_accum`` lists of this process's row indices.

    Rows are reshuffled each epoch with ``rng``; a step takes ``batch_size * grad_accum * world``
    rows; process ``rank`` gets its ``batch_size`` slice of every micro-batch.
    """
    per_micro = cfg.batch_size * world
    per_step = per_micro * cfg.grad_accum
    epoch = 0
    while cfg.max_steps or epoch < cfg.epochs:
        order = list(range(n_rows))
        rng.shuffle(order)
        for s in range(0, n_rows - per_step + 1, per_step):  # drop the ragged tail: equal-size steps
            micro = [order[s + m * per_micro : s + (m + 1) * per_micro] for m in range(cfg.grad_accum)]
            yield [m[rank * cfg.batch_size : (rank + 1) * cfg.batch_size] for m in micro]
        epoch += 1


def _reference(model, encoded, cfg, pad_id, device, run_dir: Path | None, ref_model) -> list[list[torch.Tensor]]:
    """The cached reference log-probs of the run, computed once (and reused on resume)."""
    path = run_dir / "reference_logps.pt" if run_dir else None
    if path and path.is_file():
        cached = torch.load(path)
        if len(cached) == len(encoded):
            return cached
    reference = reference_logps(ref_model or model, encoded, cfg, pad_id, device)
    if path:
        torch.save(reference, path)
    return reference


def _optimizer(model, cfg: TrainConfig, total: int):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total))


def _micro_step(module, objective, encoded, reference, idx, pad_id, device, scale) -> dict[str, float]:
    """Forward + loss + backward for one micro-batch; returns its metrics scaled by ``scale``."""
    batch = collate([encoded[i] for i in idx], pad_id)
    policy = shape_for_objective(objective.batch_kind, _forward(module, batch, device), len(idx), batch)
    ref = None
    if reference is not None:
        cached = [reference[i][j] for j in range(len(encoded[idx[0]].answers)) for i in idx]
        ref_lp = scatter_cached(cached, batch["completion_mask"][:, 1:].bool().to(device))
        ref = shape_for_objective(objective.batch_kind, ref_lp, len(idx), batch)
    extras = {k: v.to(device) for k, v in batch.items() if k not in ("input_ids", "attention_mask", "completion_mask")}
    out = objective.loss(policy, ref, extras)
    (out.loss * scale).backward()
    return {k: float(v.detach() if torch.is_tensor(v) else v) * scale for k, v in {"loss": out.loss, **out.metrics}.items()}


class _Log:
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


def _check_supported(objective: Objective) -> None:
    """Refuse, before any work, an objective this loop cannot run yet (reward-model heads; graded and
    span rows): the objectives exist and are tested on hand-made tensors, the wiring is still open."""
    if capability(objective, "head") is not Head.LM or objective.batch_kind not in ANSWER_COLUMNS:
        raise ConfigError(
            f"objective '{objective.name}' ({capability(objective, 'head').value} head, "
            f"{objective.batch_kind.value} rows) is not yet supported by the offline loop; it runs "
            f"{', '.join(k.value for k in ANSWER_COLUMNS)} rows on the language-model head")


def train(
    model,
    tokenizer,
    rows: Sequence[dict[str, Any]],
    objective: Objective,
    cfg: TrainConfig,
    run_dir: Path | None = None,
    ref_model=None,
    progress: Callable[[int, int, dict[str, float]], bool | None] | None = None,
    resume_from: Path | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``rows`` with ``objective``; see the module docstring."""
    _check_supported(objective)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    acc = _make_accelerator(cfg)
    world, rank, device = acc.num_processes, acc.process_index, acc.device
    model.to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = encode_rows(tokenizer, rows, objective.batch_kind, cfg.max_length)
    per_step = cfg.batch_size * cfg.grad_accum * world
    if len(encoded) < per_step:
        raise ValueError(f"{len(encoded)} rows is fewer than one step's batch ({per_step}); lower train.batch_size")
    reference = _reference(model, encoded, cfg, pad_id, device, run_dir, ref_model) if objective.needs_reference else None
    total = cfg.max_steps or (len(encoded) // per_step) * cfg.epochs
    optimizer, scheduler = _optimizer(model, cfg, total)
    start = 0
    if resume_from:
        state = ckpt.load_state(Path(resume_from))
        ckpt.load_weights(model, Path(resume_from))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["step"]
    module = acc.prepare(CompletionLogps(model, cfg.logprob_chunk))
    log = _Log(run_dir, start, cfg.tensorboard, acc.is_main_process)
    history: list[dict[str, float]] = []
    model.train()
    batches = _micro_batches(len(encoded), cfg, rng, world, rank)
    for _ in range(start):
        next(batches)  # replay the seeded shuffles up to the checkpoint's data position
    if resume_from:  # after the replay, so the RNG continues exactly as in the uninterrupted run
        torch.set_rng_state(state["torch_rng"])
        rng.setstate(state["python_rng"])
    step = start
    for micro in batches:
        if step >= total:
            break
        sums: dict[str, float] = {}
        for m, idx in enumerate(micro):
            sync = m == len(micro) - 1  # DDP all-reduces gradients on the last micro-batch only
            with acc.no_sync(module) if not sync and world > 1 else contextlib.nullcontext():
                for k, v in _micro_step(module, objective, encoded, reference, idx, pad_id, device, 1 / cfg.grad_accum).items():
                    sums[k] = sums.get(k, 0.0) + v
        if world > 1:  # report the global batch's mean, as one process would
            t = acc.reduce(torch.tensor(list(sums.values()), device=device), reduction="mean")
            sums = dict(zip(sums, t.tolist(), strict=True))
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        record = {"step": step, **sums, "lr": scheduler.get_last_lr()[0], "grad_norm": float(norm)}
        history.append(record)
        if step % cfg.log_every == 0:
            log.write(record)
        if run_dir and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and acc.is_main_process:
            _checkpoint(run_dir, model, optimizer, scheduler, step, rng, cfg)
        if progress and progress(step, total, record):
            break  # a progress callback returns True to stop early (e.g. a dev-accuracy target reached)
    log.close()
    acc.wait_for_everyone()
    model.eval()
    return TrainResult(steps=step, seconds=time.perf_counter() - t0, history=history)


def _checkpoint(run_dir: Path, model, optimizer, scheduler, step: int, rng: random.Random, cfg: TrainConfig) -> None:
    ckpt.save(run_dir / f"checkpoint-{step}", model, optimizer, scheduler, step, rng, to_dict(cfg))
    olds = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    for old in olds[: -cfg.keep_checkpoints] if cfg.keep_checkpoints > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
