"""The online loop: prompts -> rollouts (a ``Generator``) -> rewards -> the objective -> the update step.

    result = train_online(model, tok, rows, [exact_match], GRPO(GRPOConfig()), TrainConfig(lr=1e-4, batch_size=4),
                          OnlineConfig(num_generations=8, max_new_tokens=16), run_dir=Path("runs/grpo"))

What one generation does, in order:
1. takes ``batch_size * grad_accum`` prompts (per process) from ``rows``, reshuffled each epoch with
   ``random.Random(seed)``; a row's other columns go to the reward functions (TRL's convention);
2. samples ``num_generations`` answers per prompt from the CURRENT policy through the generator
   (``refeed.models.hf_generator.TransformersGenerator`` unless one is given), seeded by (seed, generation),
   keeping each token's id and sampling log-prob; nothing is re-tokenized;
3. scores every answer with each reward function ``fn(prompts=, completions=, completion_ids=, **columns)
   -> list[float | None]`` (TRL's signature; sync or async; a dict of lists for several signals),
   called once per prompt group so an error names the function and the prompt; the reward is the
   weighted sum over functions, None counting 0 (TRL's nansum), and lands on ``rollout.rewards``;
4. with ``objective.needs.reference``, the reference log-probs of the answers (``ref_model``, or a frozen
   copy of the starting policy);
5. ``mu`` optimizer steps on that generation through ``refeed.train.step.Update`` (the offline loop's
   step): the objective gets the policy's log-probs at the sampling temperature, ``old_logps`` (the
   sampling log-probs, so the ratios are exact importance ratios), ``rewards`` (B, K), ``truncated``
   (B, K) and ``group_valid``, and computes its advantages itself (``refeed.objectives.grpo``).
Metrics per step add each reward function's mean and std, the reward's, the completion lengths, the
truncated fraction and ``entropy`` to the objective's own (clip fractions, KL, fraction of zero-std groups).
``entropy`` is -mean log p of the sampled tokens under the distribution they were sampled from: a
Monte-Carlo estimate of the policy's per-token entropy that costs nothing (the generator returns those
log-probs), at the sampling temperature and top-p rather than at T = 1.

Exact resume: a checkpoint stores the current generation (token ids, sampling log-probs, rewards), so a
run cut between two of its ``mu`` steps continues on the same rollouts; the prompt order is replayed
from the seed and the data RNG restored, and every generation's sampling seed is fixed by its index.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from refeed.batch.collate import collate, collate_shared, scatter_cached, shape_for_objective
from refeed.batch.encode import EncodedRow
from refeed.batch.logprobs import CompletionLogps, SharedPromptLogps, supports_shared_prompt
from refeed.config import ConfigError
from refeed.objectives.base import BatchKind, LossOutput, Objective
from refeed.train.loop import TrainResult, _forward
from refeed.train.step import TrainConfig, Update, make_accelerator
from refeed.types import FinishReason, Rollout, SamplingParams

Reward = Callable[..., Any]  # (prompts, completions, **columns) -> list[float | None] | dict[str, list[...]]


@dataclass(frozen=True)
class OnlineConfig:
    num_generations: int = 8  # K answers sampled per prompt
    mu: int = 1  # optimizer steps per generation; > 1 reuses its rollouts (importance ratios vs sampling)
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    reward_weights: tuple[float, ...] = ()  # one per reward function; (): all 1
    # (token id, bias) added to the logits before sampling, e.g. ((eos, -100.0),) to force full length; the
    # sampling log-probs are the biased distribution's, so ratios then carry the bias (benchmarks only)
    logit_bias: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.num_generations < 2 or self.mu < 1:
            raise ValueError("online.num_generations must be >= 2 (a group) and online.mu >= 1")
        if self.temperature <= 0:
            raise ValueError("online.temperature must be > 0: greedy answers have no sampling distribution to learn from")


@dataclass
class _Generation:
    """One generation's rollouts as the objective sees them; saved whole in checkpoints."""

    index: int
    encoded: list[EncodedRow]  # per prompt: its ids and its K completions' ids (as sampled)
    old: list[list[list[float]]]  # per prompt, per answer: the sampling log-probs
    rewards: list[list[float]]  # (P, K)
    truncated: list[list[bool]]  # (P, K): cut at max_new_tokens
    reference: list[list[torch.Tensor]] | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        rows = [(r.prompt, r.answers) for r in self.encoded]
        return {"index": self.index, "rows": rows, "old": self.old, "rewards": self.rewards, "truncated": self.truncated,
                "reference": self.reference, "metrics": self.metrics}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> _Generation:
        encoded = [EncodedRow(p, a, {}, valid=[True] * len(a)) for p, a in s["rows"]]
        return cls(s["index"], encoded, s["old"], s["rewards"], s["truncated"], s["reference"], s["metrics"])


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _call_reward(fn, prompts, completions, completion_ids, columns: dict[str, list]) -> Any:
    out = fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
    return asyncio.run(out) if inspect.isawaitable(out) else out


