"""Rewards: functions that turn (prompt, completion) into a number. Trained reward models score through
``refeed.rewards.reward_model.score``; the online loop and the evaluation harness call the same function.
``refeed.rewards.followup`` scores answers by the likelihood of users' follow-ups (FLR).

The online loop takes rewards as plain callables ``(prompts, completions) -> (N,) tensor`` (e.g.
``functools.partial(score, rm)``), so the training layer never imports this one."""

from refeed.rewards.followup import flr_pairs, flr_rewards
from refeed.rewards.reward_model import RewardModel, load_reward_model, score

__all__ = ["RewardModel", "flr_pairs", "flr_rewards", "load_reward_model", "score"]
