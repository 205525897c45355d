"""RLOO: REINFORCE Leave-One-Out (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style
Optimization for Learning from Human Feedback in LLMs", https://arxiv.org/abs/2402.14740; the baseline
of Kool et al. 2019, https://openreview.net/forum?id=r1lgTGL5DE), as TRL's ``RLOOTrainer`` computes it.

For each prompt, K sampled answers with rewards r (B, K). Each answer's baseline is the mean reward of the
OTHER answers of its prompt:

    A_i = r_i - 1/(K-1) sum_{j != i} r_j  =  K/(K-1) (r_i - mean_K r)

The whole answer is one action (REINFORCE): with the SEQUENCE ratio rho_i = exp(sum_t logp_t - old_t)
against the log-probs the answer was sampled with (TRL's RLOO; ``importance="token"`` takes one ratio per
token instead, as GRPO),

    loss_i = -min(rho_i A_i, clip(rho_i, 1 - eps_low, 1 + eps_high) A_i) + beta * sum_t KL3_t
    KL3_t  = exp(ref_t - logp_t) - (ref_t - logp_t) - 1                  (k3; beta = 0 by default)
    L      = mean over the valid answers of loss_i

With mu = 1 (one update per generation) rho = 1 in value and the gradient is REINFORCE's, A_i grad log pi(y_i);
the clip only acts when mu > 1 reuses a generation. Ragged groups: the baseline is over the valid answers;
a group with one valid answer gets A = 0. ``normalize_advantages`` whitens A over the batch (TRL's option).

Deviations: TRL puts the KL into the reward (r - beta * sum_t (old_t - ref_t)); refeed adds the k3 term to
the loss, as GRPO does, so the reference enters only when beta > 0. ``exp`` is continued by its tangent
line above 20 (``exp_capped``): identical below, and a ratio or KL at a log-ratio of 1e3 stays finite with
a gradient of the same sign (the textbook form is inf there, and its backward NaN). The same three helpers
(``exp_capped``, ``clipped_loss``, ``k3``) serve weighted_grpo.py and pf_ppo.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import torch

from refeed.objectives.base import BatchKind, GroupLogps, LossOutput, Needs
from refeed.objectives.stable import clip_metrics, clipped_loss, exp_capped, k3  # noqa: F401 (re-exported)


class Importance(StrEnum):
    SEQUENCE = "sequence"  # one ratio per answer (TRL's RLOO: the answer is one action)
    TOKEN = "token"  # one ratio per token, answer loss = mean over its tokens (as GRPO)


@dataclass(frozen=True)
class RLOOConfig:
    beta: float = 0.0  # weight of the k3 KL to the reference; 0: no reference model at all
    epsilon: float = 0.2  # lower clip: rho >= 1 - epsilon
    epsilon_high: float = 0.0  # upper clip: rho <= 1 + epsilon_high; 0 -> epsilon
    importance: Importance = Importance.SEQUENCE
    normalize_advantages: bool = False  # whiten the advantages over the batch (TRL's normalize_advantages)

    def __post_init__(self) -> None:
        if self.beta < 0 or not 0 < self.epsilon < 1 or self.epsilon_high < 0:
            raise ValueError("objective: need beta >= 0, 0 < epsilon < 1, epsilon_high >= 0")


def loo_advantages(rewards: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, K) rewards -> (B, K) leave-one-out advantages over each group's valid answers (0 elsewhere)."""
    v = valid.to(rewards.dtype)
    n = v.sum(1, keepdim=True)  # (B, 1)
    others = ((rewards * v).sum(1, keepdim=True) - rewards * v) / (n - 1).clamp(min=1)  # (B, K)
    return torch.where(valid & (n > 1), rewards - others, torch.zeros_like(rewards))


class RLOO:
    name = "rloo"
    Config = RLOOConfig
    batch_kind = BatchKind.GROUP
    needs = Needs(old_logps=True, rewards=True)

    def __init__(self, cfg: RLOOConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, reference=cfg.beta > 0)

    def loss(self, policy: GroupLogps, reference: GroupLogps | None, batch: dict) -> LossOutput:
        """Args:
            policy: (B, K, T) log-probs of the K answers under the current policy.
            reference: the same under the reference model (only when beta > 0).
            batch: ``old_logps`` (GroupLogps, the sampling log-probs) and ``rewards`` (B, K).
        """
        cfg, old, valid, mask = self.cfg, batch["old_logps"], policy.valid, policy.mask
        rewards = batch["rewards"].to(policy.values.dtype)  # (B, K)
        adv = loo_advantages(rewards, valid)  # (B, K)
        if cfg.normalize_advantages:
            a = adv[valid]
            adv = torch.where(valid, (adv - a.mean()) / (a.std() + 1e-4), adv) if a.numel() > 1 else adv
        high = cfg.epsilon_high or cfg.epsilon
        log_ratio = (policy.values - old.values) * mask  # (B, K, T)
        if cfg.importance == Importance.SEQUENCE:
            per_answer, ratio = clipped_loss(log_ratio.sum(-1), adv, cfg.epsilon, high)  # (B, K)
            metrics = clip_metrics(ratio, adv, valid, cfg.epsilon, high)
        else:
            per_token, ratio = clipped_loss(log_ratio, adv[..., None], cfg.epsilon, high)  # (B, K, T)
            per_answer = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
            metrics = clip_metrics(ratio, adv[..., None], mask, cfg.epsilon, high)
        if reference is not None and cfg.beta > 0:
            kl = k3(policy.values, reference.values) * mask  # (B, K, T)
            seq_kl = kl.sum(-1)  # (B, K)
            per_answer = per_answer + cfg.beta * (seq_kl if cfg.importance == Importance.SEQUENCE
                                                  else seq_kl / mask.sum(-1).clamp(min=1))
            metrics["kl"] = (kl.sum() / mask.sum().clamp(min=1)).detach()
        n = valid.sum().clamp(min=1)
        loss = (per_answer * valid).sum() / n
        metrics |= {"frac_reward_zero_std": (rewards.std(dim=1) < 1e-6).float().mean().detach(),
                    "advantage/abs_mean": ((adv.abs() * valid).sum() / n).detach()}
        return LossOutput(loss=loss, metrics=metrics)