RESERVED = ("prompt", "prompts", "completions", "completion_ids")  # the reward call's own arguments


def score_group(fns: Sequence[Reward], weights: Sequence[float], row: dict[str, Any], rollouts: list[Rollout],
                index: int) -> tuple[list[float], dict[str, list[float | None]]]:
    """The K answers of prompt ``index`` scored by every function: (weighted totals, per-signal values).

    Conversational prompts get conversational completions (``[{"role": "assistant", "content": ...}]``),
    text prompts text, as TRL passes them; None is "this function does not apply" and counts 0.
    """
    k = len(rollouts)
    text = [r.completion for r in rollouts]
    completions = text if isinstance(row["prompt"], str) else [[{"role": "assistant", "content": t}] for t in text]
    columns = {c: [v] * k for c, v in row.items() if c not in RESERVED}  # a dataset's `completions` is no answer
    totals, signals = [0.0] * k, {}
    for fn, w in zip(fns, weights, strict=True):
        try:
            out = _call_reward(fn, [row["prompt"]] * k, completions, [r.completion_ids for r in rollouts], columns)
        except Exception as e:
            raise RuntimeError(f"reward function '{_name(fn)}' failed on prompt {index}: {type(e).__name__}: {e}") from e
        for name, values in (out.items() if isinstance(out, dict) else [(_name(fn), out)]):
            values = list(values) if values is not None else []
            if len(values) != k:
                raise ValueError(f"reward function '{name}' returned {len(values)} values for {k} completions (prompt {index})")
            for j, v in enumerate(values):
                if v is not None and (not isinstance(v, (int, float)) or math.isnan(v)):
                    raise ValueError(f"reward function '{name}' returned {v!r} for completion {j} of prompt {index}")
                totals[j] += w * float(v or 0.0)
            signals[name] = values
    return totals, signals


