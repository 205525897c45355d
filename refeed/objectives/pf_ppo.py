"""PF-PPO: Policy Filtration for PPO (Shen & Zhang 2024, "Policy Filtration in RLHF to Fine-Tune LLM for Code
Generation", https://arxiv.org/abs/2409.06957; code swtheing/PF-PPO-RLHF ``replay_buffer.py``, and verl's
``compute_pf_ppo_reweight_data``; METHODS.md section 20).

A learned reward model is most reliable at the extremes of a prompt's samples, so the policy update keeps
(or reweights) samples by their reward rank within the prompt. Per group of K rewards r (B, K), a weight
per answer w (B, K) by ``mode``:
    bw   (best-worst):  1 for the best and the worst answer, 0 otherwise (the code's ``select_min_max``);
    br   (best-random): 1 for the best, 1/(n-1) for each other one: the expectation of keeping the best
                        plus one other drawn uniformly (the paper's BR; the code's ``select_max_random``
                        draws with 0.4 / 0.1 instead);
    bon  (best-of-N):   1 for the best only;
    pow:                |r|^weight_pow (the code's ``put_weight``, k = 2);
    none:               1 for every answer (plain GRPO-style PPO, the ablation).
The code resamples its replay buffer with these weights (``random.choices``, with replacement); refeed
uses them as loss weights, which is that resampling's expectation. Advantages are computed on the whole
group before filtering, as the code's buffer holds advantages before it is resampled: PPO's critic is
replaced by the group baseline, A = (r - mean_K r) / (std_K r + 1e-4). Then GRPO's token loss with
ratios against the sampling log-probs, as a weighted mean over answers:

    L = sum_i w_i l_i / sum_i w_i,   l_i = mean_t [-min(rho_t A_i, clip(rho_t, 1-eps, 1+eps_high) A_i) + beta KL3_t]

Ties: the best is the first answer with the top reward, the worst the last with the lowest, so a group
whose rewards are all equal keeps two answers (both with A = 0). The paper picks the strategy by the R^2
between the rewards and the true scores on the kept samples (``filtered_r2``, for a run that has both).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import torch

from refeed.objectives.base import BatchKind, GroupLogps, LossOutput, Needs
from refeed.objectives.grpo import LossType, group_advantages
from refeed.objectives.weighted_grpo import weighted_token_loss


class FilterMode(StrEnum):
    BW = "bw"
    BR = "br"
    BON = "bon"
    POW = "pow"
    NONE = "none"


@dataclass(frozen=True)
class PFPPOConfig:
    mode: FilterMode = FilterMode.BW  # which samples the update keeps (module docstring)
    weight_pow: float = 2.0  # k of mode "pow"
    beta: float = 0.0  # k3 KL to the reference, as GRPO
    epsilon: float = 0.2
    epsilon_high: float = 0.0  # 0 -> epsilon
    scale_rewards: bool = True  # divide the advantages by the group's std
    loss_type: LossType = LossType.GRPO
    max_completion_length: int = 0  # dr_grpo's normaliser; 0: the batch's padded length

    def __post_init__(self) -> None:
        if self.beta < 0 or not 0 < self.epsilon < 1 or self.epsilon_high < 0 or self.weight_pow <= 0:
            raise ValueError("objective: need beta >= 0, 0 < epsilon < 1, epsilon_high >= 0, weight_pow > 0")


def _first(hit: torch.Tensor, last: bool = False) -> torch.Tensor:
    """(B, K) bool -> (B, K) bool with only the first (or the last) True of each row kept."""
    pos = torch.arange(hit.shape[1], device=hit.device)
    idx = (hit * ((pos + 1) if last else (hit.shape[1] - pos))).argmax(1)  # (B,)
    return torch.zeros_like(hit).scatter_(1, idx[:, None], True) & hit


def filter_weights(rewards: torch.Tensor, valid: torch.Tensor, mode: FilterMode, k: float = 2.0) -> torch.Tensor:
    """(B, K) rewards -> (B, K) per-answer weights of ``mode`` over each group's valid answers."""
    dt = rewards.dtype
    if mode == FilterMode.NONE:
        return valid.to(dt)
    if mode == FilterMode.POW:
        return rewards.abs().pow(k) * valid
    top = rewards.masked_fill(~valid, float("-inf")).amax(1, keepdim=True)  # (B, 1)
    low = rewards.masked_fill(~valid, float("inf")).amin(1, keepdim=True)
    best = _first((rewards == top) & valid)  # (B, K), one True per group with a valid answer
    if mode == FilterMode.BON:
        return best.to(dt)
    if mode == FilterMode.BW:
        return (best | _first((rewards == low) & valid & ~best, last=True)).to(dt)
    n = valid.sum(1, keepdim=True)  # BR
    return torch.where(best, 1.0, valid.to(dt) / (n - 1).clamp(min=1)).to(dt)


def filtered_r2(rewards: torch.Tensor, scores: torch.Tensor, weights: torch.Tensor) -> float:
    """R^2 of the least-squares line between rewards and true scores over the kept samples (weight > 0):
    the squared Pearson correlation, the paper's criterion for choosing a filtering mode."""
    keep = weights.flatten() > 0
    x, y = rewards.flatten()[keep].double(), scores.flatten()[keep].double()
    x, y = x - x.mean(), y - y.mean()
    den = (x.square().sum() * y.square().sum()).sqrt()
    return float((x * y).sum() / den) ** 2 if den > 0 else 0.0


class PFPPO:
    name = "pf_ppo"
    Config = PFPPOConfig
    batch_kind = BatchKind.GROUP
    needs = Needs(old_logps=True, rewards=True)

    def __init__(self, cfg: PFPPOConfig) -> None:
        self.cfg = cfg
        self.needs = replace(self.needs, reference=cfg.beta > 0)

    def loss(self, policy: GroupLogps, reference: GroupLogps | None, batch: dict) -> LossOutput:
        """Args:
            policy: (B, K, T) log-probs of the K answers under the current policy.
            reference: the same under the reference model (only when beta > 0).
            batch: ``old_logps`` (GroupLogps, the sampling log-probs) and ``rewards`` (B, K), e.g. from a
                reward model (a verifier is exact at every rank, so filtering it gains nothing).
        """
        cfg, valid = self.cfg, policy.valid
        rewards = batch["rewards"].to(policy.values.dtype)  # (B, K)
        weight = filter_weights(rewards, valid, cfg.mode, cfg.weight_pow)  # (B, K)
        adv = group_advantages(rewards, cfg.scale_rewards)  # (B, K), on the whole group
        loss, metrics = weighted_token_loss(policy, batch["old_logps"], reference, adv, weight, cfg)
        metrics |= {"pf/kept_frac": ((weight > 0) & valid).sum() / valid.sum().clamp(min=1),
                    "frac_reward_zero_std": (rewards.std(dim=1) < 1e-6).float().mean()}
        return LossOutput(loss=loss, metrics=metrics)
