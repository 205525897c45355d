"""A tiny model that has seen the task a little: it answers with digits, sometimes right.

A random-weight model answers every prompt with noise, so the simulated user's grades all tie and no
pair, ranking or level can be made; 40 SFT steps (a few seconds) fix that without reaching any accuracy
target, which keeps every recipe's no-``--data`` path testable on 2 cores."""

from __future__ import annotations

import pytest

TASK = {"name": "arithmetic", "levels": (1, 2), "train_size": 400, "dev_size": 20, "test_size": 40}


@pytest.fixture(scope="session")
def warm_model_dir(tiny_model_dir, tmp_path_factory):
    from refeed.models import load
    from refeed.objectives import build
    from refeed.pipelines.pretrain import TaskConfig
    from refeed.train.loop import Schedule, TrainConfig, train

    model, tok = load(tiny_model_dir)
    task = TaskConfig(**TASK).build()
    rows = [{"prompt": list(e.messages), "completion": e.answer} for e in task.examples("train")]
    cfg = TrainConfig(lr=2e-3, batch_size=16, max_steps=40, warmup_ratio=0.0, schedule=Schedule.CONSTANT)
    train(model, tok, rows, build("sft"), cfg)
    out = tmp_path_factory.mktemp("warm") / "model"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def task_overrides() -> list[str]:
    """The recipe overrides that point ``refeed train`` at the small task the warm model saw."""
    return [f"pretrain.task.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TASK.items()]
