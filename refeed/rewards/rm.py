"""A trained reward model as a reward function: ``refeed.rewards.reward_model.score`` behind TRL's signature.

    fn = reward_model_reward("runs/bradley_terry-.../model")
    fn(prompts=prompts, completions=completions)           # one float per completion
    fn.per_token(prompts, completions)                     # dense (span) models: per-token rewards

The model loads on the first call (torch and the weights only when a run scores), and stays loaded.
The reward is what the objective that trained the head says (``score``): BT's raw score, a binary
model's P(good), an ordinal model's expected level; a dense (fine-grained span) model's sequence
reward is the sum of its per-token rewards, and ``per_token`` gives those rewards themselves, over
the reward model's own tokens of each completion (EOS included): they line up with the policy's
``completion_ids`` only when both share a tokenizer. A principle-conditioned model (RLBFF) is given
its ``principle`` once, for every completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refeed.rewards.base import Reward, text_of


def reward_model_reward(path: str | Path, *, device: str = "cpu", dtype: str = "float32", batch_size: int = 16,
                        max_length: int = 512, principle: str | None = None, name: str = "reward_model") -> Reward:
    """A TRL-signature reward function scoring completions with the reward model at ``path``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"reward_model: '{path}' is not a directory; give the model directory a score-head "
                                f"run wrote (runs/<id>/model)")
    state: dict[str, Any] = {}

    def model():
        if "rm" not in state:
            from refeed.rewards.reward_model import load_reward_model

            state["rm"] = load_reward_model(path, device=device, dtype=dtype)
        return state["rm"]

    def _score(prompts: Sequence[Any], completions: Sequence[Any], dense: bool):
        from refeed.rewards.reward_model import score

        rm = model()
        principles = [principle] * len(prompts) if principle is not None else None
        return score(rm, list(prompts), [text_of(c) for c in completions], batch_size=batch_size,
                     max_length=max_length, dense=dense, principles=principles)

    def fn(prompts: Sequence[Any], completions: Sequence[Any], completion_ids=None, **columns) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        return [float(x) for x in _score(prompts, completions, dense=False)]

    def per_token(prompts: Sequence[Any], completions: Sequence[Any]) -> list[list[float]]:
        """Per-token rewards of a dense reward model (an error for a model with one reward per answer)."""
        return [t.tolist() for t in _score(prompts, completions, dense=True)]

    fn.__name__ = fn.__qualname__ = name
    fn.per_token, fn.model, fn.loaded = per_token, model, lambda: "rm" in state
    return fn
