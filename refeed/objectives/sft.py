"""SFT: supervised fine-tuning, the negative log-likelihood of completion tokens (prompt masked).

Loss per sequence is the MEAN over its completion tokens, then the mean over the batch, so each
example weighs the same whatever its length and batch 8 x 1 equals batch 1 x 8 exactly
(a token-weighted mean over the whole batch would not be invariant to how rows are split).
"""

from __future__ import annotations

from dataclasses import dataclass

from refeed.objectives.base import BatchKind, LossOutput, TokenLogps


@dataclass(frozen=True)
class SFTConfig:
    pass


class SFT:
    name = "sft"
    Config = SFTConfig
    batch_kind = BatchKind.SFT
    needs_reference = False

    def __init__(self, cfg: SFTConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: TokenLogps, reference: None = None, batch: dict | None = None) -> LossOutput:
        nll = -policy.mean()  # (B,)
        return LossOutput(loss=nll.mean(), metrics={"nll/token": nll.detach().mean()})
