"""The offline loop: rows -> batches -> log-probs -> objective -> the update step. Every offline objective uses it.

    result = train(model, tokenizer, rows, build("dpo", {"beta": 0.1}), TrainConfig(lr=5e-4), run_dir=Path("runs/x"))

What the loop does, and in which order:
1. tokenizes the rows for the objective's ``batch_kind`` (``refeed.batch.encode``);
2. if ``objective.needs.reference``: computes the reference log-probs of every sequence ONCE, before
   the first update, with the policy as it is (the reference is the starting policy) or with
   ``ref_model`` when given, and keeps only completion-token values (a few floats per sequence);
   they are cached in ``run_dir/reference_logps.pt`` under ``reference_key`` (a fingerprint of the
   reference weights, the encoded data and ``max_length``), so a resume reuses them and a run directory
   reused with another model or other data recomputes them;
3. per optimizer step: ``grad_accum`` micro-batches of ``batch_size`` rows, each one forward for all
   its sequences (chosen and rejected together; with ``share_prompt`` each prompt runs once and its
   KV cache serves all its answers), then ``refeed.train.step.Update``: backward with the loss scaled
   by ``1/grad_accum`` (batch 8 x 1 and batch 1 x 8 give the same update), clipping, AdamW, warm-up
   then decay, ``run_dir/metrics.jsonl`` (TensorBoard with ``tensorboard=true``) and, every
   ``checkpoint_every`` steps, ``run_dir/checkpoint-<step>``; ``resume_from=<checkpoint dir>``
   continues exactly where that checkpoint left off.
On CUDA with ``dtype="auto"`` the forward runs under bf16 autocast with float32 master weights.

Callbacks of ``train()`` (all optional):
- ``progress(step, total, record) -> bool | None`` after every step; True stops the run early.
- ``reference_progress(done, total)`` during the reference pass, in rows (for a progress bar).
- ``callback(step, model)`` every ``cfg.eval_every`` steps, on the main process, with the model in
  eval mode and the RNG states forked, so a held-out eval that samples cannot change the run.

The objective's ``needs`` decide the rest (``refeed.objectives.base.Needs``): a score-head objective
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

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from refeed.batch.collate import collate, collate_shared, scatter_cached, shape_for_objective
from refeed.batch.encode import EncodedRow, check_columns, encode_for
from refeed.batch.logprobs import CompletionLogps, SharedPromptLogps, supports_shared_prompt
from refeed.batch.logprobs import forward_logps as _forward  # the name refeed.train.online imports
from refeed.batch.packed import PackedPromptLogps, supports_packing
from refeed.config import to_dict
from refeed.objectives.base import Head, LossOutput, Objective
from refeed.train.step import Schedule, TrainConfig, Update, is_main_process, lr_lambda, make_accelerator

__all__ = ["Schedule", "TrainConfig", "TrainResult", "is_main_process", "lr_lambda", "reference_key", "train"]


@dataclass
class TrainResult:
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    model: Any = None  # what was trained: the model passed in, or the ScoreModel wrapping it (score heads)


SEQUENCE_KEYS = ("input_ids", "attention_mask", "completion_mask", "prompt_ids", "prompt_mask", "answer_ids", "answer_mask")


def _share_prompt(cfg: TrainConfig, objective: Objective, model, encoded: list[EncodedRow]) -> bool:
    """Whether to run each prompt once for all its answers (LM head, several answers per row)."""
    return (cfg.share_prompt and objective.needs.head is Head.LM and len(encoded[0].answers) > 1
            and all(r.prompt for r in encoded) and supports_shared_prompt(model))


def _collate(rows: list[EncodedRow], pad_id: int, objective: Objective, shared: bool) -> dict[str, torch.Tensor]:
    return collate_shared(rows, pad_id) if shared else collate(rows, pad_id, objective.needs.num_heads)


def _logps_module(model, cfg: TrainConfig, shared: bool):
    """The log-prob module of the run: packed rows (``refeed.batch.packed``, no padding) where the model
    supports it and ``cfg.pack``, else the prompt's KV cache shared by its answers, else one padded forward."""
    if shared and cfg.pack and supports_packing(model):
        return PackedPromptLogps(model, cfg.logprob_chunk)
    return SharedPromptLogps(model, cfg.logprob_chunk) if shared else CompletionLogps(model, cfg.logprob_chunk)


