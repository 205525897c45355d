"""The offline loop: rows -> batches -> log-probs -> objective -> AdamW. Every offline objective uses it.

    result = train(model, tokenizer, rows, build("dpo", {"beta": 0.1}), TrainConfig(lr=5e-4), run_dir=Path("runs/x"))

What the loop does, and in which order:
1. tokenizes the rows for the objective's ``batch_kind`` (``refeed.batch.encode``);
2. if ``objective.needs_reference``: computes the reference log-probs of every sequence ONCE, before
   the first update, with the policy as it is (the reference is the starting policy) or with
   ``ref_model`` when given, and keeps only completion-token values (a few floats per sequence);
3. per optimizer step: ``grad_accum`` micro-batches of ``batch_size`` rows, each one forward for all
   its sequences (chosen and rejected together; with ``share_prompt`` each prompt runs once and its
   KV cache serves all its answers), loss scaled by ``1/grad_accum`` so that batch 8 x 1 and
   batch 1 x 8 give the same update; gradient clipping; AdamW; warm-up then decay;
4. logs one JSON line per step to ``run_dir/metrics.jsonl`` (loss, lr, grad norm, objective metrics)
   and, with ``tensorboard=true``, TensorBoard events in ``run_dir/tb``;
5. every ``checkpoint_every`` steps writes ``run_dir/checkpoint-<step>`` (``refeed.train.checkpoint``);
   ``resume_from=<checkpoint dir>`` continues exactly where that checkpoint left off.
On CUDA with ``dtype="auto"`` the forward runs under bf16 autocast with float32 master weights.

The objective's capabilities decide the rest (``refeed.objectives.base``): a score-head objective
trains a ``ScoreModel`` (the model plus a fresh head, returned as ``result.model``); ``extra_columns``
must be numbers in every row; ``kl_completions`` adds KTO's mismatched sequences; a ``staged``
objective trains stage 0 first, then 1, ..., and with ``refresh_reference`` takes each later stage's
reference from the policy at that stage's start (cached per stage, so resume finds it).

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

from refeed.batch.collate import collate, collate_shared, scatter_cached, shape_for_objective
from refeed.batch.encode import EncodedRow, check_columns, encode_for
from refeed.batch.logprobs import CompletionLogps, SharedPromptLogps, supports_shared_prompt
from refeed.config import to_dict
from refeed.objectives.base import Head, Objective, TokenLogps, TokenScores, capability
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
    model: Any = None  # what was trained: the model passed in, or the ScoreModel wrapping it (score heads)


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


SEQUENCE_KEYS = ("input_ids", "attention_mask", "completion_mask", "prompt_ids", "prompt_mask", "answer_ids", "answer_mask")


def _forward(module, batch: dict[str, torch.Tensor], device: torch.device, scores: bool = False):
    """One forward of all the batch's sequences: TokenLogps (LM head) or TokenScores (score head).

    A ``collate_shared`` batch (prompt once, answers apart) goes through a ``SharedPromptLogps`` module.
    """
    if "prompt_ids" in batch:
        keys = ("prompt_ids", "prompt_mask", "answer_ids", "answer_mask")
    else:
        keys = ("input_ids", "attention_mask", "completion_mask")
    values, mask = module(*(batch[k].to(device) for k in keys))
    return TokenScores(values=values, mask=mask) if scores else TokenLogps(values=values, mask=mask)


def _share_prompt(cfg: TrainConfig, objective: Objective, model, encoded: list[EncodedRow]) -> bool:
    """Whether to run each prompt once for all its answers (LM head, several answers per row)."""
    return (cfg.share_prompt and capability(objective, "head") is Head.LM and len(encoded[0].answers) > 1
            and all(r.prompt for r in encoded) and supports_shared_prompt(model))


def _collate(rows: list[EncodedRow], pad_id: int, objective: Objective, shared: bool) -> dict[str, torch.Tensor]:
    return collate_shared(rows, pad_id) if shared else collate(rows, pad_id, int(capability(objective, "num_heads")))


def _logps_module(model, cfg: TrainConfig, shared: bool):
    return SharedPromptLogps(model, cfg.logprob_chunk) if shared else CompletionLogps(model, cfg.logprob_chunk)


def _trainable(model, objective: Objective):
    """The module the optimizer updates: the model itself, or for score-head objectives the model
    wrapped in a ``ScoreModel`` with a fresh head (unless it already is one)."""
    if capability(objective, "head") is not Head.SCORE:
        return model
    from refeed.models.score_head import ScoreModel

    heads = int(capability(objective, "num_heads"))
    meta = {"objective": objective.name, "objective_config": to_dict(objective.cfg)}
    if isinstance(model, ScoreModel):
        if model.num_heads != heads:
            raise ValueError(f"the reward model has {model.num_heads} heads, objective '{objective.name}' needs {heads}")
        model.meta = meta
        return model
    return ScoreModel.wrap(model, heads, meta)


@torch.no_grad()
def reference_logps(model, encoded: list[EncodedRow], cfg: TrainConfig, pad_id: int, device,
                    shared: bool = False) -> list[list[torch.Tensor]]:
    """Per row, per sequence: the 1-D log-probs of its completion tokens under ``model`` (no grad)."""
    was_training = model.training
    model.eval()
    module = _logps_module(model, cfg, shared)
    out: list[list[torch.Tensor]] = []
    for start in range(0, len(encoded), cfg.batch_size):
        rows = encoded[start : start + cfg.batch_size]
        lp = _forward(module, collate_shared(rows, pad_id) if shared else collate(rows, pad_id), torch.device(device))
        per_seq = [lp.values[i][lp.mask[i]].float().cpu() for i in range(lp.values.shape[0])]
        n_ans = len(rows[0].answers)
        out.extend([per_seq[j * len(rows) + r] for j in range(n_ans)] for r in range(len(rows)))
    model.train(was_training)
    return out


def _micro_batches(n_rows: int, cfg: TrainConfig, rng: random.Random, world: int, rank: int,
                   stages: list[int] | None = None):
    """Yield, per optimizer step, ``(stage, micro)``: ``grad_accum`` lists of this process's row indices.

    Rows are reshuffled each epoch with ``rng``; a step takes ``batch_size * grad_accum * world``
    rows; process ``rank`` gets its ``batch_size`` slice of every micro-batch. With ``stages`` (the
    row's stage, for staged objectives) stage 0 runs its ``epochs`` first, then stage 1, ...; rows are
    shuffled within their stage only, and a step never mixes stages.
    """
    per_micro = cfg.batch_size * world
    per_step = per_micro * cfg.grad_accum

    def steps(rows: list[int]):
        order = list(rows)
        rng.shuffle(order)
        for s in range(0, len(order) - per_step + 1, per_step):  # drop the ragged tail: equal-size steps
            micro = [order[s + m * per_micro : s + (m + 1) * per_micro] for m in range(cfg.grad_accum)]
            yield [m[rank * cfg.batch_size : (rank + 1) * cfg.batch_size] for m in micro]

    if stages is not None:
        for stage in sorted(set(stages)):
            rows = [i for i, s in enumerate(stages) if s == stage]
            for _ in range(cfg.epochs):
                yield from ((stage, micro) for micro in steps(rows))
        return
    epoch = 0
    while cfg.max_steps or epoch < cfg.epochs:
        yield from ((0, micro) for micro in steps(range(n_rows)))
        epoch += 1


def _stages(encoded: list[EncodedRow], objective: Objective) -> list[int] | None:
    return [int(r.extras["stage"]) for r in encoded] if capability(objective, "staged") else None


def _total_steps(cfg: TrainConfig, n_rows: int, per_step: int, stages: list[int] | None) -> int:
    if stages is None:
        return cfg.max_steps or (n_rows // per_step) * cfg.epochs
    staged = sum((stages.count(s) // per_step) * cfg.epochs for s in set(stages))
    return min(cfg.max_steps, staged) if cfg.max_steps else staged


def _reference(model, encoded, cfg, pad_id, device, run_dir: Path | None, ref_model, stage: int = 0,
               shared: bool = False) -> list[list[torch.Tensor]]:
    """The cached reference log-probs of the run, computed once (and reused on resume); a staged
    objective with ``refresh_reference`` gets one per stage, from the policy at that stage's start."""
    path = (run_dir / ("reference_logps.pt" if stage == 0 else f"reference_logps-stage{stage}.pt")) if run_dir else None
    if path and path.is_file():
        cached = torch.load(path)
        if len(cached) == len(encoded):
            return cached
    reference = reference_logps(ref_model or model, encoded, cfg, pad_id, device, shared)
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


def _micro_step(acc, module, objective, encoded, reference, idx, pad_id, device, scale, shared=False) -> dict[str, float]:
    """Forward + loss + backward for one micro-batch; returns its metrics scaled by ``scale``."""
    scores = capability(objective, "head") is Head.SCORE
    batch = _collate([encoded[i] for i in idx], pad_id, objective, shared)
    out = _forward(module, batch, device, scores)
    policy = shape_for_objective(objective.batch_kind, out, len(idx), batch)
    ref = None
    if reference is not None:
        cached = [reference[i][j] for j in range(len(encoded[idx[0]].answers)) for i in idx]
        ref = shape_for_objective(objective.batch_kind, scatter_cached(cached, out.mask.detach()), len(idx), batch)
    extras = {k: v.to(device) for k, v in batch.items() if k not in SEQUENCE_KEYS}
    out = objective.loss(policy, ref, extras)
    acc.backward(out.loss * scale)  # accelerate's backward: loss scaling, DeepSpeed's engine
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
    """Train ``model`` in place on ``rows`` with ``objective``; see the module docstring.

    Score-head objectives (reward models) train ``result.model``: a ``ScoreModel`` around ``model``.
    """
    t0 = time.perf_counter()
    check_columns(objective, set(rows[0]) if rows else set())
    if run_dir:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    acc = _make_accelerator(cfg)
    world, device = acc.num_processes, acc.device
    model = _trainable(model, objective)
    model.to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = encode_for(tokenizer, rows, objective, cfg.max_length)
    per_step = cfg.batch_size * cfg.grad_accum * world
    if len(encoded) < per_step:
        raise ValueError(f"{len(encoded)} rows is fewer than one step's batch ({per_step}); lower train.batch_size")
    stages = _stages(encoded, objective)
    total = _total_steps(cfg, len(encoded), per_step, stages)
    optimizer, scheduler = _optimizer(model, cfg, total)
    # Before any resumed weights: the reference is the starting policy (on resume, the run's cache).
    shared = _share_prompt(cfg, objective, model, encoded)
    reference = _reference(model, encoded, cfg, pad_id, device, run_dir, ref_model, 0, shared) if objective.needs_reference else None
    start, state = 0, None
    if resume_from:
        state = ckpt.load_state(Path(resume_from))
        ckpt.load_weights(model, Path(resume_from))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["step"]
    scores = capability(objective, "head") is Head.SCORE
    # The optimizer goes through prepare with the module (DeepSpeed needs both; FSDP re-points it at
    # the sharded parameters); the scheduler does not: the loop steps it once per optimizer step.
    module, optimizer = acc.prepare(model if scores else _logps_module(model, cfg, shared), optimizer)
    batches = _micro_batches(len(encoded), cfg, rng, world, acc.process_index, stages)
    for _ in range(start):
        next(batches)  # replay the seeded shuffles up to the checkpoint's data position
    if state:  # after the replay, so the RNG continues exactly as in the uninterrupted run
        torch.set_rng_state(state["torch_rng"])
        rng.setstate(state["python_rng"])
    run = _Run(acc, model, module, objective, encoded, reference, optimizer, scheduler, cfg, pad_id, run_dir, rng, shared)
    history = run.steps(batches, start, total, progress)
    acc.wait_for_everyone()
    model.eval()
    return TrainResult(steps=start + len(history), seconds=time.perf_counter() - t0, history=history, model=model)


@dataclass
class _Run:
    """The state one optimizer step touches; ``steps`` is the loop over them."""

    acc: Any
    model: Any
    module: Any
    objective: Objective
    encoded: list[EncodedRow]
    reference: list[list[torch.Tensor]] | None
    optimizer: Any
    scheduler: Any
    cfg: TrainConfig
    pad_id: int
    run_dir: Path | None
    rng: random.Random
    shared: bool

    def steps(self, batches, start: int, total: int, progress) -> list[dict[str, float]]:
        cfg, acc, device = self.cfg, self.acc, self.acc.device
        log = _Log(self.run_dir, start, cfg.tensorboard, acc.is_main_process)
        history: list[dict[str, float]] = []
        self.model.train()
        ref_stage, step = 0, start
        for stage, micro in batches:
            if step >= total:
                break
            if stage != ref_stage and capability(self.objective, "refresh_reference"):
                # the policy at the start of this stage is its reference (cached per stage for resume)
                self.reference = _reference(self.model, self.encoded, cfg, self.pad_id, device, self.run_dir, None, stage,
                                            self.shared)
                ref_stage = stage
            sums: dict[str, float] = {}
            for m, idx in enumerate(micro):
                sync = m == len(micro) - 1  # DDP all-reduces gradients on the last micro-batch only
                with acc.no_sync(self.module) if not sync and acc.num_processes > 1 else contextlib.nullcontext():
                    out = _micro_step(acc, self.module, self.objective, self.encoded, self.reference, idx, self.pad_id,
                                      device, 1 / cfg.grad_accum, self.shared)
                    for k, v in out.items():
                        sums[k] = sums.get(k, 0.0) + v
            if acc.num_processes > 1:  # report the global batch's mean, as one process would
                t = acc.reduce(torch.tensor(list(sums.values()), device=device), reduction="mean")
                sums = dict(zip(sums, t.tolist(), strict=True))
            params = [p for p in self.module.parameters() if p.requires_grad]
            norm = acc.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            step += 1
            record = {"step": step, **sums, "lr": self.scheduler.get_last_lr()[0], "grad_norm": float(norm)}
            if capability(self.objective, "staged"):
                record["stage"] = stage
            history.append(record)
            if step % cfg.log_every == 0:
                log.write(record)
            if self.run_dir and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and acc.is_main_process:
                _checkpoint(self.run_dir, self.model, self.optimizer, self.scheduler, step, self.rng, cfg)
            if progress and progress(step, total, record):
                break  # a progress callback returns True to stop early (e.g. a dev-accuracy target reached)
        log.close()
        return history


def _checkpoint(run_dir: Path, model, optimizer, scheduler, step: int, rng: random.Random, cfg: TrainConfig) -> None:
    ckpt.save(run_dir / f"checkpoint-{step}", model, optimizer, scheduler, step, rng, to_dict(cfg))
    olds = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    for old in olds[: -cfg.keep_checkpoints] if cfg.keep_checkpoints > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
