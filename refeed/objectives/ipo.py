"""IPO: Identity Preference Optimisation (Azar et al. 2023, https://arxiv.org/abs/2310.12036), Eq. 17.

Squared regression of the log-ratio margin onto ``1 / (2 tau)`` (``tau`` is ``beta`` here):

    h(y) = log pi(y|x) - log ref(y|x)
    L    = mean_b ( h(y_w) - h(y_l) - 1/(2 beta) )^2

Deviation (the default, ``normalize=True``): each log-ratio is the per-token MEAN over the completion,
as TRL does after confirming it with the authors (it matches the paper's results); the official DPO
repository's ``ipo=True`` branch uses SUMS, available as ``normalize=False`` (METHODS.md section 2).
Unlike DPO, the optimum margin is finite (1/(2 beta)) even with deterministic preferences.
"""

from __future__ import annotations

from dataclasses import dataclass

from refeed.objectives.base import BatchKind, LossOutput, Needs, PairLogps, TokenLogps


@dataclass(frozen=True)
class IPOConfig:
    beta: float = 0.1  # tau in the paper: the target margin is 1/(2 beta); smaller = larger margin
    normalize: bool = True  # per-token mean log-ratios (TRL, author-confirmed); False: sums (official repo)

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"objective.beta must be > 0, got {self.beta}")


class IPO:
    name = "ipo"
    Config = IPOConfig
    batch_kind = BatchKind.PAIR
    needs = Needs(reference=True)

    def __init__(self, cfg: IPOConfig) -> None:
        self.cfg = cfg

    def _ratio(self, pol: TokenLogps, ref: TokenLogps):  # (B,)
        diff = pol.sum() - ref.sum()
        return diff / pol.count().clamp(min=1) if self.cfg.normalize else diff

    def loss(self, policy: PairLogps, reference: PairLogps, batch: dict | None = None) -> LossOutput:
        """Args:
            policy, reference: chosen / rejected completion log-probs (B, T) each.

        Returns:
            The batch mean of the squared distance of the margin to 1/(2 beta).
        """
        chosen = self._ratio(policy.chosen, reference.chosen)  # (B,)
        rejected = self._ratio(policy.rejected, reference.rejected)  # (B,)
        margin = chosen - rejected  # (B,)
        losses = (margin - 1 / (2 * self.cfg.beta)) ** 2  # (B,)
        return LossOutput(
            loss=losses.mean(),
            metrics={
                "ipo/margin": margin.detach().mean(),
                "rewards/accuracy": (margin.detach() > 0).float().mean(),
            },
        )
