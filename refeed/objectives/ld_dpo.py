"""LD-DPO: Length-Desensitised DPO (Liu et al. 2024, https://arxiv.org/abs/2409.06411); the
LD-DPO likelihood (equation number not checked offline: the paper was not read, METHODS.md section 4).

Each answer's log-prob is split at the pair's shared length ``l_p = min(|y_w|, |y_l|)``; the tail
beyond it (only the longer answer has one) is down-weighted by ``alpha``, for policy and reference:

    log pi~(y|x) = sum_{t <= l_p} log pi(y_t|.) + alpha * sum_{t > l_p} log pi(y_t|.)
    L = DPO loss (Rafailov et al. Eq. 7) on log pi~ for both pi and ref, with beta

alpha = 1 is DPO; alpha = 0 drops the tail. No official code was found; this follows TRL's port
(``DPOTrainer`` ``ld_alpha``), consistent with LlamaFactory and ms-swift (METHODS.md section 4).
Default alpha = 0.5: the starting point the paper suggests per TRL's docs (TRL itself has no default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refeed.objectives.base import BatchKind, LossOutput, Needs, PairLogps, TokenLogps


@dataclass(frozen=True)
class LDDPOConfig:
    beta: float = 0.1  # as DPO
    alpha: float = 0.5  # weight of the tokens past the shared length; 1 = DPO, 0 = ignore the tail

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"objective.beta must be > 0, got {self.beta}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"objective.alpha must be in [0, 1], got {self.alpha}")


def desensitised_logps(lp: TokenLogps, shared: torch.Tensor, alpha: float) -> torch.Tensor:
    """Sum of the first ``shared`` completion tokens plus ``alpha`` times the rest.

    Args:
        lp: completion log-probs (B, T).
        shared: (B,) the pair's shared length min(|y_w|, |y_l|).
        alpha: weight of the tail.

    Returns:
        (B,) the length-desensitised sequence log-probs.
    """
    pos = lp.mask.long().cumsum(-1)  # (B, T): 1-based position within the completion
    head = lp.mask & (pos <= shared[:, None])  # (B, T)
    tail = lp.mask & (pos > shared[:, None])  # (B, T)
    return (lp.values * head).sum(-1) + alpha * (lp.values * tail).sum(-1)


class LDDPO:
    name = "ld_dpo"
    Config = LDDPOConfig
    batch_kind = BatchKind.PAIR
    needs = Needs(reference=True)

    def __init__(self, cfg: LDDPOConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: PairLogps, reference: PairLogps, batch: dict | None = None) -> LossOutput:
        """Args:
            policy, reference: chosen / rejected completion log-probs (B, T) each.

        Returns:
            The batch mean of DPO on length-desensitised log-probs.
        """
        beta, alpha = self.cfg.beta, self.cfg.alpha
        shared = torch.minimum(policy.chosen.count(), policy.rejected.count())  # (B,)

        def ld(lp: TokenLogps) -> torch.Tensor:  # (B,)
            return desensitised_logps(lp, shared, alpha)

        chosen_ratio = ld(policy.chosen) - ld(reference.chosen)  # (B,)
        rejected_ratio = ld(policy.rejected) - ld(reference.rejected)  # (B,)
        losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))  # (B,)
        chosen_reward, rejected_reward = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
        return LossOutput(
            loss=losses.mean(),
            metrics={
                "rewards/chosen": chosen_reward.mean(),
                "rewards/rejected": rejected_reward.mean(),
                "rewards/margin": (chosen_reward - rejected_reward).mean(),
                "rewards/accuracy": (chosen_reward > rejected_reward).float().mean(),
            },
        )
