"""Pointwise binary reward model: P(good | x, y) from thumbs, "Love" reactions, or yes/no principles.

One loss serves two papers, whose difference lives in the data:
- RLUF ("Reinforcement Learning from User Feedback", 2025, https://arxiv.org/abs/2505.14946): P[Love](x, y) = sigma(f(x, y)) trained with
  BCE on logged binary reactions; class imbalance through ``pos_weight`` = n_negative / n_positive;
- RLBFF ("Binary Flexible Feedback", 2025, https://arxiv.org/abs/2509.21319): reward modelling as entailment,
  P(satisfied | x, y, principle); the principle is part of the prompt (``principle_prompt``; set
  ``principle: true`` and give rows a ``principle`` column).

    L = mean_b w_b [ -pos_weight y_b log sigma(f_b) - (1 - y_b) log(1 - sigma(f_b)) ]

f is a scalar head at the answer's last token; w the optional ``weight`` column; the reward is sigma(f).
UNCERTAIN (METHODS.md sections 15, 17, no code read): RLBFF's prompt template and whether its scalar
RM reads a Yes-token logit or a regression head; refeed uses a fresh scalar head and the template in
``principle_prompt``. RLUF's multi-objective combination of P[Love] with other rewards is an online
matter (a weighted sum of rewards), not part of this loss.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from refeed.objectives.base import BatchKind, Head, LossOutput, Needs, TokenScores, principle_prompt

__all__ = ["BinaryRM", "BinaryRMConfig", "principle_prompt"]


@dataclass(frozen=True)
class BinaryRMConfig:
    pos_weight: float = 1.0  # multiplies the positive-label term; n_negative / n_positive balances classes
    # RLBFF: rows carry a ``principle`` and label = whether the answer satisfies it; the prompt is scored
    # with the principle appended (``principle_prompt``), at training and at scoring time alike.
    principle: bool = False

    def __post_init__(self) -> None:
        if self.pos_weight <= 0:
            raise ValueError(f"objective.pos_weight must be > 0, got {self.pos_weight}")


class BinaryRM:
    name = "binary_rm"
    Config = BinaryRMConfig
    batch_kind = BatchKind.UNPAIRED
    needs = Needs(head=Head.SCORE)

    def __init__(self, cfg: BinaryRMConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, principle_conditioned=cfg.principle)

    def reward(self, scores: TokenScores, batch: dict | None = None) -> torch.Tensor:
        """(B,) P(good | x, y) = sigma of the head at the last completion token."""
        return torch.sigmoid(scores.last()[:, 0])

    def loss(self, policy: TokenScores, reference: None = None, batch: dict | None = None) -> LossOutput:
        """Args:
            policy: head outputs (B, T, 1).
            batch: ``label`` (B,) 1 = good; optional ``weight`` (B,).

        Returns:
            The batch mean of the (weighted) binary cross-entropy.
        """
        logit = policy.last()[:, 0]  # (B,)
        label = batch["label"].to(logit)  # (B,)
        pos_weight = torch.tensor(self.cfg.pos_weight, dtype=logit.dtype, device=logit.device)
        losses = F.binary_cross_entropy_with_logits(
            logit, label, pos_weight=pos_weight, reduction="none"
        )  # (B,)
        if batch.get("weight") is not None:
            losses = losses * batch["weight"].to(losses)
        return LossOutput(
            loss=losses.mean(),
            metrics={
                "rm/accuracy": ((logit > 0).to(label) == label).float().mean(),
                "rm/p": torch.sigmoid(logit).detach().mean(),
            },
        )
