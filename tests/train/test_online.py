"""The online loop on the tiny model: real sampling (TransformersGenerator), TRL-style reward functions on
arithmetic prompts, GRPO through the shared update step; bad rewards refused; exact resume mid-generation."""

import pytest
import torch

from refeed.config import ConfigError
from refeed.objectives.grpo import GRPO, GRPOConfig
from refeed.tasks import Arithmetic
from refeed.tasks.base import SplitSizes
from refeed.train.online import OnlineConfig, train_online
from refeed.train.step import Schedule, TrainConfig

TASK = Arithmetic(levels=(1,), sizes=SplitSizes(train=20, dev=5, test=5))
EXAMPLES = {e.id: e for e in TASK.examples("train")}


def _rows(n=8):
    """Arithmetic prompts with an ``example_id`` column (TRL passes every other column to reward functions)."""
    return [{"prompt": list(e.messages), "example_id": e.id} for e in list(EXAMPLES.values())[:n]]


def correct(prompts, completions, example_id, **kwargs):
    """The task's verifier as a TRL reward function: 1 when the first integer is the right answer."""
    return [TASK.verify(EXAMPLES[i], c[0]["content"]).score for c, i in zip(completions, example_id, strict=True)]


def digit_first(prompts, completions, completion_ids, **kwargs):
    """Format reward: the answer starts with a digit (what a random model must learn before any sum)."""
    return [1.0 if c[0]["content"][:1].isdigit() else 0.0 for c in completions]


def _digit_first_prob(model, tok, rows):
    """P(first answer token is a digit), averaged over the prompts: the policy itself, not a sample."""
    from refeed.batch.encode import encode_prompt

    digits = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
    with torch.no_grad():
        probs = [model(torch.tensor([encode_prompt(tok, r["prompt"])])).logits[0, -1].softmax(-1)[digits].sum()
                 for r in rows]
    return float(torch.stack(probs).mean())


