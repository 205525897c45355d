"""GRPO (Shao et al. 2024, DeepSeekMath, https://arxiv.org/abs/2402.03300), Eq. 3, with the knobs of its
variants: Dr.GRPO (Liu et al. 2025, https://arxiv.org/abs/2503.20783), DAPO (Yu et al. 2025,
https://arxiv.org/abs/2503.14476) and GSPO (Zheng et al. 2025, https://arxiv.org/abs/2507.18071).

For each prompt, K sampled answers with rewards r (B, K). Advantages are group-normalised here, in the
objective, never in the loop:  A = (r - mean_K r) / (std_K r + 1e-4)  (``scale_rewards=False``: no std,
Dr.GRPO). With the ratio rho_t = pi(y_t) / pi_old(y_t) against the log-probs the answer was SAMPLED with,

    loss_t = -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A) + beta * KL3_t,
    KL3_t  = exp(ref_t - logp_t) - (ref_t - logp_t) - 1          (k3 estimator; beta = 0 by default, as TRL)

and the token losses are reduced by ``loss_type``: ``grpo`` (mean over each answer's tokens, then over
answers, Eq. 3), ``dapo`` (token level: sum over all tokens / their number), ``dr_grpo`` (sum over all
tokens / (answers * max_completion_length), a constant). ``importance="sequence"`` (GSPO) uses one ratio
per answer, exp(mean_t(logp_t - old_t)). DAPO's clip-higher is ``epsilon_high``; its dynamic sampling is
``mask_zero_std`` (groups whose rewards are all equal leave the loss and its normaliser) and its overlong
filtering ``mask_truncated`` (answers cut at max_new_tokens, ``batch["truncated"]``, leave it too).
Deviation: std is the unbiased one (torch's default), as TRL computes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import torch

from refeed.objectives.base import BatchKind, GroupLogps, LossOutput, Needs
from refeed.objectives.stable import clipped_loss, k3


class LossType(StrEnum):
    GRPO = "grpo"
    DAPO = "dapo"
    DR_GRPO = "dr_grpo"


class Importance(StrEnum):
    TOKEN = "token"
    SEQUENCE = "sequence"  # GSPO


@dataclass(frozen=True)
class GRPOConfig:
    beta: float = 0.0  # weight of the k3 KL to the reference; 0: no reference model at all
    epsilon: float = 0.2  # lower clip: rho >= 1 - epsilon
    epsilon_high: float = 0.0  # upper clip: rho <= 1 + epsilon_high; 0 -> epsilon (DAPO: 0.28)
    scale_rewards: bool = True  # divide by the group's std; False: Dr.GRPO
    loss_type: LossType = LossType.GRPO
    importance: Importance = Importance.TOKEN
    max_completion_length: int = 0  # dr_grpo's constant normaliser; 0: the batch's padded length
    mask_zero_std: bool = False  # DAPO dynamic sampling: all-equal groups carry no signal, drop them
    mask_truncated: bool = False  # DAPO overlong filtering: answers cut at max_new_tokens leave the loss

    def __post_init__(self) -> None:
        if self.beta < 0 or not 0 < self.epsilon < 1 or self.epsilon_high < 0 or self.max_completion_length < 0:
            raise ValueError("objective: need beta >= 0, 0 < epsilon < 1, epsilon_high >= 0, max_completion_length >= 0")


def group_advantages(rewards: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """(B, K) rewards -> (B, K) advantages: minus the group mean, over the group std when ``scale``."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True) + 1e-4) if scale else centred


class GRPO:
    name = "grpo"
    Config = GRPOConfig
    batch_kind = BatchKind.GROUP
    needs = Needs(old_logps=True, rewards=True)

    def __init__(self, cfg: GRPOConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, reference=cfg.beta > 0)  # the KL term needs reference log-probs

    def loss(self, policy: GroupLogps, reference: GroupLogps | None, batch: dict) -> LossOutput:
        """Args:
            policy: (B, K, T) log-probs of the K answers under the current policy.
            reference: the same under the reference model (only when beta > 0).
            batch: ``old_logps`` (GroupLogps, the sampling log-probs), ``rewards`` (B, K), ``group_valid``
                (B, K), and ``truncated`` (B, K) bool for ``mask_truncated``.
        """
        cfg, old = self.cfg, batch["old_logps"]
        rewards = batch["rewards"].to(policy.values.dtype)  # (B, K)
        adv = group_advantages(rewards, cfg.scale_rewards)  # (B, K)
        keep = policy.valid.clone()  # (B, K)
        zero_std = rewards.std(dim=1) < 1e-6  # (B,)
        if cfg.mask_zero_std:
            keep &= ~zero_std[:, None]
        if cfg.mask_truncated:
            keep &= ~batch["truncated"].bool()
        mask = policy.mask & keep[..., None]  # (B, K, T)
        log_ratio = (policy.values - old.values) * mask  # (B, K, T)
        if cfg.importance == Importance.SEQUENCE:
            log_ratio = (log_ratio.sum(-1) / mask.sum(-1).clamp(min=1))[..., None].expand_as(log_ratio)
        high = cfg.epsilon_high or cfg.epsilon
        # exp continued linearly past log-ratio 20 (refeed.objectives.stable): finite at any input
        per_token, ratio = clipped_loss(log_ratio, adv[..., None], cfg.epsilon, high)  # (B, K, T)
        metrics = {}
        if reference is not None and cfg.beta > 0:
            kl = k3(policy.values * mask, reference.values * mask)  # (B, K, T), >= 0
            per_token = per_token + cfg.beta * kl
            metrics["kl"] = ((kl * mask).sum() / mask.sum().clamp(min=1)).detach()
        per_token = per_token * mask
        if cfg.loss_type == LossType.GRPO:
            per_answer = per_token.sum(-1) / mask.sum(-1).clamp(min=1)  # (B, K)
            loss = per_answer.sum() / keep.sum().clamp(min=1)
        elif cfg.loss_type == LossType.DAPO:
            loss = per_token.sum() / mask.sum().clamp(min=1)
        else:
            length = cfg.max_completion_length or mask.shape[-1]
            loss = per_token.sum() / (keep.sum().clamp(min=1) * length)
        n = mask.sum().clamp(min=1)
        low_clip = ((ratio < 1 - cfg.epsilon) & (adv[..., None] < 0) & mask).sum() / n
        high_clip = ((ratio > 1 + high) & (adv[..., None] > 0) & mask).sum() / n
        metrics |= {"clip/low": low_clip.detach(), "clip/high": high_clip.detach(),
                    "frac_reward_zero_std": zero_std.float().mean().detach(),
                    "advantage/abs_mean": (adv.abs() * policy.valid).sum().detach() / policy.valid.sum().clamp(min=1)}
        return LossOutput(loss=loss, metrics=metrics)
