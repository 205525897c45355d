"""What every objective takes and returns.

An objective is pure: it receives per-token log-probs of completions (policy, and the cached
reference when ``needs.reference``), plus the batch's per-answer tensors, and returns a ``LossOutput``.
It never calls a model, the store or accelerate; the loop does that. What the loop must prepare is
declared in ONE value, ``needs = Needs(...)`` (with ``batch_kind`` for the row shape); the loop reads
it and never checks names.

What ``loss(policy, reference, batch)`` receives, by ``head`` and ``batch_kind``:

    head LM     SFT / UNPAIRED / GRADED  TokenLogps (B, T)
                UNPAIRED + kl_completions UnpairedLogps(completion, kl)
                PAIR                     PairLogps(chosen, rejected)
                GROUP                    GroupLogps (B, K, T)
    head SCORE  SFT / UNPAIRED / GRADED / SPANS  TokenScores (B, T, H)
                PAIR                     PairScores(chosen, rejected)

``reference`` has the same type (log-probs under the frozen reference) when ``needs.reference``, else None.
``batch`` holds the row's numeric columns as float tensors (B,) (``label``, ``weight``, and every name
in ``needs.extra_columns``) plus, for SPANS, ``segment_labels`` / ``segment_mask`` (B, T, H), and for
GROUP rows ``group_valid`` (B, K). Online objectives (rollouts from the current policy) also get
``old_logps`` (the sampling log-probs, same type as ``policy``) when ``needs.old_logps``, and
``rewards`` (B, K) when ``needs.rewards``; they turn rewards into advantages inside their own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import torch


class BatchKind(StrEnum):
    """The shape of the rows an objective trains on; the loop collates and runs the forward to match."""

    SFT = "sft"  # prompt, completion
    PAIR = "pair"  # prompt, chosen, rejected
    UNPAIRED = "unpaired"  # prompt, completion, label (bool)
    GROUP = "group"  # prompt, completions (list of k texts, best first), loop pads ragged groups
    GRADED = "graded"  # prompt, completion, label (int level 0..K: how far up a ladder of signals it got)
    SPANS = (
        "spans"  # prompt, completion, segments [{"end": char offset in completion, "head": h, "label": 0|1}]
    )


class Head(StrEnum):
    """What the loop puts on top of the decoder for this objective."""

    LM = "lm"  # the language-model head: per-token log-probs of the completion
    SCORE = "score"  # a fresh nn.Linear(hidden, num_heads): per-token scores on completion positions


@dataclass(frozen=True)
class Needs:
    """Everything an objective asks of the loop, declared once: ``needs = Needs(reference=True)``.

    A class attribute; an objective whose needs depend on its config replaces it in ``__init__``
    (``self.needs = replace(self.needs, kl_completions=cfg.use_kl)``). Fields, default first:
        reference: compute reference log-probs once (frozen; cached by model, data and max_length
            fingerprints) and pass them as ``reference``.
        old_logps: online rollouts: pass the log-probs each token was sampled with as
            ``batch["old_logps"]`` (same type as ``policy``), for importance ratios.
        rewards: online rollouts: pass the per-answer rewards ``batch["rewards"]`` (B, K).
        head: Head.SCORE -> put an nn.Linear(hidden, num_heads) on the decoder's last hidden states,
            pass TokenScores / PairScores instead of log-probs, save the head with the model; such
            objectives also define ``reward(scores, batch) -> (B,)`` (or (B, T) when ``dense_reward``),
            the one function that turns head outputs into the reward used downstream.
        num_heads: output size of the SCORE head.
        dense_reward: ``reward`` returns per-token rewards (B, T) on completion positions.
        extra_columns: numeric row columns the objective reads from ``batch`` as float (B,); the loop
            refuses a dataset lacking any of them, naming the column.
        principle_conditioned: rows carry a ``principle`` (text); the loop scores each row's prompt
            with the principle appended to its last user turn (``principle_prompt``, RLBFF).
        kl_completions: for each row i add the sequence (prompt_i, completion of row i-1), rows taken
            in dataset order, cyclic, fixed once so its reference log-probs are cached like the
            others; pass UnpairedLogps(completion, kl) for policy and reference.
        staged: rows carry an int ``stage`` column; train stage 0, then 1, ... (shuffle within a
            stage only).
        refresh_reference: with ``staged``, recompute the reference log-probs from the current policy
            at the start of every stage after the first.
    """

    reference: bool = False
    old_logps: bool = False
    rewards: bool = False
    head: Head = Head.LM
    num_heads: int = 1
    dense_reward: bool = False
    extra_columns: tuple[str, ...] = ()
    principle_conditioned: bool = False
    kl_completions: bool = False
    staged: bool = False
    refresh_reference: bool = False

    def __post_init__(self) -> None:
        if self.num_heads < 1:
            raise ValueError(f"an objective needs num_heads >= 1, got {self.num_heads}")
        if self.head is Head.SCORE and (self.reference or self.old_logps):
            raise ValueError("a score-head objective (a reward model) trains on no reference or sampling log-probs")
        if self.refresh_reference and not self.staged:
            raise ValueError("refresh_reference re-takes the reference per stage; it needs staged=True")


@dataclass
class TokenLogps:
    """Per-token log-probs of completion tokens, ``log pi(y_t | x, y_<t)``.

    ``values`` is 0 wherever ``mask`` is False (prompt, padding), so sums need no masking twice.
    """

    values: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T) bool, True on completion tokens (EOS included)

    def sum(self) -> torch.Tensor:  # (B,)
        return (self.values * self.mask).sum(-1)

    def count(self) -> torch.Tensor:  # (B,)
        return self.mask.sum(-1)

    def mean(self) -> torch.Tensor:  # (B,)
        return self.sum() / self.count().clamp(min=1)


@dataclass
class PairLogps:
    chosen: TokenLogps
    rejected: TokenLogps


@dataclass
class UnpairedLogps:
    """KTO-style rows: each row's completion and, for the KL reference point, a mismatched completion.

    ``kl`` row i holds ``log pi(y_{i-1} | x_i)``: row i's prompt with the completion of the row before it.
    """

    completion: TokenLogps
    kl: TokenLogps


@dataclass
class GroupLogps:
    """Log-probs of K completions per prompt, ordered best first; ragged groups padded at the end."""

    values: torch.Tensor  # (B, K, T), 0 where mask is False
    mask: torch.Tensor  # (B, K, T) bool, completion tokens
    valid: torch.Tensor  # (B, K) bool, False on padding completions

    def sum(self) -> torch.Tensor:  # (B, K)
        return (self.values * self.mask).sum(-1)

    def count(self) -> torch.Tensor:  # (B, K)
        return self.mask.sum(-1)

    def mean(self) -> torch.Tensor:  # (B, K)
        return self.sum() / self.count().clamp(min=1)


@dataclass
class TokenScores:
    """Outputs of a ``Head.SCORE`` head: ``num_heads`` scalars at every completion token.

    Position t holds the head applied to the hidden state AFTER reading completion token t (so the
    EOS position has read the whole answer); the sequence score is the one at the last token.
    """

    values: torch.Tensor  # (B, T, H)
    mask: torch.Tensor  # (B, T) bool, True on completion tokens (EOS included)

    def last(self) -> torch.Tensor:  # (B, H): the score at each sequence's last completion token
        t = torch.arange(self.mask.shape[1], device=self.mask.device)  # (T,)
        idx = (self.mask * (t + 1)).argmax(-1)  # (B,): position of the last True
        return self.values[torch.arange(self.values.shape[0], device=idx.device), idx]


@dataclass
class PairScores:
    chosen: TokenScores
    rejected: TokenScores


def principle_prompt(prompt: str, principle: str) -> str:
    """The prompt an RLBFF row is scored under: the user's prompt followed by the principle to check."""
    return f"{prompt}\n\n[Principle to check: {principle}]"


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, the mean over the batch unless the objective says otherwise
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)


class Objective(Protocol):
    """The protocol every objective class follows (see ``refeed/objectives/dpo.py``).

        name: the registry key.
        Config: the frozen dataclass built from the ``objective:`` section of a recipe.
        batch_kind: which row columns to tokenize and how to shape the forward's output (module doc).
        needs: what the loop prepares (``Needs``): reference, sampling log-probs, rewards, head, ...
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    batch_kind: ClassVar[BatchKind]
    needs: Needs

    def __init__(self, cfg: Any) -> None: ...

    def loss(self, policy: Any, reference: Any | None, batch: dict[str, Any]) -> LossOutput: ...
