"""SFT: supervised fine-tuning, the negative log-likelihood of completion tokens (prompt masked).

Ouyang et al. 2022 (InstructGPT, https://arxiv.org/abs/2203.02155), Section 3.5 "SFT"; the standard
causal-LM loss restricted to the answer:

    L = mean_b [ -(1/|y_b|) sum_t log pi(y_t | x_b, y_<t) ]          (reduction="sequence_mean", default)
    L = mean_b [ -sum_t log pi(y_t | x_b, y_<t) ]                     (reduction="sum")

Choice: the default is the per-sequence MEAN over completion tokens, then the mean over the batch, so
each example weighs the same whatever its length and batch 8 x 1 equals batch 1 x 8 exactly (the
token-weighted mean over the whole batch that HF's ``labels=`` loss computes is not invariant to how
rows are split into micro-batches). ``sum`` weighs long answers more, as a per-token loss over a
dataset does. An optional ``weight`` column scales each row (e.g. RFT on reward-filtered samples).
"""

from __future__ import annotations

from dataclasses import dataclass

from refeed.objectives.base import BatchKind, LossOutput, Needs, TokenLogps

REDUCTIONS = ("sequence_mean", "sum")


@dataclass(frozen=True)
class SFTConfig:
    reduction: str = "sequence_mean"  # "sequence_mean": every row weighs the same; "sum": every token does

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"objective.reduction must be one of {REDUCTIONS}, got {self.reduction!r}")


class SFT:
    name = "sft"
    Config = SFTConfig
    batch_kind = BatchKind.SFT
    needs = Needs()

    def __init__(self, cfg: SFTConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: TokenLogps, reference: None = None, batch: dict | None = None) -> LossOutput:
        """Args:
            policy: completion log-probs (B, T).
            batch: may hold ``weight`` (B,), a per-row multiplier.

        Returns:
            The batch mean of the per-row NLL.
        """
        nll = -(policy.mean() if self.cfg.reduction == "sequence_mean" else policy.sum())  # (B,)
        weight = (batch or {}).get("weight")
        weighted = nll * weight.to(nll.dtype) if weight is not None else nll  # (B,)
        return LossOutput(loss=weighted.mean(), metrics={"nll/token": (-policy.mean()).detach().mean()})
