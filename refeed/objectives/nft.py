"""NFT: Negative-aware Fine-Tuning (Chen et al. 2025, "Bridging Supervised Learning and Reinforcement
Learning in Math Reasoning", https://arxiv.org/abs/2505.18116); the loss of NVlabs/NFT ``dp_actor.py``
(METHODS.md section 29). With the token ratio R_t = pi(y_t|.) / pi_old(y_t|.) and the question's
correct rate r (clamped to [0.02, 0.98]):

    correct answers:   l_t = -log R_t                                (SFT, up to a constant)
    incorrect answers: l_t = -log( (1 - r R_t) / (1 - r) )           (ML of the implicit negative policy)
    per-token loss     = [correct l_t + neg_weight (1 - correct) l_t] (1 - r)
    L = mean over sequences of sum_t loss_t

``pi_old`` is the policy that sampled the answers: refeed passes it as the reference (log-probs cached
before the first update, i.e. one update epoch per batch of samples, as in the released recipe).
Each log's argument goes through ``clamp_preserve_grad`` (value clamped, gradient of the unclamped
input): the negative proxy at min ``clamp_negative`` (1.0), the positive ratio at min ``clamp_positive``
(0.0), as in the code. With 1.0 the negative term's value is <= 0 and its gradient is bounded
(|d(-log c)/d proxy| <= 1), and it stays finite when r R >= 1. At R = 1 the gradient w.r.t. log pi is -(1 - r) on a correct token
and +r on an incorrect one: GRPO with advantage 1[correct] - r, not std-scaled.

Deviation: the code divides the token sum by a constant 1000; refeed takes the mean over sequences of
their token sums so that gradient accumulation is invariant (a learning-rate rescale of batch/1000).
``neg_weight`` 0 gives RFT (positives only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from refeed.objectives.base import BatchKind, LossOutput, Needs, TokenLogps


@dataclass(frozen=True)
class NFTConfig:
    neg_weight: float = 1.0  # weight of the negative-answer term; 0 = RFT
    clamp_negative: float = 1.0  # lower clamp (value only) of the negative proxy inside the log
    clamp_positive: float = 0.0  # lower clamp of the positive ratio inside the log
    max_log_ratio: float = 10.0  # log R is clamped above before exp, as in the code

    def __post_init__(self) -> None:
        if self.neg_weight < 0:
            raise ValueError(f"objective.neg_weight must be >= 0, got {self.neg_weight}")
        if self.clamp_negative <= 0:
            raise ValueError(f"objective.clamp_negative must be > 0, got {self.clamp_negative}")


def clamp_preserve_grad(x: torch.Tensor, lo: float) -> torch.Tensor:
    """``max(x, lo)`` in the forward pass, the gradient of ``x`` in the backward pass."""
    return x + (torch.clamp(x, min=lo) - x).detach()


class NFT:
    name = "nft"
    Config = NFTConfig
    batch_kind = BatchKind.UNPAIRED
    # reference: the sampling policy pi_old; correct_rate: the fraction of correct samples for the row's question
    needs = Needs(reference=True, extra_columns=("correct_rate",))

    def __init__(self, cfg: NFTConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: TokenLogps, reference: TokenLogps, batch: dict) -> LossOutput:
        """Args:
            policy, reference: completion log-probs (B, T) under pi and pi_old.
            batch: ``label`` (B,) 1 if the answer is correct; ``correct_rate`` (B,) for its question.

        Returns:
            The mean over sequences of the summed NFT token losses.
        """
        cfg, mask = self.cfg, policy.mask
        log_ratio = (policy.values - reference.values).clamp(max=cfg.max_log_ratio)  # (B, T)
        ratio = torch.exp(log_ratio)  # (B, T)
        r = batch["correct_rate"].to(ratio).clamp(0.02, 0.98)[:, None]  # (B, 1)
        correct = (batch["label"].to(ratio) > 0.5).to(ratio)[:, None]  # (B, 1)
        positive = -torch.log(clamp_preserve_grad(ratio, cfg.clamp_positive))  # (B, T)
        proxy = (1 - r * ratio) / (1 - r)  # (B, T)
        negative = -torch.log(clamp_preserve_grad(proxy, cfg.clamp_negative))  # (B, T)
        per_token = (correct * positive + cfg.neg_weight * (1 - correct) * negative) * (1 - r)  # (B, T)
        per_seq = (per_token * mask).sum(-1)  # (B,)
        return LossOutput(
            loss=per_seq.mean(),
            metrics={"nft/ratio": (ratio.detach() * mask).sum() / mask.sum().clamp(min=1)},
        )
