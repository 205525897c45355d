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
base rates. The reward is E[level] = sum_k p_k.

The NLL is computed in log space: -log(1 - p_1) = -logsigmoid(-z_1), -log p_k = -logsigmoid(z_k), and
log(p_j - p_{j+1}) = logsigmoid(z_j) + logsigmoid(-z_{j+1}) + log(1 - exp(-g_j)) with the gap
g_j = z_j - z_{j+1} = a_{j+1} - a_j - s_{j+1} l_{j+1} formed without cancellation. The probability form
rounds 1 - p to 0 in float32 from |z| of about 17, where a confidently wrong row then gets an infinite
(or clamped and gradient-free) loss; here its loss grows like |z| and its gradient stays ~s.
Deviation: GNOLR keeps p_j > p_{j+1} with bounded cosine logits (gamma < a_2 - a_1); a fresh linear
head has no such bound, so the gap is floored at ``MIN_GAP`` inside the last log (a metric counts
violations). Below the floor that log is constant, and the two logsigmoid terms still push p_j up and
p_{j+1} down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from refeed.objectives.base import BatchKind, Head, LossOutput, Needs, TokenScores
from refeed.objectives.stable import log_sigmoid_diff

MIN_GAP = 1e-4  # floor of z_j - z_{j+1} inside log(1 - exp(-gap)): caps that term at -log(1e-4) = 9.2


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


def _thresholds(base_odds, scales, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.tensor([-math.log(m) for m in base_odds], dtype=like.dtype, device=like.device)  # (K,)
    return a, torch.tensor(scales, dtype=like.dtype, device=like.device)  # (K,), (K,)


def cumulative_logits(logits: torch.Tensor, base_odds, scales) -> torch.Tensor:
    """(B, K) z_k = sum_{i <= k} s_i l_i - a_k from head outputs ``logits`` (B, K)."""
    a, s = _thresholds(base_odds, scales, logits)
    return torch.cumsum(logits * s, dim=-1) - a


def cumulative_probs(logits: torch.Tensor, base_odds, scales) -> torch.Tensor:
    """(B, K) p_k = P(level >= k) from head outputs ``logits`` (B, K)."""
    return torch.sigmoid(cumulative_logits(logits, base_odds, scales))


def ordinal_nll(logits: torch.Tensor, level: torch.Tensor, base_odds, scales) -> torch.Tensor:
    """(B,) sum over k of the ordinal NLL truncated at level k, from head outputs ``logits`` (B, K)."""
    K = logits.shape[-1]
    a, s = _thresholds(base_odds, scales, logits)
    z = cumulative_logits(logits, base_odds, scales)  # (B, K)
    gap = (a[1:] - a[:-1]) - s[1:] * logits[:, 1:]  # (B, K-1): z_j - z_{j+1}
    middle = log_sigmoid_diff(z[:, :-1], z[:, 1:], gap.clamp(min=MIN_GAP))  # (B, K-1): log(p_j - p_{j+1})
    below = F.logsigmoid(-z[:, :1])  # (B, 1): log(1 - p_1)
    total = torch.zeros_like(z[:, 0])
    for k in range(1, K + 1):
        # log P_k(class) for class 0..k: [log(1 - p_1), log(p_1 - p_2), ..., log p_k]
        table = torch.cat([below, middle[:, : k - 1], F.logsigmoid(z[:, k - 1 : k])], dim=-1)  # (B, k+1)
        total = total - table.gather(-1, level.clamp(max=k)[:, None]).squeeze(-1)  # levels >= k: one class
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
        logits = policy.last()  # (B, K)
        p = cumulative_probs(logits, self.cfg.base_odds, self.cfg.scales)  # (B, K)
        level = batch["label"].to(p.device).round().long().clamp(0, self.needs.num_heads)  # (B,)
        nll = ordinal_nll(logits, level, self.cfg.base_odds, self.cfg.scales)  # (B,)
        return LossOutput(
            loss=nll.mean(),
            metrics={
                "rm/expected_level": p.detach().sum(-1).mean(),
                "rm/order_violations": (p[:, 1:] > p[:, :-1]).float().sum(-1).mean(),
            },
        )
