"""The online objectives on the tiny model through the real online loop (``refeed.train.online.train_online``).

Each run samples 8 answers to each of 4 prompts from the current (random-init) policy, scores them with a
verifier-like reward (1 when the answer starts with a digit, 0 otherwise: what a random model must learn
first), and updates; PF-PPO gets that reward plus a deterministic noise of +-0.4 (a noisy learned reward).
After 8 steps the policy's own probability that an answer starts with a digit (not a sample) must have
risen from ~0.11 by more than 0.3: a sign flip, a lost advantage or a mis-wired pair fails it. On-policy
(mu = 1) with binary rewards, RLOO and online NFT take the same Adam steps (their gradients are
proportional: the NFT paper's equivalence), so both are run but neither is checked against the other.
One thread: the tiny model's ops are small, and on a loaded 2-core machine a second thread is 10x slower.
Budget: about 3 s per run, 18 s for the file (marked slow).
"""

import zlib

import pytest
import torch

from refeed.objectives import build
from refeed.train.online import OnlineConfig, train_online
from refeed.train.step import Schedule, TrainConfig
from tests.train.test_online import _digit_first_prob, digit_first

pytestmark = pytest.mark.slow  # ~3 s each on a loaded 2-core machine
ROWS = [{"prompt": [{"role": "user", "content": f"Greet {n}."}]} for n in ("ann", "bob", "cy", "dee", "eve", "fay")]


def noisy_digit_first(prompts, completions, **kwargs):
    """digit_first plus a noise in [-0.4, 0.4) fixed by the answer's text (a reward model's error)."""
    out = []
    for c in completions:
        text = c[0]["content"]
        out.append((1.0 if text[:1].isdigit() else 0.0) + 0.8 * ((zlib.crc32(text.encode()) % 1000) / 1000 - 0.5))
    return out


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(("name", "params", "reward", "metric"), [
    ("rloo", {}, digit_first, "advantage/abs_mean"),
    ("weighted_grpo", {"w_plus": 2.0, "w_minus": 2.0}, digit_first, "wgrpo/frac_hard"),
    ("pf_ppo", {"mode": "bw"}, noisy_digit_first, "pf/kept_frac"),
    ("nft_online", {}, digit_first, "nft/kept_frac"),
    ("online_dpo", {}, digit_first, "online_dpo/tie_frac"),
    ("online_dpo", {"reference_policy": "previous"}, digit_first, "online_dpo/pair_frac"),
])
def test_online_objective_raises_the_rewarded_behaviour(name, params, reward, metric, tiny, one_thread):
    model, tok = tiny
    before = _digit_first_prob(model, tok, ROWS)
    cfg = TrainConfig(lr=2e-2, batch_size=4, max_steps=8, warmup_ratio=0.0, schedule=Schedule.CONSTANT, seed=0)
    res = train_online(model, tok, ROWS, [reward], build(name, params), cfg,
                       OnlineConfig(num_generations=8, max_new_tokens=4))
    after = _digit_first_prob(model, tok, ROWS)
    assert res.steps == 8 and metric in res.history[0]  # the objective's own metrics reach the run's log
    assert before < 0.2 and after > before + 0.3, (name, params, before, after)
