"""Ordinal reward model over graded signals: GNOLR-style cumulative logits (Generalized Neural Ordinal
Logistic Regression, code and paper links at https://github.com/FuCongResearchSquad/GNOLR;
``util/loss.py::ordinal_multi_tasks_gnolr``, METHODS.md section 33).

A row's ``label`` is the level it reached on a ladder of nested signals (0 = none; e.g. shown <
copied < thumbs-up gives levels 0, 1, 2). With one head output l_k per level, scales s_k and fixed
thresholds a_k = -log m_k (m_k the base odds pos_rate_k / (1 - pos_rate_k)):

    z_k = sum_{i <= k} s_i l_i - a_k,     p_k = P(level >= k) = sigma(z_k),   k = 1..K
    L   = sum_{k=1}^{K} NLL_k,  NLL_k = -log P_k(level), the ordinal likelihood that stops at level k:
          P_k(0) = 1 - p_1,  P_k(j) = p_j - p_{j+1} (0 < j < k),  P_k(>= k) = p_k

K = 2 is the code's two-step loss (step 1 = the first level alone, step 2 = the full ladder); the
K-level sum is ``_with_multi_feedback``'s one step per level. With all logits 0 the model predicts the
base rates. Deviation: p_j - p_{j+1} is clamped at 1e-12 inside its log; GNOLR keeps it positive with
bounded cosine logits (gamma < a_2 - a_1), a fresh linear head has no such bound (a metric counts
violations). The reward is E[level] = sum_k p_k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from refeed.objectives.base import BatchKind, Head, LossOutput, Needs, TokenScores

EPS = 1e-12


@dataclass(frozen=True)
class OrdinalConfig:
    base_odds: tuple[float, ...] = (0.0394, 0.00019)  # m_k per level, Ali-CCP script; set from your data
    scales: tuple[float, ...] = (4.0, 4.0)  # s_k per level, Ali-CCP script

    def __post_init__(self) -> None:
        if not self.base_odds or len(self.base_odds) != len(self.scales):
            raise ValueError("objective.base_odds and objective.scales must be non-empty and of equal length")
        if any(m <= 0 for m in self.base_odds):
            raise ValueError(f"objective.base_odds must all be > 0, got {self.base_odds}")


def base_odds_from_levels(levels: list[int], num_levels: int) -> tuple[float, ...]:
    """m_k = P(level >= k) / P(level < k) for k = 1..num_levels, from a sample of observed levels."""
    n = max(len(levels), 1)
    rates = [min(max(sum(lv >= k for lv in levels) / n, 1e-6), 1 - 1e-6) for k in range(1, num_levels + 1)]
    return tuple(r / (1 - r) for r in rates)


def cumulative_probs(logits: torch.Tensor, base_odds, scales) -> torch.Tensor:
    """(B, K) p_k = P(level >= k) from head outputs ``logits`` (B, K)."""
    a = torch.tensor([-math.log(m) for m in base_odds], dtype=logits.dtype, device=logits.device)  # (K,)
    s = torch.tensor(scales, dtype=logits.dtype, device=logits.device)  # (K,)
    return torch.sigmoid(torch.cumsum(logits * s, dim=-1) - a)  # (B, K)


def ordinal_nll(p: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """(B,) sum over k of the ordinal NLL truncated at level k, for cumulative probs ``p`` (B, K)."""
    K = p.shape[-1]
    total = torch.zeros_like(p[:, 0])
    for k in range(1, K + 1):
        lv = level.clamp(max=k)  # (B,): levels >= k are one class at step k
        ext = torch.cat([torch.ones_like(p[:, :1]), p[:, :k], torch.zeros_like(p[:, :1])], dim=-1)  # (B, k+2)
        upper = ext.gather(-1, lv[:, None]).squeeze(-1)  # P(level >= lv)
        lower = ext.gather(-1, (lv + 1)[:, None]).squeeze(-1)  # P(level >= lv + 1); 0 past the top
        total = total - torch.log((upper - lower).clamp(min=EPS))
    return total


class Ordinal:
    name = "ordinal"
    Config = OrdinalConfig
    batch_kind = BatchKind.GRADED
    needs = Needs(head=Head.SCORE)

    def __init__(self, cfg: OrdinalConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, num_heads=len(cfg.base_odds))  # one output per level

    def probs(self, scores: TokenScores) -> torch.Tensor:
        """(B, K) p_k = P(level >= k) at each answer's last token."""
        return cumulative_probs(scores.last(), self.cfg.base_odds, self.cfg.scales)

    def reward(self, scores: TokenScores, batch: dict | None = None) -> torch.Tensor:
        """(B,) the expected level E[level] = sum_k P(level >= k)."""
        return self.probs(scores).sum(-1)

    def loss(self, policy: TokenScores, reference: None = None, batch: dict | None = None) -> LossOutput:
        """Args:
            policy: head outputs (B, T, K).
            batch: ``label`` (B,) the level reached, 0..K.

        Returns:
            The batch mean of the summed per-level ordinal NLLs.
        """
        p = self.probs(policy)  # (B, K)
        level = batch["label"].to(p.device).round().long().clamp(0, self.needs.num_heads)  # (B,)
        nll = ordinal_nll(p, level)  # (B,)
        return LossOutput(
            loss=nll.mean(),
            metrics={
                "rm/expected_level": p.detach().sum(-1).mean(),
                "rm/order_violations": (p[:, 1:] > p[:, :-1]).float().sum(-1).mean(),
            },
        )
