"""The reward-model reward: a score-head model written the way ``refeed train`` writes one (tiny LM, a random
head), scored through TRL's signature, equals ``refeed.rewards.score`` on the same texts (conversational
completions read as their text); a dense span model's reward is the sum of its per-token rewards, which
``per_token`` returns; the model loads on the first call, not when the reward is built."""

from __future__ import annotations

import pytest
import torch

from refeed.rewards import build_rewards, load_reward_model, score

pytestmark = pytest.mark.slow  # torch and two tiny reward models: a few seconds

PROMPTS = [[{"role": "user", "content": "What is 2+3?"}]] * 3
TEXTS = ["5. It is five.", "6", "I think it is 5. Yes."]


def write_rm(path, tiny_model_dir, objective: str, heads: int, config: dict) -> str:
    from refeed.models import load
    from refeed.models.score_head import ScoreModel

    lm, tok = load(tiny_model_dir)
    rm = ScoreModel.wrap(lm, heads, {"objective": objective, "objective_config": config})
    torch.manual_seed(0)
    torch.nn.init.normal_(rm.score_head.weight, std=1.0)
    rm.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_reward_model_reward_is_score(tmp_path, tiny_model_dir):
    path = write_rm(tmp_path / "bt", tiny_model_dir, "bradley_terry", 1, {})
    (fn,), _ = build_rewards([{"name": "reward_model", "path": path}])
    assert fn.__name__ == "reward_model" and not fn.loaded()  # built without loading anything
    got = fn(prompts=PROMPTS, completions=[[{"role": "assistant", "content": t}] for t in TEXTS],
             completion_ids=[[1]] * 3)
    want = score(load_reward_model(path), PROMPTS, TEXTS)
    assert got == pytest.approx(want.tolist(), abs=1e-6) and len(set(got)) == 3 and fn.loaded()
    with pytest.raises(ValueError, match="gives one reward per answer"):
        fn.per_token(PROMPTS, TEXTS)


def test_dense_reward_model_sums_its_per_token_rewards(tmp_path, tiny_model_dir):
    path = write_rm(tmp_path / "fg", tiny_model_dir, "fine_grained", 2, {"weights": [0.3, 0.5]})
    (fn,), _ = build_rewards([{"name": "reward_model", "path": path}])
    per_token = fn.per_token(PROMPTS, TEXTS)
    assert fn(prompts=PROMPTS, completions=TEXTS) == pytest.approx([sum(t) for t in per_token], abs=1e-6)
    want = score(load_reward_model(path), PROMPTS, TEXTS, dense=True)
    assert [len(t) for t in per_token] == [len(t) for t in want]
    assert any(v != 0 for t in per_token for v in t)
