"""Weighted GRPO with positive-negative pairing ("Beyond Variance: Prompt-Efficient RLVR via Rare-Event
Amplification and Bidirectional Pairing", 2026, https://arxiv.org/abs/2602.03452; METHODS.md section 19).

Binary outcomes o = 1[r > success_threshold] (B, K); a group's success rate s = mean_K o sorts its prompt:
    hard-but-solvable q+   when hard[0] < s <= hard[1]   (rare successes),
    easy-but-brittle  q-   when easy[0] <= s < easy[1]   (rare failures).
Advantages are GRPO's group-normalised ones, A = (r - mean_K r) / (std_K r + 1e-4) (exact, and already a
rare-event amplifier: 1 success in 8 gets +2.4749, the 7 failures -0.3536). Weighted GRPO then reweights at
the pair level: the rare successes of q+ get w_plus, the rare failures of q- get w_minus,

    A'_i = A_i * (w_plus if q+ and o_i = 1;  w_minus if q- and o_i = 0;  1 otherwise)

and the GRPO token loss follows, with ratios rho_t against the sampling log-probs:
    loss_t = -min(rho_t A', clip(rho_t, 1 - eps_low, 1 + eps_high) A') + beta * KL3_t
reduced by ``loss_type`` as in grpo.py. ``pairing_only`` drops the groups that are neither q+ nor q-
from the loss and its normaliser, the in-batch form of the pairing.

UNCERTAIN (the paper's text beyond its abstract was not available): the reweighting rule, so the weights
default to (1, 1), where this IS GRPO (tested); the thresholds are refeed's choice (METHODS.md). The pairing
itself, one q+ and one q- prompt per update from per-prompt success rates re-estimated from rollouts, is
prompt selection: ``select_pair`` implements it, and the loop has no hook for it yet (prompts are drawn in
shuffled order), so an online run today gets the in-batch form only.
``weighted_token_loss`` is the GRPO token loss with a weight per answer, shared with pf_ppo.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import torch

from refeed.objectives.base import BatchKind, GroupLogps, LossOutput, Needs
from refeed.objectives.grpo import LossType, group_advantages
from refeed.objectives.stable import clip_metrics, clipped_loss, k3


@dataclass(frozen=True)
class WeightedGRPOConfig:
    w_plus: float = 1.0  # weight of a rare success on a hard-but-solvable prompt (q+)
    w_minus: float = 1.0  # weight of a rare failure on an easy-but-brittle prompt (q-)
    hard: tuple[float, float] = (0.0, 0.3)  # q+: hard[0] < success rate <= hard[1]
    easy: tuple[float, float] = (0.7, 1.0)  # q-: easy[0] <= success rate < easy[1]
    success_threshold: float = 0.5  # an answer succeeds when its reward is above this
    pairing_only: bool = False  # groups that are neither q+ nor q- leave the loss
    beta: float = 0.0  # k3 KL to the reference, as GRPO
    epsilon: float = 0.2
    epsilon_high: float = 0.0  # 0 -> epsilon
    scale_rewards: bool = True  # False: Dr.GRPO's advantages (no std)
    loss_type: LossType = LossType.GRPO
    max_completion_length: int = 0  # dr_grpo's normaliser; 0: the batch's padded length

    def __post_init__(self) -> None:
        if self.w_plus < 0 or self.w_minus < 0 or self.beta < 0 or not 0 < self.epsilon < 1 or self.epsilon_high < 0:
            raise ValueError("objective: need w_plus, w_minus, beta, epsilon_high >= 0 and 0 < epsilon < 1")
        if not (0 <= self.hard[0] < self.hard[1] <= 1 and 0 <= self.easy[0] < self.easy[1] <= 1):
            raise ValueError(f"objective: hard {self.hard} and easy {self.easy} must be (low, high) in [0, 1]")


def weighted_token_loss(policy: GroupLogps, old: GroupLogps, reference: GroupLogps | None, adv: torch.Tensor,
                        weight: torch.Tensor, cfg) -> tuple[torch.Tensor, dict]:
    """GRPO's clipped token loss with advantages ``adv`` (B, K) and a weight per answer ``weight`` (B, K) >= 0:
    a weighted mean over answers (0 = out of the loss and its normaliser); ``cfg`` supplies epsilon,
    epsilon_high, beta, loss_type and max_completion_length."""
    weight = weight.to(policy.values.dtype) * policy.valid
    mask = policy.mask & (weight > 0)[..., None]  # (B, K, T)
    high = cfg.epsilon_high or cfg.epsilon
    log_ratio = (policy.values - old.values) * mask  # (B, K, T)
    per_token, ratio = clipped_loss(log_ratio, adv[..., None], cfg.epsilon, high)  # (B, K, T)
    metrics = clip_metrics(ratio, adv[..., None], mask, cfg.epsilon, high)
    if reference is not None and cfg.beta > 0:
        kl = k3(policy.values, reference.values) * mask
        per_token = per_token + cfg.beta * kl
        metrics["kl"] = (kl.sum() / mask.sum().clamp(min=1)).detach()
    per_token = per_token * mask * weight[..., None]
    if cfg.loss_type == LossType.GRPO:  # == not is: a plain str config works too
        loss = (per_token.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / weight.sum().clamp(min=1e-12)
    elif cfg.loss_type == LossType.DAPO:
        loss = per_token.sum() / (mask * weight[..., None]).sum().clamp(min=1e-12)
    else:
        length = cfg.max_completion_length or mask.shape[-1]
        loss = per_token.sum() / (weight.sum().clamp(min=1e-12) * length)
    return loss, metrics


def success_rates(rewards: torch.Tensor, valid: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(binary outcomes (B, K) bool, success rate per group (B,)) over the valid answers."""
    success = (rewards > threshold) & valid
    return success, success.sum(1) / valid.sum(1).clamp(min=1)


