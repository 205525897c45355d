"""C3PO: Contextualized Critiques with Constrained Preference Optimization (Stephan et al. 2024, "RLVF:
Learning from Verbal Feedback without Overgeneralization", https://arxiv.org/abs/2402.10893), Section 3;
the loss of the official ``LocallyConstrainedDPOTrainer`` (austrian-code-wizard/c3po ``src/lcdpo.py``):

    L = L_DPO(in-scope pairs; beta) + sigma_hard * L_KD(near-scope) + sigma_soft * L_KD(general)
    L_KD = (1 - lambda) CE(y_base | x) + lambda T^2 KL(ref_T || pi_T)

In-scope rows (``scope`` 0) are (prompt, revised answer = chosen, base answer = rejected); near-scope
(``scope`` 1) and general (``scope`` 2) rows carry the base model's own answer as ``chosen`` (the loss
ignores their ``rejected``, which the builder sets to the same text). Each term is the mean over the
rows of its scope in the batch (0 when there are none), so a batch laid out as the paper zips its
three datasets (one of each per row) gives exactly the paper's loss.

Deviation: the KD term is the released config's ``lambda = 0``: mean-token cross-entropy on the base
answers. The lambda > 0 term needs full-vocabulary teacher logits, which objectives do not receive;
and since the base answers are samples of the reference, that cross-entropy is already a Monte-Carlo
estimate of KL(ref || pi) up to a constant, reported as ``c3po/kl_out_of_scope`` (per token).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refeed.objectives.base import BatchKind, LossOutput, Needs, PairLogps

IN_SCOPE, NEAR_SCOPE, GENERAL = 0, 1, 2


@dataclass(frozen=True)
class C3POConfig:
    beta: float = 0.1  # DPO beta on in-scope pairs (released config dpo_beta)
    sigma_hard: float = 0.1  # weight of the near-scope constraint (lcdpo_sigma_hard)
    sigma_soft: float = 0.2  # weight of the general-prompt constraint (lcdpo_sigma_soft)

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"objective.beta must be > 0, got {self.beta}")
        if self.sigma_hard < 0 or self.sigma_soft < 0:
            raise ValueError("objective.sigma_hard and objective.sigma_soft must be >= 0")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B,) over ``mask`` (B,) bool; 0 (with a gradient path) when the mask is empty."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


class C3PO:
    name = "c3po"
    Config = C3POConfig
    batch_kind = BatchKind.PAIR
    needs = Needs(reference=True, extra_columns=("scope",))  # scope: 0 in-scope, 1 near-scope, 2 general

    def __init__(self, cfg: C3POConfig) -> None:
        self.cfg = cfg

    def loss(self, policy: PairLogps, reference: PairLogps, batch: dict) -> LossOutput:
        """Args:
            policy, reference: chosen / rejected completion log-probs (B, T) each.
            batch: ``scope`` (B,): 0 in-scope, 1 near-scope, 2 general.

        Returns:
            DPO on in-scope rows plus the weighted cross-entropy on the others' base answers.
        """
        scope = batch["scope"].to(policy.chosen.values.device).round().long()  # (B,)
        inside, near, general = scope == IN_SCOPE, scope == NEAR_SCOPE, scope == GENERAL  # (B,) bool
        z = (policy.chosen.sum() - reference.chosen.sum()) - (
            policy.rejected.sum() - reference.rejected.sum()
        )
        dpo = _masked_mean(-F.logsigmoid(self.cfg.beta * z), inside)  # ()
        nll = -policy.chosen.mean()  # (B,) mean-token CE of the (base) chosen answer
        near_ce, general_ce = _masked_mean(nll, near), _masked_mean(nll, general)
        loss = dpo + self.cfg.sigma_hard * near_ce + self.cfg.sigma_soft * general_ce
        kl = (reference.chosen.mean() - policy.chosen.mean()).detach()  # (B,) per-token KL(ref||pi) estimate
        return LossOutput(
            loss=loss,
            metrics={
                "c3po/dpo": dpo.detach(),
                "c3po/ce_near": near_ce.detach(),
                "c3po/ce_general": general_ce.detach(),
                "c3po/kl_out_of_scope": _masked_mean(kl, near | general),
                "rewards/accuracy": _masked_mean((z.detach() > 0).float(), inside),
            },
        )
