"""Fine-grained span/segment reward model (Wu et al. 2023, "Fine-Grained Human Feedback Gives Better
Rewards for Language Model Training", https://arxiv.org/abs/2306.01693; the reward as the code
allenai/FineGrainedRLHF computes it in ``tasks/qa_feedback/training/reward.py``, METHODS.md section 13).

One head per error category (e.g. 0 = relevance at sub-sentence ends, 1 = factuality at sentence
ends). Each is a token classifier read at the last token of every labelled segment:

    L = mean_b mean_{(t, h) labelled in row b} BCE( f_h(x, y_<=t), label_{t,h} )       (1 = no error)

Dense reward (``reward``, METHODS.md closed form): at each segment end t, for each head h judging it,
r_t += w_h if sigma(f_h) > 0.5 else -w_h. A sequence-level preference RM (``bradley_terry``) gives
the completeness term, added at the last token with ``normalize_preference_score``; KL shaping and
PPO are the online loop's. Deviation: the paper trains each RM separately (T5/Longformer token
classifiers); refeed trains all category heads of one model jointly, one BCE per labelled segment.

Batch (SPANS rows): the loop maps each segment's character ``end`` in the completion to the index of
the token holding character end-1 and fills ``segment_labels`` and ``segment_mask`` (B, T, H), with
the same (B, T) alignment as the TokenScores it passes (the positions of completion tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from refeed.objectives.base import BatchKind, Head, LossOutput, Needs, TokenScores


@dataclass(frozen=True)
class FineGrainedConfig:
    weights: tuple[float, ...] = (
        0.3,
        0.5,
    )  # reward per head at a segment end (rel 0.3, fact 0.5 in the code)

    # Per head, the span categories ("a|b", case-insensitive) that make a sentence wrong; used to turn
    # ``refeed build spans`` rows into segments. Empty: rows must carry ``segments`` themselves.
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.weights or any(w < 0 for w in self.weights):
            raise ValueError(
                f"objective.weights must be a non-empty list of numbers >= 0, got {self.weights}"
            )
        if self.categories and len(self.categories) != len(self.weights):
            raise ValueError(f"objective.categories needs one entry per head ({len(self.weights)} weights), "
                             f"got {len(self.categories)}")


def normalize_preference_score(
    raw: torch.Tensor, mean: float = -0.4468, std: float = 8.3012, scale: float = 0.3, bias: float = 0.0
) -> torch.Tensor:
    """The completeness term added at the last token: ((raw - mean) / std) * scale + bias (code defaults)."""
    return (raw - mean) / std * scale + bias


def dense_rewards(
    ok: torch.Tensor,
    ends: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor,
    final: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token rewards from per-head segment judgements.

    Args:
        ok: (B, T, H) bool, the head's verdict (True = no error) at each position.
        ends: (B, T, H) bool, True where head h judges a segment ending at token t.
        weights: (H,) reward magnitude per head.
        mask: (B, T) bool, completion tokens.
        final: optional (B,) sequence-level term added at each row's last completion token.

    Returns:
        (B, T) rewards, 0 off segment ends.
    """
    signed = torch.where(ok, weights, -weights) * ends  # (B, T, H)
    r = signed.sum(-1) * mask  # (B, T)
    if final is not None:
        t = torch.arange(mask.shape[1], device=mask.device)
        last = (mask * (t + 1)).argmax(-1)  # (B,)
        r = r.index_put((torch.arange(r.shape[0], device=r.device), last), final.to(r), accumulate=True)
    return r


class FineGrained:
    name = "fine_grained"
    Config = FineGrainedConfig
    batch_kind = BatchKind.SPANS
    needs = Needs(head=Head.SCORE, dense_reward=True)

    def __init__(self, cfg: FineGrainedConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, num_heads=len(cfg.weights))

    def reward(self, scores: TokenScores, batch: dict) -> torch.Tensor:
        """(B, T) dense rewards at the segment ends given by ``batch["segment_mask"]`` (B, T, H)."""
        w = torch.tensor(self.cfg.weights, dtype=scores.values.dtype, device=scores.values.device)
        return dense_rewards(scores.values > 0, batch["segment_mask"].bool(), w, scores.mask)

    def loss(self, policy: TokenScores, reference: None = None, batch: dict | None = None) -> LossOutput:
        """Args:
            policy: head outputs (B, T, H).
            batch: ``segment_labels`` (B, T, H) 1 = no error; ``segment_mask`` (B, T, H) bool.

        Returns:
            The batch mean of each row's mean BCE over its labelled (segment end, head) entries.
        """
        labelled = batch["segment_mask"].bool() & policy.mask[..., None]  # (B, T, H)
        labels = batch["segment_labels"].to(policy.values)  # (B, T, H)
        bce = (
            F.binary_cross_entropy_with_logits(policy.values, labels, reduction="none") * labelled
        )  # (B, T, H)
        per_row = bce.sum((1, 2)) / labelled.sum((1, 2)).clamp(min=1)  # (B,)
        correct = ((policy.values > 0).to(labels) == labels) & labelled
        return LossOutput(
            loss=per_row.mean(),
            metrics={"rm/segment_accuracy": correct.sum() / labelled.sum().clamp(min=1)},
        )