def select_pair(rates: dict, hard=(0.0, 0.3), easy=(0.7, 1.0), rng: random.Random | None = None):
    """One (q+, q-) pair of prompt ids from per-prompt success rates, or None when a side is empty."""
    rng = rng or random.Random(0)
    plus = sorted(q for q, s in rates.items() if hard[0] < s <= hard[1])
    minus = sorted(q for q, s in rates.items() if easy[0] <= s < easy[1])
    return (rng.choice(plus), rng.choice(minus)) if plus and minus else None


class WeightedGRPO:
    name = "weighted_grpo"
    Config = WeightedGRPOConfig
    batch_kind = BatchKind.GROUP
    needs = Needs(old_logps=True, rewards=True)

    def __init__(self, cfg: WeightedGRPOConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, reference=cfg.beta > 0)

    def loss(self, policy: GroupLogps, reference: GroupLogps | None, batch: dict) -> LossOutput:
        """Args:
            policy: (B, K, T) log-probs of the K answers under the current policy.
            reference: the same under the reference model (only when beta > 0).
            batch: ``old_logps`` (GroupLogps, the sampling log-probs) and ``rewards`` (B, K).
        """
        cfg, valid = self.cfg, policy.valid
        rewards = batch["rewards"].to(policy.values.dtype)  # (B, K)
        success, rate = success_rates(rewards, valid, cfg.success_threshold)  # (B, K), (B,)
        plus = (rate > cfg.hard[0]) & (rate <= cfg.hard[1])  # (B,) hard-but-solvable
        minus = (rate >= cfg.easy[0]) & (rate < cfg.easy[1])  # (B,) easy-but-brittle
        w = torch.ones_like(rewards)
        w = torch.where(plus[:, None] & success, cfg.w_plus, w)
        w = torch.where(minus[:, None] & ~success & valid, cfg.w_minus, w)
        adv = group_advantages(rewards, cfg.scale_rewards) * w  # (B, K)
        keep = valid & (plus | minus)[:, None] if cfg.pairing_only else valid
        loss, metrics = weighted_token_loss(policy, batch["old_logps"], reference, adv, keep, cfg)
        metrics |= {"wgrpo/frac_hard": plus.float().mean(), "wgrpo/frac_brittle": minus.float().mean(),
                    "frac_reward_zero_std": (rewards.std(dim=1) < 1e-6).float().mean(),
                    "advantage/abs_mean": (adv.abs() * valid).sum() / valid.sum().clamp(min=1)}
        return LossOutput(loss=loss, metrics=metrics)
