"""FLR: Follow-up Likelihood as Reward (Zhang et al. 2024, "Aligning Language Models Using Follow-up
Likelihood as Reward Signal", https://arxiv.org/abs/2409.13948); code e0397123/FLR (METHODS.md section 16).

FLR is a reward definition plus preference mining; the trainable part is DPO on the mined pairs:

1. score (``flr_score``): append each follow-up f as the user's next turn after (x, y) and read its
   token-mean log-prob under an LM; FLR(x, y) = mean_{f in F+} s(f) - mean_{f in F-} s(f);
2. mine (``mine_pairs``): sample several answers per prompt, chosen = highest FLR, rejected = lowest;
3. train: this objective, DPO (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290, Eq. 7) on them.

UNCERTAIN (METHODS.md): the released ``run_llama3.py`` stores raw logits of the follow-up ids at one
position and does not show how positives and negatives are combined; refeed implements the principled
form above (token-mean log-probs, mean over each list, positive minus negative) as its interpretation.
The scoring forward pass belongs to the caller (the reward layer): these functions take its log-probs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from refeed.objectives.base import BatchKind, LossOutput, Needs, PairLogps, TokenLogps
from refeed.objectives.dpo import DPO, DPOConfig


def flr_score(positive: TokenLogps, negative: TokenLogps) -> torch.Tensor:
    """FLR of one answer from its follow-ups' log-probs.

    Args:
        positive: (P, T) log-probs of each positive follow-up's tokens (mask: the follow-up only).
        negative: (N, T) the same for the negative follow-ups.

    Returns:
        () mean token-mean log-prob of the positives minus that of the negatives.
    """
    return positive.mean().mean() - negative.mean().mean()


def mine_pairs(prompt: Any, answers: list[str], scores: list[float], min_gap: float = 0.0) -> dict | None:
    """The DPO row of one prompt: its highest-FLR answer against its lowest.

    Args:
        prompt: the prompt (text or chat messages).
        answers: sampled answers.
        scores: their FLR scores.
        min_gap: skip prompts whose best and worst scores differ by no more than this.

    Returns:
        ``{prompt, chosen, rejected, margin}``, or None when there is no pair.
    """
    if len(answers) < 2:
        return None
    best = max(range(len(answers)), key=lambda i: scores[i])
    worst = min(range(len(answers)), key=lambda i: scores[i])
    gap = scores[best] - scores[worst]
    if gap <= min_gap:
        return None
    return {"prompt": prompt, "chosen": answers[best], "rejected": answers[worst], "margin": float(gap)}


@dataclass(frozen=True)
class FLRConfig:
    beta: float = 0.1  # as DPO
    label_smoothing: float = 0.0  # as DPO: mined pairs are noisy, cDPO is a reasonable guard

    def __post_init__(self) -> None:
        DPOConfig(self.beta, self.label_smoothing)  # the same range checks as DPO


class FLR:
    name = "flr"
    Config = FLRConfig
    batch_kind = BatchKind.PAIR
    needs = Needs(reference=True)

    def __init__(self, cfg: FLRConfig) -> None:
        self.cfg = cfg
        self._dpo = DPO(DPOConfig(beta=cfg.beta, label_smoothing=cfg.label_smoothing))

    def loss(self, policy: PairLogps, reference: PairLogps, batch: dict | None = None) -> LossOutput:
        """Args:
            policy, reference: chosen / rejected (FLR-mined) completion log-probs (B, T) each.

        Returns:
            The DPO loss of the batch.
        """
        return self._dpo.loss(policy, reference, batch)
