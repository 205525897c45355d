"""DPO: Direct Preference Optimization (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290), Eq. 7.

    L = -log sigma(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))])

Sequence log-probs are SUMS over completion tokens (EOS included), as in the official code and TRL.
``label_smoothing`` eps gives conservative DPO (cDPO): ``-(1-eps) log sigma(beta z) - eps log sigma(-beta z)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from refeed.objectives.base import BatchKind, LossOutput, Needs, PairLogps


@dataclass(frozen=True)
class DPOConfig:
    beta: float = 0.1  # strength of the KL tie to the reference; smaller = further from it
    label_smoothing: float = 0.0  # cDPO: the assumed probability that a preference label is flipped

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"objective.beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"objective.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


class DPO:
    name = "dpo"
    Config = DPOConfig
    batch_kind = BatchKind.PAIR
    needs = Needs(reference=True)

    def __init__(self, cfg: DPOConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: PairLogps, reference: PairLogps, batch: dict | None = None) -> LossOutput:
        beta, eps = self.cfg.beta, self.cfg.label_smoothing
        chosen_ratio = policy.chosen.sum() - reference.chosen.sum()  # (B,)
        rejected_ratio = policy.rejected.sum() - reference.rejected.sum()  # (B,)
        z = chosen_ratio - rejected_ratio  # (B,)
        losses = -(1 - eps) * F.logsigmoid(beta * z) - eps * F.logsigmoid(-beta * z)  # (B,)
        chosen_reward = beta * chosen_ratio.detach()
        rejected_reward = beta * rejected_ratio.detach()
        return LossOutput(
            loss=losses.mean(),
            metrics={
                "rewards/chosen": chosen_reward.mean(),
                "rewards/rejected": rejected_reward.mean(),
                "rewards/margin": (chosen_reward - rejected_reward).mean(),
                "rewards/accuracy": (chosen_reward > rejected_reward).float().mean(),
                "logps/chosen": policy.chosen.sum().detach().mean(),
                "logps/rejected": policy.rejected.sum().detach().mean(),
            },
        )
