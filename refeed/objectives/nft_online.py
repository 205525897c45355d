"""On-policy NFT: Negative-aware Fine-Tuning on the loop's own rollouts (Chen et al. 2025, "Bridging Supervised
Learning and Reinforcement Learning in Math Reasoning", https://arxiv.org/abs/2505.18116; NVlabs/NFT
``dp_actor.py`` and ``ray_nft_trainer.py``; METHODS.md section 29).

Each prompt's K sampled answers are judged correct when their reward is above ``correct_threshold``
(a verifier's 1 / 0). The question's correct rate r = (correct answers) / K, clamped to [0.02, 0.98], and
the token ratio R_t = pi(y_t|.) / pi_old(y_t|.) against the log-probs each token was SAMPLED with give
the loss of offline NFT (refeed/objectives/nft.py, reused here whole):

    correct answers:   l_t = -log R_t                                 (SFT on the positives)
    incorrect answers: l_t = -log( (1 - r R_t) / (1 - r) )            (ML of the implicit negative policy
                                                                       (pi_old - r pi) / (1 - r))
    L = mean over the kept answers of sum_t [correct l_t + neg_weight (1 - correct) l_t] (1 - r)

The implicit negative policy is parameterised by the same model being trained, so the negatives push pi
through it. At R = 1 (mu = 1, strictly on policy) the gradient w.r.t. log pi is -(1 - r) on a correct token
and +r on an incorrect one: GRPO with advantage 1[correct] - r (the paper's equivalence; tested).
Groups whose answers are all correct or all wrong carry no signal and are dropped (``mask_zero_std``, the
released recipe's dynamic-sampling filter; it resamples more prompts to refill the batch, which the loop
does not, so the batch is smaller instead). The log-space helpers of nft.py keep the loss finite at
|log R| up to 1e3 in float32, and log R is clamped above at ``max_log_ratio`` (10) as in the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from refeed.objectives.base import BatchKind, GroupLogps, LossOutput, Needs, TokenLogps
from refeed.objectives.nft import NFT, NFTConfig


@dataclass(frozen=True)
class NFTOnlineConfig(NFTConfig):
    correct_threshold: float = 0.5  # an answer is correct when its reward is above this
    mask_zero_std: bool = True  # drop all-correct and all-wrong groups, as the released recipe does


class NFTOnline:
    name = "nft_online"
    Config = NFTOnlineConfig
    batch_kind = BatchKind.GROUP
    needs = Needs(old_logps=True, rewards=True)

    def __init__(self, cfg: NFTOnlineConfig) -> None:
        self.cfg = cfg
        self.offline = NFT(cfg)

    def loss(self, policy: GroupLogps, reference: GroupLogps | None, batch: dict) -> LossOutput:
        """Args:
            policy: (B, K, T) log-probs of the K answers under the current policy.
            reference: unused (NFT has no reference; pi_old is the sampling policy).
            batch: ``old_logps`` (GroupLogps, the sampling log-probs) and ``rewards`` (B, K).
        """
        valid, old = policy.valid, batch["old_logps"]
        correct = (batch["rewards"] > self.cfg.correct_threshold) & valid  # (B, K)
        rate = correct.sum(1) / valid.sum(1).clamp(min=1)  # (B,) before the clamp inside NFT
        keep = valid.clone()
        mixed = (rate > 0) & (rate < 1)  # (B,)
        if self.cfg.mask_zero_std:
            keep &= mixed[:, None]
        metrics = {"frac_reward_zero_std": (~mixed).float().mean(), "nft/correct_rate": rate.mean(),
                   "nft/kept_frac": keep.sum() / valid.sum().clamp(min=1)}
        if not keep.any():  # nothing to learn from: a zero that still reaches the graph
            return LossOutput(loss=(policy.values * 0).sum(), metrics=metrics)
        rows = {"label": correct[keep].to(policy.values.dtype),  # (N,) the kept answers, flattened
                "correct_rate": rate[:, None].expand_as(keep)[keep].to(policy.values.dtype)}
        out = self.offline.loss(TokenLogps(policy.values[keep], policy.mask[keep]),
                                TokenLogps(old.values[keep], old.mask[keep]), rows)
        return LossOutput(loss=out.loss, metrics=metrics | out.metrics)
