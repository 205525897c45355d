"""Rewards: functions that turn (prompt, completion) into a number. Trained reward models score through
``refeed.rewards.reward_model.score``; the online loop and the evaluation harness call the same function.
``refeed.rewards.followup`` scores answers by the likelihood of users' follow-ups (FLR).

Scoring goes through ``refeed.batch`` (encode, collate, log-probs), the core below this layer, so the
reward layer never imports ``refeed.train``; the training loops import rewards, not the other way round."""

from refeed.rewards.followup import flr_pairs, flr_rewards
from refeed.rewards.reward_model import RewardModel, load_reward_model, score

__all__ = ["RewardModel", "flr_pairs", "flr_rewards", "load_reward_model", "score"]
