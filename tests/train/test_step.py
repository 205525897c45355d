"""The update step on its own, as the online loop calls it: opaque micro-batches, a loss function, one step."""

import random

import pytest
import torch

from refeed.objectives.base import LossOutput
from refeed.train import checkpoint as ckpt
from refeed.train.step import Schedule, TrainConfig, Update, make_accelerator


def _loss(model, ids):
    """Mean negative log-prob of token 5 at every position: any differentiable function of the model."""
    return -model(input_ids=ids).logits.log_softmax(-1)[..., 5].mean()


def test_one_update_equals_a_plain_adamw_step_over_the_mean_loss(tiny_model_dir, tmp_path):
    """Two micro-batches: the step's loss is their mean, and the weights equal one torch AdamW step on
    that mean; the checkpoint carries the caller's extra state (the online loop's generator) for resume."""
    from refeed.models import load

    cfg = TrainConfig(lr=1e-2, warmup_ratio=0.0, schedule=Schedule.CONSTANT, max_grad_norm=0.0, device="cpu",
                      checkpoint_every=1, adam_eps=1e-5)
    ids = torch.randint(4, 60, (4, 6), generator=torch.Generator().manual_seed(0))
    micro = [ids[:2], ids[2:]]
    model, _ = load(tiny_model_dir)
    update, state = Update.create(make_accelerator(cfg), model, model, cfg, 10, tmp_path, random.Random(0),
                                  extra_state=lambda: {"generator_seed": 7})
    assert state is None and update.step == 0
    record = update(micro, lambda x: LossOutput(_loss(update.module, x), {"probe": 2.0}), {"reward/mean": 0.5})

    ref, _ = load(tiny_model_dir)
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.0, eps=1e-5)
    losses = [_loss(ref, x) for x in micro]
    (sum(losses) / 2).backward()
    opt.step()
    assert record["step"] == 1 and record["probe"] == pytest.approx(2.0) and record["reward/mean"] == 0.5
    assert record["loss"] == pytest.approx(sum(v.item() for v in losses) / 2, rel=1e-6)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    update.close()
    assert ckpt.load_state(tmp_path / "checkpoint-1")["extra"] == {"generator_seed": 7}
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
