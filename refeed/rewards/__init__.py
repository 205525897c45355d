"""Rewards: functions that turn (prompt, completion) into a number, with TRL's reward-function signature
``fn(prompts, completions, completion_ids=None, **columns) -> list[float | None]`` (``refeed.rewards.base``).

Built in: the tasks' verifiers (``verifier``), trained reward models (``reward_model_reward`` over
``refeed.rewards.reward_model.score``, which the evaluation reuses), an AI judge over any
OpenAI-compatible endpoint (``judge``), weighted composites and DAPO's overlong shaping
(``shaping``), and users' functions by import path (``load_function``). ``build_rewards`` turns a
recipe's ``rewards:`` list into functions and weights. ``refeed.rewards.followup`` scores answers by
the likelihood of users' follow-ups (FLR).

Scoring goes through ``refeed.batch`` (encode, collate, log-probs), the core below this layer, so the
reward layer never imports ``refeed.train``; the training loops import rewards, not the other way round.
Importing this package loads no torch: the modules that need it load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RewardModel": "refeed.rewards.reward_model", "load_reward_model": "refeed.rewards.reward_model",
    "score": "refeed.rewards.reward_model", "flr_pairs": "refeed.rewards.followup",
    "flr_rewards": "refeed.rewards.followup", "Reward": "refeed.rewards.base", "load_function": "refeed.rewards.base",
    "build_rewards": "refeed.rewards.build", "verifier": "refeed.rewards.verifiers",
    "reward_model_reward": "refeed.rewards.rm", "JudgeConfig": "refeed.rewards.judges", "judge": "refeed.rewards.judges",
    "composite": "refeed.rewards.shaping", "overlong": "refeed.rewards.shaping",
    "overlong_penalty": "refeed.rewards.shaping",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'refeed.rewards' has no attribute '{name}'")
    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = sorted(_LAZY)