def _stats(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


def _generate(generator, rows: list[dict], fns, weights, online: OnlineConfig, seed: int, index: int
              ) -> tuple[_Generation, list[Rollout]]:
    """Sample K answers per prompt and score them: one ``_Generation`` and its rollouts (rewards set)."""
    prompts = [_messages(r["prompt"]) for r in rows]
    sampling = SamplingParams(temperature=online.temperature, top_p=online.top_p, max_new_tokens=online.max_new_tokens,
                              seed=seed * 1_000_003 + index, logit_bias=tuple(online.logit_bias))
    rollouts = generator.generate(prompts, sampling, n=online.num_generations)
    k = online.num_generations
    encoded, old, rewards, truncated, signals = [], [], [], [], {}
    for i, row in enumerate(rows):
        group = rollouts[i * k : (i + 1) * k]
        if not all(r.token_ids_exact for r in group):
            raise ValueError("the generator returned rollouts without exact token ids; the online loss needs them")
        totals, sig = score_group(fns, weights, row, group, i)
        for j, (r, t) in enumerate(zip(group, totals, strict=True)):
            r.rewards = {**{n: v[j] for n, v in sig.items()}, "total": t}
        for n, v in sig.items():
            signals.setdefault(n, []).extend(x for x in v if x is not None)
        encoded.append(EncodedRow(list(group[0].prompt_ids), [list(r.completion_ids) for r in group], {}, valid=[True] * k))
        old.append([list(r.logprobs) for r in group])
        rewards.append(totals)
        truncated.append([r.finish_reason is FinishReason.LENGTH for r in group])
    flat = [x for g in rewards for x in g]
    metrics = dict(zip(("reward/mean", "reward/std"), _stats(flat), strict=True))
    for n, v in signals.items():
        metrics[f"rewards/{n}/mean"], metrics[f"rewards/{n}/std"] = _stats(v) if v else (0.0, 0.0)
    lengths = [len(a) for r in encoded for a in r.answers]
    n_tokens = max(sum(lengths), 1)
    metrics |= {"completions/mean_length": sum(lengths) / len(lengths), "generation": float(index),
                "completions/truncated_frac": sum(map(sum, truncated)) / len(lengths),
                # -mean log p(sampled token): a Monte-Carlo estimate of the per-token entropy of the
                # distribution sampled from (after temperature / top-p), free from the sampling log-probs
                "entropy": -sum(x for g in old for a in g for x in a) / n_tokens}
    return _Generation(index, encoded, old, rewards, truncated, None, metrics), rollouts


class _Logps:
    """The policy's log-probs of a generation's answers at the sampling temperature (one module for DDP)."""

    def __init__(self, model, cfg: TrainConfig, online: OnlineConfig, shared: bool) -> None:
        cls = SharedPromptLogps if shared else CompletionLogps
        self.module, self.shared = cls(model, cfg.logprob_chunk, online.temperature), shared

    def collate(self, rows: list[EncodedRow], pad_id: int) -> dict[str, torch.Tensor]:
        return collate_shared(rows, pad_id) if self.shared else collate(rows, pad_id)


@torch.no_grad()
def _reference(ref_model, gen: _Generation, cfg, online, pad_id, device, shared) -> list[list[torch.Tensor]]:
    lp = _Logps(ref_model, cfg, online, shared)
    out = []
    for start in range(0, len(gen.encoded), cfg.batch_size):
        rows = gen.encoded[start : start + cfg.batch_size]
        res = _forward(lp.module, lp.collate(rows, pad_id), device)
        per_seq = [res.values[i][res.mask[i]].float().cpu() for i in range(res.values.shape[0])]
        out.extend([per_seq[j * len(rows) + r] for j in range(len(rows[0].answers))] for r in range(len(rows)))
    return out


def _micro_loss(module, lp: _Logps, objective: Objective, gen: _Generation, idx: list[int], *, pad_id, device) -> LossOutput:
    """Forward of prompts ``idx`` with their K answers, then the objective (the update step runs backward)."""
    rows = [gen.encoded[i] for i in idx]
    batch = lp.collate(rows, pad_id)
    out = _forward(module, batch, device)
    k, mask = len(rows[0].answers), out.mask.detach()

    def cut(per_seq):  # sequence-major 1-D tensors -> GroupLogps aligned with the policy's
        return shape_for_objective(BatchKind.GROUP, scatter_cached(per_seq, mask), len(idx), batch)

    extras = {"group_valid": batch["group_valid"].to(device),
              "old_logps": cut([torch.tensor(gen.old[i][j]) for j in range(k) for i in idx]),
              "rewards": torch.tensor([gen.rewards[i] for i in idx], device=device),
              "truncated": torch.tensor([gen.truncated[i] for i in idx], device=device)}
    ref = cut([gen.reference[i][j] for j in range(k) for i in idx]) if gen.reference is not None else None
    return objective.loss(shape_for_objective(BatchKind.GROUP, out, len(idx), batch), ref, extras)


def _messages(prompt) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def check_context(model, tokenizer, rows: Sequence[dict[str, Any]], max_new_tokens: int) -> None:
    """Refuse, before any work, ``max_new_tokens`` that do not fit the model's context after the longest
    prompts (the 16 longest by characters are tokenized, as the generator will)."""
    context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if not context:
        return
    if max_new_tokens >= context:
        raise ConfigError(f"online.max_new_tokens={max_new_tokens} exceeds the model's context of {context} tokens")
    from refeed.batch.encode import encode_prompt

    longest = sorted((r["prompt"] for r in rows if "prompt" in r), key=lambda p: len(str(p)), reverse=True)[:16]
    n = max((len(encode_prompt(tokenizer, _messages(p))) for p in longest), default=0)
    if n + max_new_tokens > context:
        raise ConfigError(f"online.max_new_tokens={max_new_tokens} with a {n}-token prompt exceeds the model's "
                          f"context of {context} tokens")


def _prompt_batches(n_rows: int, per_gen: int, rng: random.Random):
    """Row indices of each generation's prompts: reshuffled every epoch, the ragged tail dropped."""
    while True:
        order = list(range(n_rows))
        rng.shuffle(order)
        for s in range(0, n_rows - per_gen + 1, per_gen):
            yield order[s : s + per_gen]


def _check(rows, fns, objective, online: OnlineConfig, per_gen: int) -> None:
    if not rows or "prompt" not in rows[0]:
        have = sorted(rows[0]) if rows else []
        raise ConfigError(f"the online loop samples answers to a 'prompt' column; the dataset has {have}")
    if not fns:
        raise ConfigError("the online loop needs at least one reward function")
    if online.reward_weights and len(online.reward_weights) != len(fns):
        raise ConfigError(f"{len(online.reward_weights)} reward weights for {len(fns)} reward functions")
    if objective.batch_kind is not BatchKind.GROUP or not objective.needs.rewards:
        raise ConfigError(f"objective '{objective.name}' does not learn from scored rollouts; use the offline loop")
    if len(rows) < per_gen:
        raise ValueError(f"{len(rows)} prompts is fewer than one generation's batch ({per_gen}); lower train.batch_size")


def train_online(model, tokenizer, rows: Sequence[dict[str, Any]], rewards: Sequence[Reward], objective: Objective,
                 cfg: TrainConfig, online: OnlineConfig = OnlineConfig(), run_dir: Path | None = None,
                 generator=None, ref_model=None, resume_from: Path | None = None,
                 progress: Callable[[int, int, dict[str, float]], bool | None] | None = None,
                 on_rollouts: Callable[[int, list[Rollout]], None] | None = None) -> TrainResult:
    """Train ``model`` in place on answers it samples to ``rows``' prompts; see the module docstring.

    ``cfg.max_steps`` counts optimizer steps (``mu`` per generation); 0 runs ``cfg.epochs`` passes over
    the prompts. ``progress(step, total, record)`` returning True stops early, as in the offline loop.
    ``on_rollouts(generation, rollouts)`` gets each new generation's scored rollouts (prompt-major, K per
    prompt, ``rollout.rewards`` set) before its updates, e.g. to log them to a store; a generation restored
    from a checkpoint is not handed out again.
    """
    t0 = time.perf_counter()
    rows = list(rows)
    acc = make_accelerator(cfg)
    world, device = acc.num_processes, acc.device
    per_gen = cfg.batch_size * cfg.grad_accum * world
    _check(rows, rewards, objective, online, per_gen)
    check_context(model, tokenizer, rows, online.max_new_tokens)
    if run_dir:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model.to(device)
    if objective.needs.reference and ref_model is None:
        ref_model = copy.deepcopy(model).eval()  # the starting policy, frozen
    if generator is None:
        from refeed.models.hf_generator import TransformersGenerator

        generator = TransformersGenerator(model, tokenizer, name="policy", version="policy@step0")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total = cfg.max_steps or (len(rows) // per_gen) * cfg.epochs * online.mu
    lp = _Logps(model, cfg, online, cfg.share_prompt and supports_shared_prompt(model))
    run = _Online(None, lp, objective, generator, rows, list(rewards), tuple(online.reward_weights) or (1.0,) * len(rewards),
                  cfg, online, pad_id, ref_model, on_rollouts)
    update, state = Update.create(acc, model, lp.module, cfg, total, run_dir, rng, resume_from,
                                  extra_state=lambda: {"generation": run.gen.state() if run.gen else None})
    run.update = update
    batches = _prompt_batches(len(rows), per_gen, rng)
    for _ in range(math.ceil(update.step / online.mu)):
        next(batches)  # replay the prompt draws up to the checkpoint's generation (the current one included)
    if state:
        torch.set_rng_state(state["torch_rng"])
        rng.setstate(state["python_rng"])
        saved = (state.get("extra") or {}).get("generation")
        run.gen = _Generation.from_state(saved) if saved and update.step % online.mu else None
    start = update.step
    if start and _tracks(generator):
        generator.version = f"{generator.name}@step{start}"
    history = run.steps(batches, total, acc.process_index, progress)
    acc.wait_for_everyone()
    model.eval()
    return TrainResult(steps=start + len(history), seconds=time.perf_counter() - t0, history=history, model=model)


def _tracks(generator) -> bool:
    """Whether the generator samples the policy being trained (its rollouts' version follows the steps); an
    endpoint's model (``OpenAIGenerator``) keeps the version the endpoint names."""
    return bool(getattr(generator, "tracks_policy", False))


@dataclass
class _Online:
    update: Update | None
    lp: _Logps
    objective: Objective
    generator: Any
    rows: list[dict[str, Any]]
    fns: list[Reward]
    weights: tuple[float, ...]
    cfg: TrainConfig
    online: OnlineConfig
    pad_id: int
    ref_model: Any
    on_rollouts: Callable[[int, list[Rollout]], None] | None = None
    gen: _Generation | None = None

    def steps(self, batches, total: int, rank: int, progress) -> list[dict[str, float]]:
        update, cfg, mu = self.update, self.cfg, self.online.mu
        device = update.acc.device
        history: list[dict[str, float]] = []
        while update.step < total:
            if self.gen is None or update.step % mu == 0:
                if update.step and hasattr(self.generator, "sync"):  # a generator holding its own weights (vLLM)
                    self.generator.sync(update.model, self.generator.version)
                idx = next(batches)[rank * cfg.batch_size * cfg.grad_accum : (rank + 1) * cfg.batch_size * cfg.grad_accum]
                self.gen, rollouts = _generate(self.generator, [self.rows[i] for i in idx], self.fns, self.weights,
                                               self.online, cfg.seed, update.step // mu)
                if self.on_rollouts is not None:
                    self.on_rollouts(self.gen.index, rollouts)
                if self.ref_model is not None:
                    self.gen.reference = _reference(self.ref_model, self.gen, cfg, self.online, self.pad_id, device,
                                                    self.lp.shared)
            update.model.train()
            micro = [list(range(m * cfg.batch_size, (m + 1) * cfg.batch_size)) for m in range(cfg.grad_accum)]
            record = update(micro, functools.partial(_micro_loss, update.module, self.lp, self.objective, self.gen,
                                                     pad_id=self.pad_id, device=device), self.gen.metrics)
            if _tracks(self.generator):
                self.generator.version = f"{self.generator.name}@step{update.step}"
            history.append(record)
            if progress and progress(update.step, total, record):
                break
        update.close()
        return history
