"""CausalRM: reward modelling from observational feedback ("CausalRM: Causal-Theoretic Reward Modeling
for RLHF from Observational User Feedbacks", https://arxiv.org/abs/2603.18736; code read: yhc-666/Causal-RM
``benchmark_ome_ips.py::train``, official status unverified; METHODS.md section 14).

Logged rows (x, y, o, y~): o = 1 when the user reacted at all (``observed``), y~ the noisy label when
o = 1 (``label``), p = P(o = 1 | x, y) the logging ``propensity``. With l(f, c) = BCE(f, c) on the
reward logit f and noise rates e01 = P(y~=1 | y=0), e10 = P(y~=0 | y=1):

    l~(f, 1) = [(1 - e01) l(f, 1) - e10 l(f, 0)] / (1 - e01 - e10)        (noise-corrected, unbiased)
    l~(f, 0) = [(1 - e10) l(f, 0) - e01 l(f, 1)] / (1 - e01 - e10)
    L = mean over ALL logged rows of  o * l~(f, y~) / clip(p, clip_min, 1)     (inverse propensity)

Negative per-row values are expected. The code estimates e01 / e10 each step from a separate noise
model; refeed takes them as config and gives ``anchor_noise_rates`` for estimating them from such a
model's predicted P(y~=1) (anchor points, q = 0.97). The reward is sigma(f).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refeed.objectives.base import BatchKind, Head, LossOutput, Needs, TokenScores


@dataclass(frozen=True)
class CausalRMConfig:
    e01: float = 0.0  # P(observed label 1 | true label 0); 0 and 0 = no noise correction
    e10: float = 0.0  # P(observed label 0 | true label 1)
    clip_min: float = 0.1  # propensities are clipped to [clip_min, 1] before inverting

    def __post_init__(self) -> None:
        if self.e01 < 0 or self.e10 < 0 or self.e01 + self.e10 >= 1:
            raise ValueError(
                f"objective.e01, e10 must be >= 0 with e01 + e10 < 1, got {self.e01}, {self.e10}"
            )
        if not 0 < self.clip_min <= 1:
            raise ValueError(f"objective.clip_min must be in (0, 1], got {self.clip_min}")


def anchor_noise_rates(p_noisy: torch.Tensor, q: float = 0.97) -> tuple[float, float]:
    """(e01, e10) from a noise model's predicted P(y~ = 1) on many rows: its low and high anchors."""
    e01 = torch.quantile(p_noisy.double(), 1 - q).item()
    e10 = 1 - torch.quantile(p_noisy.double(), q).item()
    return e01, e10


def corrected_bce(f: torch.Tensor, e01: float, e10: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(l~(f, 1), l~(f, 0)), each shaped like ``f``."""
    bce1 = F.binary_cross_entropy_with_logits(f, torch.ones_like(f), reduction="none")
    bce0 = F.binary_cross_entropy_with_logits(f, torch.zeros_like(f), reduction="none")
    den = 1 - e01 - e10
    return ((1 - e01) * bce1 - e10 * bce0) / den, ((1 - e10) * bce0 - e01 * bce1) / den


class CausalRM:
    name = "causal_rm"
    Config = CausalRMConfig
    batch_kind = BatchKind.UNPAIRED
    # label holds y~ (any value where observed is 0)
    needs = Needs(head=Head.SCORE, extra_columns=("observed", "propensity"))

    def __init__(self, cfg: CausalRMConfig) -> None:
        self.cfg = cfg

    def reward(self, scores: TokenScores, batch: dict | None = None) -> torch.Tensor:
        """(B,) sigma of the head at the last completion token: the de-noised P(good | x, y)."""
        return torch.sigmoid(scores.last()[:, 0])

    def loss(self, policy: TokenScores, reference: None = None, batch: dict | None = None) -> LossOutput:
        """Args:
            policy: head outputs (B, T, 1).
            batch: ``observed`` (B,) 0/1, ``label`` (B,) noisy 0/1, ``propensity`` (B,) in (0, 1].

        Returns:
            The mean over all logged rows of the propensity-weighted, noise-corrected loss.
        """
        f = policy.last()[:, 0]  # (B,)
        observed, label = batch["observed"].to(f), batch["label"].to(f)  # (B,), (B,)
        weight = observed / batch["propensity"].to(f).clamp(min=self.cfg.clip_min, max=1.0)  # (B,)
        l1, l0 = corrected_bce(f, self.cfg.e01, self.cfg.e10)  # (B,), (B,)
        losses = weight * (label * l1 + (1 - label) * l0)  # (B,)
        return LossOutput(
            loss=losses.mean(),
            metrics={"rm/ips_weight": weight.mean(), "rm/p": torch.sigmoid(f).detach().mean()},
        )
