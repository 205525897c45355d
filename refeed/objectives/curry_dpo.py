"""Curry-DPO: curriculum DPO over several ranked pairs per prompt (Pattnaik et al. 2024,
https://arxiv.org/abs/2403.07230), Section 3; the per-pair loss is DPO (Rafailov et al. Eq. 7).

What Curry-DPO adds to DPO is WHICH pairs and IN WHAT ORDER, not a new loss:
- pairs: per prompt, the top-rated response against each lower-rated one (``curry_pairs``);
- difficulty = rating gap (large = easy); stage k holds the k-th easiest pair of every prompt;
- training visits stage 0, 1, ... in order (the loop's ``staged`` capability);
- iterative variant (``iterative=True``, default): the policy at the end of stage k becomes the
  reference for stage k+1 (``refresh_reference``), per the paper's Fig. 1.

UNCERTAIN (METHODS.md section 5, paper summaries only, no code): the paper names other ordering
criteria that were not read; refeed orders by the rating gap and uses DPO's beta 0.1. Rows of one
stage are shuffled among themselves only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from refeed.objectives.base import BatchKind, LossOutput, Needs, PairLogps
from refeed.objectives.dpo import DPO, DPOConfig


@dataclass(frozen=True)
class CurryDPOConfig:
    beta: float = 0.1  # as DPO
    label_smoothing: float = 0.0  # as DPO (cDPO)
    iterative: bool = True  # the policy after stage k is the reference of stage k+1

    def __post_init__(self) -> None:
        DPOConfig(self.beta, self.label_smoothing)  # the same range checks as DPO


def curry_pairs(prompt: Any, responses: list[str], scores: list[float]) -> list[dict[str, Any]]:
    """Pair rows for one prompt, easiest first: the best response against each worse one.

    Args:
        prompt: the prompt (text or chat messages), copied into every row.
        responses: the k rated responses.
        scores: their ratings (higher is better); ties with the best give no pair.

    Returns:
        Rows ``{prompt, chosen, rejected, margin, stage}``; ``stage`` 0 is the largest rating gap.
    """
    order = sorted(range(len(responses)), key=lambda i: -scores[i])
    best = order[0]
    worse = [j for j in order[1:] if scores[j] < scores[best]]
    worse.sort(key=lambda j: scores[j])  # largest gap (easiest) first
    return [
        {
            "prompt": prompt,
            "chosen": responses[best],
            "rejected": responses[j],
            "margin": float(scores[best] - scores[j]),
            "stage": stage,
        }
        for stage, j in enumerate(worse)
    ]


class CurryDPO:
    name = "curry_dpo"
    Config = CurryDPOConfig
    batch_kind = BatchKind.PAIR
    # the loop trains rows by their ``stage`` column, in order
    needs = Needs(reference=True, staged=True, extra_columns=("stage",))

    def __init__(self, cfg: CurryDPOConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, refresh_reference=cfg.iterative)  # re-take the reference per stage
        self._dpo = DPO(DPOConfig(beta=cfg.beta, label_smoothing=cfg.label_smoothing))

    def loss(self, policy: PairLogps, reference: PairLogps, batch: dict | None = None) -> LossOutput:
        """Args:
            policy, reference: chosen / rejected completion log-probs (B, T) each; ``reference`` is
                the previous stage's final policy when ``iterative``.

        Returns:
            The DPO loss of the batch (all rows come from one stage).
        """
        return self._dpo.loss(policy, reference, batch)