def _trainable(model, objective: Objective):
    """The module the optimizer updates: the model itself, or for score-head objectives the model
    wrapped in a ``ScoreModel`` with a fresh head (unless it already is one)."""
    if objective.needs.head is not Head.SCORE:
        return model
    from refeed.models.score_head import ScoreModel

    heads = objective.needs.num_heads
    meta = {"objective": objective.name, "objective_config": to_dict(objective.cfg)}
    if isinstance(model, ScoreModel):
        if model.num_heads != heads:
            raise ValueError(f"the reward model has {model.num_heads} heads, objective '{objective.name}' needs {heads}")
        model.meta = meta
        return model
    return ScoreModel.wrap(model, heads, meta)


@torch.no_grad()
def reference_logps(model, encoded: list[EncodedRow], cfg: TrainConfig, pad_id: int, device,
                    shared: bool = False, progress: Callable[[int, int], None] | None = None) -> list[list[torch.Tensor]]:
    """Per row, per sequence: the 1-D log-probs of its completion tokens under ``model`` (no grad);
    ``progress(done_rows, total_rows)`` after each batch."""
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
        if progress:
            progress(len(out), len(encoded))
    model.train(was_training)
    return out


def model_fingerprint(model) -> str:
    """A digest of every parameter and buffer (name, shape, dtype, bytes): equal weights, equal key."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy())
    return h.hexdigest()


def reference_key(model, encoded: list[EncodedRow], max_length: int) -> str:
    """The cache key of a run's reference log-probs: the reference model's weights, the encoded token ids
    of every sequence (data, template and truncation), and ``max_length``. Same key, same log-probs."""
    h = hashlib.blake2b(digest_size=16)
    h.update(model_fingerprint(model).encode())
    h.update(json.dumps([[r.prompt, r.answers] for r in encoded]).encode())
    h.update(f"max_length={max_length}".encode())
    return h.hexdigest()


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
    return [int(r.extras["stage"]) for r in encoded] if objective.needs.staged else None


def _total_steps(cfg: TrainConfig, n_rows: int, per_step: int, stages: list[int] | None) -> int:
    if stages is None:
        return cfg.max_steps or (n_rows // per_step) * cfg.epochs
    staged = sum((stages.count(s) // per_step) * cfg.epochs for s in set(stages))
    return min(cfg.max_steps, staged) if cfg.max_steps else staged


def _reference(model, encoded, cfg, pad_id, device, run_dir: Path | None, key: str, stage: int = 0,
               shared: bool = False, progress=None) -> list[list[torch.Tensor]]:
    """The run's reference log-probs under ``model``, cached in ``run_dir`` under ``key`` (``reference_key``)
    and reused on resume only when the key matches: another model, other data or another ``max_length``
    recompute it. A staged objective with ``refresh_reference`` gets one per stage, from the policy at
    that stage's start, keyed by the run's key and the stage."""
    path = (run_dir / ("reference_logps.pt" if stage == 0 else f"reference_logps-stage{stage}.pt")) if run_dir else None
    key = key if stage == 0 else f"{key}/stage{stage}"
    if path and path.is_file():
        cached = torch.load(path)
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached["logps"]
    reference = reference_logps(model, encoded, cfg, pad_id, device, shared, progress)
    if path:
        torch.save({"key": key, "logps": reference}, path)
    return reference


def _micro_loss(module, objective, encoded, reference, idx, pad_id, device, shared=False) -> LossOutput:
    """Forward + objective for one micro-batch of row indices ``idx`` (the update step runs backward)."""
    scores = objective.needs.head is Head.SCORE
    batch = _collate([encoded[i] for i in idx], pad_id, objective, shared)
    out = _forward(module, batch, device, scores)
    policy = shape_for_objective(objective.batch_kind, out, len(idx), batch)
    ref = None
    if reference is not None:
        cached = [reference[i][j] for j in range(len(encoded[idx[0]].answers)) for i in idx]
        ref = shape_for_objective(objective.batch_kind, scatter_cached(cached, out.mask.detach()), len(idx), batch)
    extras = {k: v.to(device) for k, v in batch.items() if k not in SEQUENCE_KEYS}
    return objective.loss(policy, ref, extras)


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
    reference_progress: Callable[[int, int], None] | None = None,
    callback: Callable[[int, Any], None] | None = None,
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
    acc = make_accelerator(cfg)
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
    # Before any resumed weights: the reference is the starting policy (on resume, the run's cache).
    shared = _share_prompt(cfg, objective, model, encoded)
    ref_progress = reference_progress if acc.is_main_process else None
    key = reference_key(ref_model or model, encoded, cfg.max_length) if objective.needs.reference else ""
    reference = (_reference(ref_model or model, encoded, cfg, pad_id, device, run_dir, key, 0, shared, ref_progress)
                 if objective.needs.reference else None)
    scores = objective.needs.head is Head.SCORE
    module = model if scores else _logps_module(model, cfg, shared)
    update, state = Update.create(acc, model, module, cfg, total, run_dir, rng, resume_from)
    batches = _micro_batches(len(encoded), cfg, rng, world, acc.process_index, stages)
    for _ in range(update.step):
        next(batches)  # replay the seeded shuffles up to the checkpoint's data position
    if state:  # after the replay, so the RNG continues exactly as in the uninterrupted run
        torch.set_rng_state(state["torch_rng"])
        rng.setstate(state["python_rng"])
    start = update.step
    run = _Run(update, objective, encoded, reference, key, pad_id, shared, ref_progress)
    history = run.steps(batches, total, progress, callback if acc.is_main_process else None)
    acc.wait_for_everyone()
    model.eval()
    return TrainResult(steps=start + len(history), seconds=time.perf_counter() - t0, history=history, model=model)


@dataclass
class _Run:
    """What the offline loop adds to the update step: the encoded rows, their reference, the stages."""

    update: Update
    objective: Objective
    encoded: list[EncodedRow]
    reference: list[list[torch.Tensor]] | None
    key: str
    pad_id: int
    shared: bool
    ref_progress: Callable[[int, int], None] | None

    def steps(self, batches, total: int, progress, callback) -> list[dict[str, float]]:
        update, needs = self.update, self.objective.needs
        cfg, device = update.cfg, update.acc.device
        history: list[dict[str, float]] = []
        update.model.train()
        ref_stage = 0
        for stage, micro in batches:
            if update.step >= total:
                break
            if stage != ref_stage and needs.refresh_reference:
                # the policy at the start of this stage is its reference (cached per stage for resume)
                self.reference = _reference(update.model, self.encoded, cfg, self.pad_id, device, update.run_dir,
                                            self.key, stage, self.shared, self.ref_progress)
                ref_stage = stage

            def loss(idx, reference=self.reference):
                return _micro_loss(update.module, self.objective, self.encoded, reference, idx, self.pad_id, device,
                                   self.shared)

            record = update(micro, loss, {"stage": stage} if needs.staged else None)
            history.append(record)
            if callback and cfg.eval_every and update.step % cfg.eval_every == 0:
                _call_isolated(callback, update.step, update.model, device)
            if progress and progress(update.step, total, record):
                break  # a progress callback returns True to stop early (e.g. a dev-accuracy target reached)
        update.close()
        return history


def _call_isolated(callback, step: int, model, device) -> None:
    """``callback(step, model)`` in eval mode, with the RNG states forked: an eval that samples cannot
    change the training run (its data order, dropout, or what resume replays)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model.eval()
        try:
            callback(step, model)
        finally:
            model.train()
