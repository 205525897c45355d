"""Rewards: functions that turn (prompt, completion) into a number. Trained reward models score through
``refeed.rewards.reward_model.score``; the online loop and the evaluation harness call the same function."""

from refeed.rewards.reward_model import RewardModel, load_reward_model, score

__all__ = ["RewardModel", "load_reward_model", "score"]
