import random

import pytest
import torch

from refeed.batch.collate import collate
from refeed.batch.encode import encode_rows
from refeed.batch.logprobs import naive_completion_logps
from refeed.objectives import build
from refeed.objectives.base import BatchKind
from refeed.train.loop import Schedule, TrainConfig, lr_lambda, train


def _pair_rows(n=16):
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        rows.append({"prompt": [{"role": "user", "content": f"What is {a}+{b}?"}],
                     "chosen": str(a + b), "rejected": str(a + b + rng.randint(1, 9))})
    return rows


def _sft_rows(n=12):
    return [{"prompt": [{"role": "user", "content": f"Reverse the word: {w}"}], "completion": w[::-1]}
            for w in ["abc", "table", "xy", "hello", "ring", "stone", "moon", "tree", "sky", "cloud", "rain", "wind"][:n]]


def _params(model):
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


@pytest.mark.parametrize("objective", ["dpo", "sft"])
def test_grad_accumulation_invariance(tiny_model_dir, objective):
    """batch 8 x accum 1 and batch 1 x accum 8 make the same updates."""
    from refeed.models import load

    rows = _pair_rows() if objective == "dpo" else _sft_rows()
    results = []
    for bs, acc in [(8, 1), (1, 8)]:
        model, tok = load(tiny_model_dir)
        # adam_eps well above float32 noise: Adam divides by sqrt(v), which turns a 1e-9 gradient
        # difference on a parameter whose gradient is ~0 into a difference of a whole lr step.
        cfg = TrainConfig(lr=1e-3, batch_size=bs, grad_accum=acc, max_steps=2, warmup_ratio=0.0, seed=3, adam_eps=1e-5)
        res = train(model, tok, rows, build(objective), cfg)
        results.append((_params(model), [h["loss"] for h in res.history]))
    (p1, l1), (p2, l2) = results
    assert l1 == pytest.approx(l2, rel=1e-5)
    torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-6)


def test_loop_matches_a_hand_written_three_step_reference(tiny_model_dir):
    """SFT, 3 steps of 4 rows, constant lr, no clipping, compared with a plain PyTorch loop."""
    from refeed.models import load

    rows = _sft_rows(12)
    cfg = TrainConfig(lr=2e-3, batch_size=4, max_steps=3, warmup_ratio=0.0, schedule=Schedule.CONSTANT,
                      max_grad_norm=0.0, seed=5, adam_eps=1e-5)
    model, tok = load(tiny_model_dir)
    res = train(model, tok, rows, build("sft"), cfg)

    ref, _ = load(tiny_model_dir)
    order = list(range(len(rows)))
    random.Random(5).shuffle(order)  # the loop shuffles with random.Random(seed)
    enc = encode_rows(tok, rows, BatchKind.SFT, cfg.max_length)
    opt = torch.optim.AdamW(ref.parameters(), lr=2e-3, weight_decay=0.0, eps=1e-5)
    losses = []
    for step in range(3):
        b = collate([enc[i] for i in order[step * 4 : (step + 1) * 4]], tok.pad_token_id)
        lp = naive_completion_logps(ref, b["input_ids"], b["attention_mask"], b["completion_mask"])
        loss = (-(lp.sum() / lp.count())).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert [h["loss"] for h in res.history] == pytest.approx(losses, rel=1e-5)
    # chunked vs naive log-probs differ by float32 rounding (~1e-7); after 3 Adam steps of size 2e-3 that
    # leaves differences of a few 1e-6, well under 1% of one step. A wrong loss would move whole steps.
    torch.testing.assert_close(_params(model), _params(ref), rtol=1e-3, atol=2e-5)


def test_dpo_training_moves_the_margin_and_logs(tiny_model_dir, tmp_path):
    from refeed.models import load

    model, tok = load(tiny_model_dir)
    cfg = TrainConfig(lr=3e-3, batch_size=8, epochs=6, warmup_ratio=0.0)
    res = train(model, tok, _pair_rows(), build("dpo", {"beta": 0.5}), cfg, run_dir=tmp_path)
    first, last = res.history[0], res.history[-1]
    assert first["rewards/margin"] == pytest.approx(0.0, abs=1e-5)  # reference == starting policy
    assert last["rewards/margin"] > 0.5 and last["loss"] < first["loss"]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == res.steps == 12


def test_schedule_warms_up_then_decays():
    f = lr_lambda(TrainConfig(warmup_ratio=0.1, schedule=Schedule.COSINE), 100)
    assert f(0) < f(5) < f(9) <= 1.0
    assert f(10) == pytest.approx(1.0, abs=0.01) and f(99) < 0.01
    g = lr_lambda(TrainConfig(warmup_ratio=0.0, schedule=Schedule.LINEAR), 10)
    assert [round(g(s), 2) for s in (0, 5)] == [1.0, 0.5]


def test_bad_train_config_and_too_few_rows(tiny_model_dir):
    from refeed.models import load

    with pytest.raises(ValueError, match="train.batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    model, tok = load(tiny_model_dir)
    with pytest.raises(ValueError, match="fewer than one step's batch"):
        train(model, tok, _pair_rows(4), build("dpo"), TrainConfig(batch_size=8))


def test_packed_shared_and_padded_forwards_train_alike(tiny_model_dir):
    """DPO, 2 steps: packed rows (the default), the prompt's KV cache shared by both answers, and one padded
    forward per sequence give the same losses and weights (float32 rounding apart)."""
    from refeed.models import load

    results = []
    for share, pack in [(True, True), (True, False), (False, False)]:
        model, tok = load(tiny_model_dir)
        cfg = TrainConfig(lr=1e-3, batch_size=8, max_steps=2, warmup_ratio=0.0, seed=1, adam_eps=1e-5,
                          share_prompt=share, pack=pack)
        res = train(model, tok, _pair_rows(), build("dpo"), cfg)
        results.append((_params(model), [h["loss"] for h in res.history], [h["rewards/margin"] for h in res.history]))
    (p0, l0, m0), *others = results
    for p, losses, margins in others:
        assert losses == pytest.approx(l0, rel=1e-5)
        assert margins == pytest.approx(m0, rel=1e-4, abs=1e-6)
        torch.testing.assert_close(p, p0, rtol=1e-5, atol=1e-6)
