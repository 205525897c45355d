"""Iterative (online) DPO and DNO: sample, judge pairs, DPO, repeat. Iterative DPO as in Xiong et al. 2024
(https://arxiv.org/abs/2312.11456) and TRL's online DPO; DNO-Prct (Rosset et al. 2024, "Direct Nash
Optimization", https://arxiv.org/abs/2404.03715, Algorithm 2; METHODS.md section 6).

Per prompt, of the K answers the policy sampled, the best and the worst by reward form one pair
(y+, y-); the DPO loss of refeed/objectives/dpo.py (reused, Eq. 7 of the DPO paper) is taken on it:

    L = -log sigma(beta [(log pi(y+|x) - log ref(y+|x)) - (log pi(y-|x) - log ref(y-|x))])     (sums over tokens)

A prompt whose best and worst rewards are equal (a tie: all answers alike) gives no pair and is skipped,
counted in ``online_dpo/tie_frac``; ``min_margin`` > 0 also skips pairs closer than that (DNO keeps only
large-margin pairs). With a pointwise reward the best and worst by win-rate against the other samples
(DNO's score, for any P(a > b) increasing in r_a - r_b) are the best and worst by reward.

How the loop maps onto "sample, judge, DPO, repeat": each generation of ``train_online`` is one
iteration t. It samples K answers per prompt from the current policy pi_t, the reward functions judge
them, and ``mu`` optimizer steps minimise the DPO loss on that generation's pairs; the next generation
samples from the updated policy. The reference, by ``reference_policy``:
    initial:  the frozen starting policy (the loop's reference model), as iterative DPO / TRL's online DPO;
    previous: pi_t itself, the policy that sampled this generation (DNO-Prct: "the reference is the
              previous iterate"). Its log-probs are the sampling log-probs the loop already passes as
              ``old_logps`` (at the sampling temperature, as the policy's), so the reference is refreshed
              every generation with no reference model and no change to the loop.
Not covered: DNO's extra "gold" answer from a teacher per prompt (a generator concern); the number of
iterations and the margin threshold are not given in the sources read (UNCERTAIN, METHODS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch

from refeed.objectives.base import BatchKind, GroupLogps, LossOutput, Needs, PairLogps, TokenLogps
from refeed.objectives.dpo import DPO, DPOConfig


class ReferencePolicy(StrEnum):
    INITIAL = "initial"  # the frozen starting policy (iterative DPO)
    PREVIOUS = "previous"  # the policy that sampled the generation (DNO-Prct)


@dataclass(frozen=True)
class OnlineDPOConfig(DPOConfig):
    reference_policy: ReferencePolicy = ReferencePolicy.INITIAL
    min_margin: float = 0.0  # skip pairs whose reward gap is <= this (ties are always skipped)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_margin < 0:
            raise ValueError(f"objective.min_margin must be >= 0, got {self.min_margin}")


def best_worst(rewards: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, K) rewards -> (best index (B,), worst index (B,), reward gap (B,)) over the valid answers;
    the first of equal rewards is taken."""
    best = rewards.masked_fill(~valid, float("-inf")).argmax(1)  # (B,)
    worst = rewards.masked_fill(~valid, float("inf")).argmin(1)  # (B,)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    return best, worst, rewards[rows, best] - rewards[rows, worst]


class OnlineDPO:
    name = "online_dpo"
    Config = OnlineDPOConfig
    batch_kind = BatchKind.GROUP
    needs = Needs(reference=True, rewards=True)

    def __init__(self, cfg: OnlineDPOConfig) -> None:
        self.cfg = cfg
        self.dpo = DPO(cfg)
        if cfg.reference_policy == ReferencePolicy.PREVIOUS:
            self.needs = Needs(old_logps=True, rewards=True)

    def loss(self, policy: GroupLogps, reference: GroupLogps | None, batch: dict) -> LossOutput:
        """Args:
            policy: (B, K, T) log-probs of the K answers under the current policy.
            reference: the same under the frozen reference (``reference_policy="initial"``).
            batch: ``rewards`` (B, K), and ``old_logps`` (the sampling log-probs) for "previous".
        """
        if self.cfg.reference_policy == ReferencePolicy.PREVIOUS:
            reference = batch["old_logps"]
        best, worst, gap = best_worst(batch["rewards"].to(policy.values.dtype), policy.valid)  # (B,) each
        pair = (gap > self.cfg.min_margin) & (policy.valid.sum(1) > 1)  # (B,) prompts with a pair
        metrics = {"online_dpo/tie_frac": (gap <= 0).float().mean(), "online_dpo/pair_frac": pair.float().mean(),
                   "online_dpo/reward_gap": (gap * pair).sum() / pair.sum().clamp(min=1)}
        if not pair.any():  # no pair in the batch: a zero that still reaches the graph
            return LossOutput(loss=(policy.values * 0).sum(), metrics=metrics)
        rows = torch.nonzero(pair).squeeze(1)

        def take(g: GroupLogps, idx: torch.Tensor) -> TokenLogps:  # (P, T) one answer per kept prompt
            return TokenLogps(g.values[rows, idx[rows]], g.mask[rows, idx[rows]])

        out = self.dpo.loss(PairLogps(take(policy, best), take(policy, worst)),
                            PairLogps(take(reference, best), take(reference, worst)))
        return LossOutput(loss=out.loss, metrics=metrics | out.metrics)
