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
4. logs one JSON line per step to ``run_dir/metrics.jsonl`` (loss, lr, grad norm, objective metrics).
On CUDA with ``dtype="auto"`` the forward runs under bf16 autocast with float32 master weights.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from refeed.objectives.base import Objective
from refeed.train.batching import collate, encode_rows, scatter_cached, shape_for_objective
from refeed.train.logprobs import completion_logps


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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def _forward(model, batch: dict[str, torch.Tensor], cfg: TrainConfig, device: torch.device):
    autocast = device.type == "cuda" and cfg.dtype in ("auto", "bfloat16")
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
        return completion_logps(
            model,
            batch["input_ids"].to(device),
            batch["attention_mask"].to(device),
            batch["completion_mask"].to(device),
            chunk_size=cfg.logprob_chunk,
        )


@torch.no_grad()
def reference_logps(model, encoded, cfg: TrainConfig, pad_id: int, device: torch.device) -> list[list[torch.Tensor]]:
    """Per row, per sequence: the 1-D log-probs of its completion tokens under ``model`` (no grad)."""
    was_training = model.training
    model.eval()
    out: list[list[torch.Tensor]] = []
    for start in range(0, len(encoded), cfg.batch_size):
        rows = encoded[start : start + cfg.batch_size]
        lp = _forward(model, collate(rows, pad_id), cfg, device)
        per_seq = [lp.values[i][lp.mask[i]].float().cpu() for i in range(lp.values.shape[0])]
        n_ans = len(rows[0].answers)
        out.extend([per_seq[j * len(rows) + r] for j in range(n_ans)] for r in range(len(rows)))
    model.train(was_training)
    return out


def _micro_batches(n_rows: int, cfg: TrainConfig, rng: random.Random):
    """Yield lists of row indices: shuffled each epoch, ``grad_accum`` micro-batches per step."""
    per_step = cfg.batch_size * cfg.grad_accum
    epoch = 0
    while cfg.max_steps or epoch < cfg.epochs:
        order = list(range(n_rows))
        rng.shuffle(order)
        for s in range(0, n_rows - per_step + 1, per_step):  # drop the ragged tail: equal-size steps
            yield [order[s + m * cfg.batch_size : s + (m + 1) * cfg.batch_size] for m in range(cfg.grad_accum)]
        epoch += 1


def train(
    model,
    tokenizer,
    rows: Sequence[dict[str, Any]],
    objective: Objective,
    cfg: TrainConfig,
    run_dir: Path | None = None,
    ref_model=None,
    progress: Callable[[int, int, dict[str, float]], bool | None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``rows`` with ``objective``; see the module docstring."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = encode_rows(tokenizer, rows, objective.batch_kind, cfg.max_length)
    per_step = cfg.batch_size * cfg.grad_accum
    if len(encoded) < per_step:
        raise ValueError(f"{len(encoded)} rows is fewer than one step's batch ({per_step}); lower train.batch_size")
    reference = None
    if objective.needs_reference:
        reference = reference_logps(ref_model or model, encoded, cfg, pad_id, device)
    steps_per_epoch = len(encoded) // per_step
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.adam_betas,
        eps=cfg.adam_eps,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total))
    log = (run_dir / "metrics.jsonl").open("a") if run_dir else None
    history: list[dict[str, float]] = []
    model.train()
    step = 0
    for micro in _micro_batches(len(encoded), cfg, rng):
        sums: dict[str, float] = {}
        for idx in micro:
            batch = collate([encoded[i] for i in idx], pad_id)
            policy = shape_for_objective(objective.batch_kind, _forward(model, batch, cfg, device), len(idx))
            ref = None
            if reference is not None:
                cached = [reference[i][j] for j in range(len(encoded[idx[0]].answers)) for i in idx]
                ref_lp = scatter_cached(cached, batch["completion_mask"][:, 1:].bool().to(device))
                ref = shape_for_objective(objective.batch_kind, ref_lp, len(idx))
            extras = {k: v.to(device) for k, v in batch.items() if k not in ("input_ids", "attention_mask", "completion_mask")}
            out = objective.loss(policy, ref, extras)
            (out.loss / cfg.grad_accum).backward()
            for k, v in {"loss": out.loss, **out.metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v) / cfg.grad_accum
        params = [p for g in optimizer.param_groups for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        record = {"step": step, **sums, "lr": scheduler.get_last_lr()[0], "grad_norm": float(norm)}
        history.append(record)
        if log and step % cfg.log_every == 0:
            log.write(json.dumps(record) + "\n")
        if (progress and progress(step, total, record)) or step >= total:
            break  # a progress callback returns True to stop early (e.g. a dev-accuracy target reached)
    if log:
        log.close()
    model.eval()
    return TrainResult(steps=step, seconds=time.perf_counter() - t0, history=history)
