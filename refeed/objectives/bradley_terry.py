"""Bradley-Terry reward model on preference pairs (Ouyang et al. 2022, InstructGPT,
https://arxiv.org/abs/2203.02155, Eq. 1):

    L = mean_b -log sigma( r(x, y_w) - r(x, y_l) - m )  +  c * mean_b (r(x, y_w) + r(x, y_l))^2

r is a scalar head read at the answer's last token (EOS). ``use_margin`` subtracts the row's ``margin``
column m (Llama 2's margin loss, https://arxiv.org/abs/2307.09288, Section 3.2.2); ``center_coef`` c
is TRL's ``center_rewards_coefficient`` (Eisenstein et al. 2023), which pins the free offset of BT
rewards near 0. Both are off by default, which is InstructGPT's loss exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from refeed.objectives.base import BatchKind, Head, LossOutput, Needs, PairScores, TokenScores


@dataclass(frozen=True)
class BradleyTerryConfig:
    use_margin: bool = False  # subtract the row's ``margin`` column (e.g. a rating gap) inside the sigmoid
    center_coef: float = 0.0  # weight of the (r_w + r_l)^2 penalty that keeps rewards centred

    def __post_init__(self) -> None:
        if self.center_coef < 0:
            raise ValueError(f"objective.center_coef must be >= 0, got {self.center_coef}")


class BradleyTerry:
    name = "bradley_terry"
    Config = BradleyTerryConfig
    batch_kind = BatchKind.PAIR
    needs = Needs(head=Head.SCORE)

    def __init__(self, cfg: BradleyTerryConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, extra_columns=("margin",) if cfg.use_margin else ())

    def reward(self, scores: TokenScores, batch: dict | None = None) -> torch.Tensor:
        """(B,) the scalar reward: the head's output at the last completion token."""
        return scores.last()[:, 0]

    def loss(self, policy: PairScores, reference: None = None, batch: dict | None = None) -> LossOutput:
        """Args:
            policy: head outputs for chosen and rejected (B, T, 1) each.
            batch: ``margin`` (B,) when ``use_margin``.

        Returns:
            The batch mean of the Bradley-Terry negative log-likelihood (plus the centring penalty).
        """
        chosen, rejected = self.reward(policy.chosen), self.reward(policy.rejected)  # (B,), (B,)
        diff = chosen - rejected  # (B,)
        if self.cfg.use_margin:
            diff = diff - batch["margin"].to(diff)
        loss = -F.logsigmoid(diff).mean()
        if self.cfg.center_coef > 0:
            loss = loss + self.cfg.center_coef * ((chosen + rejected) ** 2).mean()
        return LossOutput(
            loss=loss,
            metrics={
                "rm/accuracy": (chosen > rejected).float().mean(),
                "rm/margin": (chosen - rejected).detach().mean(),
            },
        )
