"""What every objective takes and returns.

An objective is pure: it receives per-token log-probs of completions (policy, and the cached
reference when ``needs_reference``), plus the batch's extra tensors, and returns a ``LossOutput``.
It never calls a model, the store or accelerate; the loop does that and reads the capability
attributes (``batch_kind``, ``needs_reference``) instead of checking names.
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
    GROUP = "group"  # prompt, k completions, ranks


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
class LossOutput:
    loss: torch.Tensor  # scalar, the mean over the batch unless the objective says otherwise
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)


class Objective(Protocol):
    """The protocol every objective class follows (see ``refeed/objectives/dpo.py``)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    batch_kind: ClassVar[BatchKind]
    needs_reference: ClassVar[bool]

    def __init__(self, cfg: Any) -> None: ...

    def loss(self, policy: Any, reference: Any | None, batch: dict[str, torch.Tensor]) -> LossOutput: ...