@pytest.mark.slow
def test_grpo_on_a_verifier_and_a_format_reward_raises_the_rewarded_behaviour(tiny, tmp_path):
    model, tok = tiny
    rows = _rows()
    before = _digit_first_prob(model, tok, rows)
    cfg = TrainConfig(lr=2e-2, batch_size=4, max_steps=12, warmup_ratio=0.0, schedule=Schedule.CONSTANT, seed=1)
    online = OnlineConfig(num_generations=8, max_new_tokens=4, mu=2)
    res = train_online(model, tok, rows, [correct, digit_first], GRPO(GRPOConfig()), cfg, online, run_dir=tmp_path)
    after = _digit_first_prob(model, tok, rows)
    h = res.history
    assert res.steps == 12 and [r["generation"] for r in h] == [g // 2 for g in range(12)]  # mu = 2 per generation
    assert {"rewards/correct/mean", "rewards/digit_first/mean", "clip/high", "frac_reward_zero_std",
            "completions/mean_length"} <= set(h[0])
    assert h[0]["completions/mean_length"] <= 4 and (tmp_path / "metrics.jsonl").is_file()
    assert after > before + 0.2, (before, after)
    first, last = h[0]["rewards/digit_first/mean"], sum(r["rewards/digit_first/mean"] for r in h[-4:]) / 4
    assert last > first, (first, last)


def test_bad_rewards_and_datasets_are_refused_with_the_name(tiny):
    model, tok = tiny
    cfg, online = TrainConfig(batch_size=2, max_steps=1), OnlineConfig(num_generations=2, max_new_tokens=2)
    grpo = GRPO(GRPOConfig())

    def broken(prompts, completions, **kw):
        raise KeyError("score")

    def short(prompts, completions, **kw):
        return [1.0]

    def nan(prompts, completions, **kw):
        return [float("nan")] * len(completions)

    with pytest.raises(RuntimeError, match="reward function 'broken' failed on prompt 0: KeyError"):
        train_online(model, tok, _rows(2), [broken], grpo, cfg, online)
    with pytest.raises(ValueError, match="'short' returned 1 values for 2 completions"):
        train_online(model, tok, _rows(2), [short], grpo, cfg, online)
    with pytest.raises(ValueError, match="'nan' returned nan for completion 0 of prompt 0"):
        train_online(model, tok, _rows(2), [nan], grpo, cfg, online)
    with pytest.raises(ConfigError, match="'prompt' column; the dataset has \\['question'\\]"):
        train_online(model, tok, [{"question": "q"}] * 2, [digit_first], grpo, cfg, online)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        train_online(model, tok, _rows(2), [digit_first], grpo, cfg, OnlineConfig(num_generations=2, max_new_tokens=10**6))


@pytest.mark.slow
def test_a_run_cut_between_the_mu_steps_of_a_generation_resumes_exactly(tiny_model_dir, tmp_path):
    """mu = 2, checkpoints every step: stopped after step 3 (inside generation 1) and resumed from its
    checkpoint in a fresh model, the run logs the same losses and rewards as the uninterrupted one."""
    from refeed.models import load

    cfg = TrainConfig(lr=1e-2, batch_size=2, max_steps=4, checkpoint_every=1, keep_checkpoints=0, seed=3)
    online = OnlineConfig(num_generations=4, max_new_tokens=4, mu=2)
    args = (_rows(4), [digit_first], GRPO(GRPOConfig()), cfg, online)
    full = train_online(*load(tiny_model_dir), *args, run_dir=tmp_path / "full")
    train_online(*load(tiny_model_dir), *args, run_dir=tmp_path / "cut", progress=lambda s, t, r: s == 3)
    rest = train_online(*load(tiny_model_dir), *args, run_dir=tmp_path / "cut", resume_from=tmp_path / "cut" / "checkpoint-3")
    assert [r["step"] for r in rest.history] == [4]
    for x, y in zip(full.history[3:], rest.history, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-6, abs=1e-7)
        assert y["reward/mean"] == x["reward/mean"] and y["generation"] == x["generation"]


def test_the_loss_sees_the_sampling_log_probs_it_recomputes(tiny):
    """Importance ratios are exact: the training forward at the sampling temperature (shared prompt, chunked
    LM head) gives the log-probs the generator sampled each token with, so rho = 1 before any update."""
    from refeed.batch.collate import collate_shared
    from refeed.batch.encode import EncodedRow
    from refeed.batch.logprobs import shared_prompt_logps
    from refeed.models.hf_generator import TransformersGenerator
    from refeed.types import SamplingParams

    model, tok = tiny
    rollouts = TransformersGenerator(model, tok).generate([r["prompt"] for r in _rows(2)],
                                                         SamplingParams(temperature=0.7, max_new_tokens=5, seed=0), n=3)
    rows = [EncodedRow(rollouts[3 * i].prompt_ids, [r.completion_ids for r in rollouts[3 * i : 3 * i + 3]], {})
            for i in range(2)]
    b = collate_shared(rows, tok.pad_token_id)
    with torch.no_grad():
        lp = shared_prompt_logps(model, b["prompt_ids"], b["prompt_mask"], b["answer_ids"], b["answer_mask"], 4, 0.7)
    for j in range(3):
        for i in range(2):
            got = lp.values[j * 2 + i][lp.mask[j * 2 + i]]
            torch.testing.assert_close(got, torch.tensor(rollouts[3 * i + j].logprobs), rtol=0, atol=2e-5)


class _OwnCopyGenerator:
    """A generator that samples its OWN copy of the weights, as a vLLM engine does, and takes the policy's
    weights in ``sync`` (the loop's hook); the sampling itself is the real TransformersGenerator's."""

    tracks_policy = True

    def __init__(self, model, tok):
        import copy

        from refeed.models.hf_generator import TransformersGenerator

        self.inner = TransformersGenerator(copy.deepcopy(model), tok, name="copy", version="copy@step0")
        self.name, self.version, self.synced = "copy", "copy@step0", []

    def generate(self, prompts, sampling, n=1):
        return self.inner.generate(prompts, sampling, n)

    def sync(self, policy, version):
        self.inner.model.load_state_dict(policy.state_dict())
        self.synced.append(version)
        self.inner.version = version


def test_a_generator_with_its_own_weights_is_synced_before_each_new_generation(tiny):
    """mu = 2: generations at steps 0, 2, 4; the copy is synced before generations 1 and 2 (not before the
    first, not between a generation's updates), with the version of the step it samples at; without the sync
    its weights would stay the base's."""
    model, tok = tiny
    base = {k: v.clone() for k, v in model.state_dict().items()}
    gen = _OwnCopyGenerator(model, tok)
    cfg = TrainConfig(lr=1e-2, batch_size=2, max_steps=6, warmup_ratio=0.0, schedule=Schedule.CONSTANT, seed=0)
    online = OnlineConfig(num_generations=4, max_new_tokens=4, mu=2)
    res = train_online(model, tok, _rows(), [correct, digit_first], GRPO(GRPOConfig()), cfg, online, generator=gen)
    assert res.steps == 6 and gen.synced == ["copy@step2", "copy@step4"] and gen.version == "copy@step6"
    copy = gen.inner.model.state_dict()
    assert any(not torch.equal(copy[k], base[k]) for k in base)  # it took trained weights (those of step 4)
