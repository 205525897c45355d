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
Each log's argument goes through the code's ``clamp_preserve_grad(x, c) = x + (max(x, c) - x).detach()``
(value clamped, gradient of the unclamped input): the negative proxy at min ``clamp_negative`` (1.0),
the positive ratio at min ``clamp_positive`` (0.0). With 1.0 the negative term's value is <= 0, its
gradient is bounded (|d(-log c)/d proxy| <= 1), and it stays finite when r R >= 1. At R = 1 the
gradient w.r.t. log pi is -(1 - r) on a correct token and +r on an incorrect one: GRPO with advantage
1[correct] - r, not std-scaled.

Both terms are computed in log space, with the code's values and gradients. The code's ``exp(log R)``
underflows to 0 in float32 once log R < -104; then ``-log 0 = inf`` and the backward's 0 * inf is NaN,
on incorrect rows too (multiplying by ``correct`` does not mask a NaN). Here each term is ``-log y``
with log y = max(log x, log c) formed directly (``log1mexp`` for the proxy), and its gradient
-x' / max(x, c) is the exp of a log difference (``_neg_log_clamped``), at most e^10 / 0.02 / c.

Deviation: the code divides the token sum by a constant 1000; refeed takes the mean over sequences of
their token sums so that gradient accumulation is invariant (a learning-rate rescale of batch/1000).
``neg_weight`` 0 gives RFT (positives only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from refeed.objectives.base import BatchKind, LossOutput, Needs, TokenLogps
from refeed.objectives.stable import log1mexp


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
        if self.clamp_positive < 0:
            raise ValueError(f"objective.clamp_positive must be >= 0, got {self.clamp_positive}")


def _neg_log_clamped(log_y: torch.Tensor, log_slope: torch.Tensor, sign: float) -> torch.Tensor:
    """``-log clamp_preserve_grad(x, c)`` as a function of log R, from log y = log max(x, c) and
    log_slope = log |dx / dlog R| - log y: value ``-log y``, gradient ``sign * exp(log_slope)``."""
    w = torch.exp(log_slope)  # (B, T) |x'| / max(x, c); its own gradient w.r.t. log R
    return -log_y.detach() + sign * (w - w.detach())


def positive_loss(log_ratio: torch.Tensor, clamp: float) -> torch.Tensor:
    """-log clamp_preserve_grad(R, clamp): value -max(log R, log clamp), gradient -R / max(R, clamp)."""
    log_y = log_ratio.clamp(min=math.log(clamp)) if clamp > 0 else log_ratio  # (B, T)
    return _neg_log_clamped(log_y, log_ratio - log_y.detach(), -1.0)


def negative_loss(log_ratio: torch.Tensor, r: torch.Tensor, clamp: float) -> torch.Tensor:
    """-log clamp_preserve_grad((1 - r R) / (1 - r), clamp): value -max(log proxy, log clamp), gradient
    r R / ((1 - r) max(proxy, clamp)); where r R >= 1 the proxy is <= 0 and the clamp alone sets the value."""
    log_rr = torch.log(r) + log_ratio  # (B, T) log(r R)
    below_one = log_rr < 0
    log_proxy = log1mexp(log_rr.clamp(max=-1e-30)) - torch.log1p(
        -r
    )  # (B, T); meaningless where not below_one
    log_y = torch.where(below_one, log_proxy.clamp(min=math.log(clamp)), math.log(clamp))  # (B, T)
    return _neg_log_clamped(log_y, log_rr - torch.log1p(-r) - log_y.detach(), 1.0)


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
        r = batch["correct_rate"].to(log_ratio).clamp(0.02, 0.98)[:, None]  # (B, 1)
        correct = (batch["label"].to(log_ratio) > 0.5)[:, None]  # (B, 1) bool
        positive = positive_loss(log_ratio, cfg.clamp_positive)  # (B, T)
        negative = cfg.neg_weight * negative_loss(log_ratio, r, cfg.clamp_negative)  # (B, T)
        per_token = torch.where(correct, positive, negative) * (1 - r) * mask  # (B, T)
        ratio = torch.exp(log_ratio.detach())  # (B, T), for the metric only
        return LossOutput(
            loss=per_token.sum(-1).mean(),
            metrics={"nft/ratio": (ratio * mask).sum() / mask.sum().clamp(min=1)},
        )
