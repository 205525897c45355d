"""Groupwise DPO under a Plackett-Luce model (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290,
Appendix A.3, Eq. 18; the groupwise objective of PhyGDPO, https://github.com/caiyuanhao1998/Open-PhyGDPO, and D3PO
generalised to text). For K answers ranked y_(1) > ... > y_(K), with DPO implicit rewards
``u_k = beta * (log pi(y_(k)|x) - log ref(y_(k)|x))`` (sums over completion tokens):

    L = mean_b - sum_{k=1}^{K-1} [ u_k - log sum_{j=k}^{K} exp(u_j) ]

K = 2 is exactly DPO. ``top_k`` keeps only the first ``top_k`` terms, the likelihood of a partial
ranking (``top_k=1``: "the best of the group", a softmax over the group). Ragged groups are padded at
the end (``valid`` False) and contribute nothing. PhyGDPO's physics-guided group construction and
LoRA-switch reference are UNCERTAIN (code not released) and not part of this loss (METHODS.md section 32).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from refeed.objectives.base import BatchKind, GroupLogps, LossOutput, Needs


@dataclass(frozen=True)
class PlackettLuceConfig:
    beta: float = 0.1  # as DPO
    top_k: int = 0  # terms of the ranking likelihood to keep; 0 = all K-1 (a full ranking)

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"objective.beta must be > 0, got {self.beta}")
        if self.top_k < 0:
            raise ValueError(f"objective.top_k must be >= 0, got {self.top_k}")


def plackett_luce_nll(u: torch.Tensor, valid: torch.Tensor, top_k: int = 0) -> torch.Tensor:
    """Negative log-likelihood of the ranking best-first under Plackett-Luce with utilities ``u``.

    Args:
        u: (B, K) utilities, best first.
        valid: (B, K) bool, False on padding at the end of a group.
        top_k: number of leading terms to keep; 0 = all.

    Returns:
        (B,) the per-group NLL.
    """
    masked = u.masked_fill(~valid, float("-inf"))  # (B, K)
    tail_lse = torch.logcumsumexp(masked.flip(-1), dim=-1).flip(-1)  # (B, K): log sum_{j>=k} exp(u_j)
    k = torch.arange(u.shape[-1], device=u.device)[None, :]  # (1, K)
    use = k < (valid.sum(-1, keepdim=True) - 1)  # (B, K): terms 1..K-1 of each group
    if top_k:
        use = use & (k < top_k)
    terms = torch.where(use, u - tail_lse, torch.zeros_like(u))  # (B, K); where() keeps -inf out of grads
    return -terms.sum(-1)


class PlackettLuce:
    name = "plackett_luce"
    Config = PlackettLuceConfig
    batch_kind = BatchKind.GROUP
    needs = Needs(reference=True)

    def __init__(self, cfg: PlackettLuceConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: GroupLogps, reference: GroupLogps, batch: dict | None = None) -> LossOutput:
        """Args:
            policy, reference: (B, K, T) completion log-probs, best answer first.

        Returns:
            The batch mean of the Plackett-Luce NLL of the given ranking.
        """
        u = self.cfg.beta * (policy.sum() - reference.sum())  # (B, K)
        nll = plackett_luce_nll(u, policy.valid, self.cfg.top_k)  # (B,)
        top = u.detach().masked_fill(~policy.valid, float("-inf")).argmax(-1)  # (B,)
        return LossOutput(loss=nll.mean(), metrics={"rewards/top1_accuracy": (top == 0).float().mean()})
