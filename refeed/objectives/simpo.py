"""SimPO: Simple Preference Optimization (Meng et al. 2024, https://arxiv.org/abs/2405.14734); the SimPO loss
as the official code computes it (equation number not checked offline; METHODS.md section 3).

Reference-free, length-normalised reward with a target margin gamma:

    L = mean_b -log sigma( beta/|y_w| log pi(y_w|x) - beta/|y_l| log pi(y_l|x) - gamma )

Parameterisation: the official trainer takes ``gamma_beta_ratio = gamma / beta``; refeed takes
``gamma`` itself (``objective.gamma=0.5`` on the command line), default 0.5 = 2.0 x 0.25, the
official defaults. ``label_smoothing`` and ``sft_weight`` (a mean-token NLL on the chosen answer
added to the loss) follow the official ``simpo_loss`` / ``sft_weight`` (both 0 by default).
Source read: princeton-nlp/SimPO ``scripts/simpo_trainer.py::simpo_loss`` (METHODS.md section 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from refeed.objectives.base import BatchKind, LossOutput, Needs, PairLogps


@dataclass(frozen=True)
class SimPOConfig:
    beta: float = 2.0  # scale of the length-normalised reward; SimPO needs a much larger beta than DPO
    gamma: float = 0.5  # target reward margin (official: gamma_beta_ratio 0.25 x beta 2.0)
    label_smoothing: float = 0.0  # probability that a preference label is flipped
    sft_weight: float = 0.0  # weight of a mean-token NLL on the chosen answer

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"objective.beta must be > 0, got {self.beta}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"objective.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.sft_weight < 0:
            raise ValueError(f"objective.sft_weight must be >= 0, got {self.sft_weight}")


class SimPO:
    name = "simpo"
    Config = SimPOConfig
    batch_kind = BatchKind.PAIR
    needs = Needs()

    def __init__(self, cfg: SimPOConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: PairLogps, reference: None = None, batch: dict | None = None) -> LossOutput:
        """Args:
            policy: chosen / rejected completion log-probs (B, T) each; no reference is used.

        Returns:
            The batch mean of the SimPO loss (plus ``sft_weight`` x chosen NLL).
        """
        beta, eps = self.cfg.beta, self.cfg.label_smoothing
        chosen = beta * policy.chosen.mean()  # (B,)
        rejected = beta * policy.rejected.mean()  # (B,)
        logits = chosen - rejected - self.cfg.gamma  # (B,)
        losses = -(1 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)  # (B,)
        loss = losses.mean()
        if self.cfg.sft_weight > 0:
            loss = loss + self.cfg.sft_weight * (-policy.chosen.mean()).mean()
        return LossOutput(
            loss=loss,
            metrics={
                "rewards/chosen": chosen.detach().mean(),
                "rewards/rejected": rejected.detach().mean(),
                "rewards/margin": (chosen - rejected).detach().mean(),
                "rewards/accuracy": (chosen > rejected).float().mean(),
            },
        )
