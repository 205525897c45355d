"""KTO: Kahneman-Tversky Optimisation (Ethayarajh et al. 2024, https://arxiv.org/abs/2402.01306); the
KTO loss as TRL and HALOs compute it (METHODS.md section 7).

Unpaired thumbs: each row is (x, y, label) with label 1 = desirable, 0 = undesirable.

    h    = log pi(y|x) - log ref(y|x)                              (sums over completion tokens)
    z0   = max(0, mean_i [log pi(y'_i|x_i) - log ref(y'_i|x_i)])   detached; y'_i = another row's answer
    L_D  = lambda_D (1 - sigma(beta (h - z0)))      L_U = lambda_U (1 - sigma(beta (z0 - h)))
    L    = mean over the batch of the applicable term

The KL reference point z0 uses mismatched pairs, as TRL and HALOs do: the loop (``kl_completions``)
pairs row i's prompt with row i-1's completion. Deviation: TRL shifts inside each batch; refeed fixes
the pairing once over the dataset order so the reference log-probs of those sequences are cached with
the rest (the same estimator in expectation over shuffled data). z0 is the micro-batch mean, as in TRL
on one device (TRL all-reduces it across devices first). ``kl_completions=False`` at the config level
(``use_kl=False``) gives TRL's ``apo_zero_unpaired`` reference-point-free variant: z0 = 0.
Imbalance (the paper's rule, encoded as a TRL warning): choose lambda_D n_D / (lambda_U n_U) in [1, 4/3]; see ``recommended_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from refeed.objectives.base import BatchKind, LossOutput, Needs, TokenLogps, UnpairedLogps


@dataclass(frozen=True)
class KTOConfig:
    beta: float = 0.1  # as DPO
    desirable_weight: float = 1.0  # lambda_D
    undesirable_weight: float = 1.0  # lambda_U
    use_kl: bool = True  # False: z0 = 0 (no mismatched-pair forward)

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"objective.beta must be > 0, got {self.beta}")
        if self.desirable_weight < 0 or self.undesirable_weight < 0:
            raise ValueError("objective.desirable_weight and objective.undesirable_weight must be >= 0")


def recommended_weights(n_desirable: int, n_undesirable: int) -> tuple[float, float]:
    """The (lambda_D lower, lambda_D upper) range for lambda_U = 1 from the KTO paper's imbalance rule."""
    ratio = n_undesirable / max(n_desirable, 1)
    return ratio, ratio * 4 / 3


class KTO:
    name = "kto"
    Config = KTOConfig
    batch_kind = BatchKind.UNPAIRED
    needs = Needs(reference=True, kl_completions=True)  # kl_completions: ``use_kl`` per instance

    def __init__(self, cfg: KTOConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, kl_completions=cfg.use_kl)  # the mismatched (x_i, y_{i-1}) sequences

    def loss(
        self, policy: UnpairedLogps | TokenLogps, reference: UnpairedLogps | TokenLogps, batch: dict
    ) -> LossOutput:
        """Args:
            policy, reference: UnpairedLogps (completion and mismatched ``kl`` (B, T)); a bare
                TokenLogps when ``use_kl`` is False.
            batch: ``label`` (B,), 1 for thumbs-up, 0 for thumbs-down.

        Returns:
            The batch mean of the KTO value loss.
        """
        cfg = self.cfg
        if isinstance(policy, UnpairedLogps):
            kl = (policy.kl.sum() - reference.kl.sum()).detach().mean().clamp(min=0)  # ()
            policy, reference = policy.completion, reference.completion
        else:
            kl = torch.zeros((), dtype=policy.values.dtype, device=policy.values.device)
        h = policy.sum() - reference.sum()  # (B,)
        good = batch["label"].to(h.device) > 0.5  # (B,) bool
        desirable = cfg.desirable_weight * (1 - torch.sigmoid(cfg.beta * (h - kl)))  # (B,)
        undesirable = cfg.undesirable_weight * (1 - torch.sigmoid(cfg.beta * (kl - h)))  # (B,)
        losses = torch.where(good, desirable, undesirable)  # (B,)
        reward = cfg.beta * h.detach()
        metrics = {"kto/kl": kl, "rewards/margin": (reward[good].mean() - reward[~good].mean())}
        return LossOutput(loss=losses.mean(), metrics={k: v.nan_to_num(0.0) for k, v in metrics.items()})
