"""Presets of `refeed pretrain`: tiny stays as it was (same cache key), small fills its fields, bad input is one
line before any work. The small pretrain itself is not a unit test (bench/base_models.py runs it)."""

import pytest
from click.testing import CliRunner

from refeed.cli import main
from refeed.config import load
from refeed.models.small import SMALL_SHAPE
from refeed.models.tiny import TinyConfig
from refeed.pipelines.pretrain import PretrainConfig, TaskConfig
from refeed.pipelines.prior import PriorConfig


def test_tiny_is_the_default_and_keeps_its_cache_key():
    # The keys from before presets existed: a tiny base already on disk is reused, not pretrained again.
    assert PretrainConfig().preset == "tiny" and PretrainConfig().model == TinyConfig()
    assert PretrainConfig().key() == "161661405a"
    assert PretrainConfig(task=TaskConfig(name="reverse")).key() == "7d341630ea"
    assert PretrainConfig(prior=PriorConfig(steps=10)).key() != "161661405a"  # a tiny with a prior is another


def test_small_preset_fills_what_was_not_given_and_keeps_what_was_set():
    cfg = load(PretrainConfig, None, ["preset=small", "prior.critique_success=0.8", "lr=0.002", "task.name=sort"])
    assert cfg.model == SMALL_SHAPE and cfg.model.max_position_embeddings == 1024
    assert cfg.task.test_size == 1000 and cfg.task.name == "sort" and cfg.task.levels == (4, 5, 6, 7)
    assert cfg.prior.steps > 0 and cfg.prior.critique_success == 0.8 and cfg.lr == 0.002
    again = load(PretrainConfig, None, ["preset=small", "task.name=sort", "lr=0.002", "prior.critique_success=0.8"])
    assert again.key() == cfg.key() != PretrainConfig.from_preset("small", ["task.name=sort"]).key()
    # A key set to tiny's own value is kept too (it once was taken for "not given" and replaced by the preset's).
    tiny_values = PretrainConfig.from_preset("small", ["lr=5e-4", "batch_size=16", "prior.steps=0"])
    assert (tiny_values.lr, tiny_values.batch_size, tiny_values.prior.steps) == (5e-4, 16, 0)
    with pytest.raises(ValueError, match="from_preset"):
        PretrainConfig(preset="small")  # a preset label without the preset's values is refused, not half-applied


def test_recipes_and_the_demo_pick_small_with_one_key():
    from refeed.pipelines.demo import DemoConfig
    from refeed.pipelines.train_job import TrainJobConfig

    for cls in (DemoConfig, TrainJobConfig):
        assert load(cls, None, ["pretrain.preset=small"]).pretrain.model == SMALL_SHAPE


@pytest.mark.parametrize("args, message", [
    (["preset=huge"], "unknown preset 'huge'; presets: small, tiny"),
    (["preset=small", "model.max_position_embeddings=64"],
     "model.max_position_embeddings=64 is shorter than one episode of task 'arithmetic' ("),
    (["task.levels=[1]", "task.train_size=1000"], "arithmetic (levels [1]) has 200 distinct prompts, fewer than the 1500"),
    (["prior.critique_success=2"], "prior: critique_success, retry_success, rule_follow, rule_overreach, turn_decay and first_success must be probabilities"),
])
def test_bad_input_is_one_line_before_any_work(args, message, tmp_path):
    result = CliRunner().invoke(main, ["pretrain", *args, f"out_root={tmp_path}"])
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in " ".join(result.output.split()), result.output
    assert not list(tmp_path.glob("base-*"))  # nothing was written, let alone trained


def test_tiny_with_one_turn_fits_its_context_and_a_small_episode_fits_1024():
    from refeed.models.small import build_small_tokenizer
    from refeed.models.tiny import build_tokenizer
    from refeed.pipelines.pretrain import check_config, episode_tokens

    tiny = PretrainConfig()
    task, _ = check_config(tiny)
    assert episode_tokens(tiny, task, build_tokenizer()) < 40  # one question and its answer, in characters
    small = PretrainConfig.from_preset("small", ["task.name=sort"])
    task, texts = check_config(small)
    n = episode_tokens(small, task, build_small_tokenizer(texts))
    assert 100 < n < 400  # 5 answers with 4 critiques and a system rule, at ~1 token per word


@pytest.mark.slow
def test_a_few_step_small_pretrain_records_its_prior_and_is_reused(tmp_path):
    import json

    from refeed.models import load as load_model
    from refeed.pipelines.pretrain import pretrain

    cfg = load(PretrainConfig, None, [
        "preset=small", "task.name=sort", "task.train_size=200", "task.dev_size=10", "task.test_size=10",
        "max_steps=2", "eval_every=2", "dev_prompts=4", "batch_size=4", "prior.steps=2", "prior.rows=16",
        f"out_root={tmp_path}"])
    first = pretrain(cfg)
    assert not first.cached and first.steps == 4  # 2 steps of demonstrations, 2 of the prior
    prior = json.loads((first.model_dir / "prior.json").read_text())
    assert prior["steps"] == 2 and prior["critique_success"] == cfg.prior.critique_success
    assert 0 <= prior["first_success_used"] <= 1 and prior["own_prompts"] == cfg.prior.own_prompts  # its own answers
    meta = json.loads((first.model_dir.parent / "pretrain.json").read_text())
    assert meta["preset"] == "small" and meta["cpu_seconds"] > 0 and meta["prior"] == prior
    again = pretrain(cfg)
    assert again.cached and again.model_dir == first.model_dir
    model, tok = load_model(first.model_dir)
    assert 3e6 <= sum(p.numel() for p in model.parameters()) <= 5e6  # write_small_model's shape, loaded back
    assert model.config.max_position_embeddings == 1024 and tok.apply_chat_template(
        [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], tokenize=False).count("<|im_start|>") == 2
