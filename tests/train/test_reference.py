"""The reference pass: cached under a fingerprint of model, data and max_length (not the row count),
with a progress callback; and the loop's ``callback(step, model)`` for held-out eval points."""

import torch

from refeed.batch.encode import encode_for
from refeed.objectives import build
from refeed.train.loop import TrainConfig, reference_key, train


def _pairs(offset: int, n: int = 16):
    """Addition pairs; ``offset`` changes the answers' digits but not their token counts."""
    return [{"prompt": f"What is {i}+{i}?", "chosen": str(10 + (2 * i + offset) % 90), "rejected": str(10 + (3 * i + offset) % 90)}
            for i in range(n)]


def test_a_reused_run_dir_recomputes_the_reference_for_other_data_of_the_same_size(tiny_model_dir, tmp_path):
    """Two datasets with the same number of rows and the same token lengths: the second run must not reuse
    the first one's cached reference (DPO's margin at step 1 is 0 only when reference == starting policy)."""
    from refeed.models import load

    cfg = TrainConfig(lr=1e-3, batch_size=8, max_steps=1, warmup_ratio=0.0)
    calls = []
    model, tok = load(tiny_model_dir)
    train(model, tok, _pairs(0), build("dpo"), cfg, run_dir=tmp_path, reference_progress=lambda d, t: calls.append((d, t)))
    assert calls == [(8, 16), (16, 16)]
    cache = tmp_path / "reference_logps.pt"
    first = cache.stat().st_mtime_ns

    model, tok = load(tiny_model_dir)
    res = train(model, tok, _pairs(0), build("dpo"), cfg, run_dir=tmp_path)  # same model, data, max_length
    assert cache.stat().st_mtime_ns == first, "the same key must reuse the cache"
    assert abs(res.history[0]["rewards/margin"]) < 1e-5

    model, tok = load(tiny_model_dir)
    res = train(model, tok, _pairs(5), build("dpo"), cfg, run_dir=tmp_path)
    assert abs(res.history[0]["rewards/margin"]) < 1e-5  # the stale reference would give a nonzero margin
    assert torch.load(cache)["key"] == reference_key(load(tiny_model_dir)[0], encode_for(tok, _pairs(5), build("dpo"), 512), 512)


def test_the_reference_key_moves_with_weights_data_and_max_length(tiny_model_dir):
    from refeed.models import load

    model, tok = load(tiny_model_dir)
    enc = encode_for(tok, _pairs(0), build("dpo"), 512)
    key = reference_key(model, enc, 512)
    assert reference_key(load(tiny_model_dir)[0], enc, 512) == key  # a fresh load of the same weights
    assert reference_key(model, enc, 256) != key
    assert reference_key(model, encode_for(tok, _pairs(1), build("dpo"), 512), 512) != key
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert reference_key(model, enc, 512) != key


def test_callback_runs_every_eval_every_steps_without_changing_the_run(tiny_model_dir):
    """The callback sees steps 2 and 4 with the model in eval mode; it draws random numbers (as sampling
    does), yet the losses and the RNG state after the run equal those of a run without it."""
    from refeed.models import load

    rows = [{"prompt": f"Say {w}.", "completion": w} for w in ("ab", "cd", "ef", "gh", "ij", "kl", "mn", "op")]
    cfg = TrainConfig(lr=1e-3, batch_size=2, max_steps=4, eval_every=2)
    seen = []

    def callback(step, model):
        seen.append((step, model.training))
        torch.rand(100)

    runs = []
    for cb in (callback, None):
        model, tok = load(tiny_model_dir)
        res = train(model, tok, rows, build("sft"), cfg, callback=cb)
        runs.append(([h["loss"] for h in res.history], torch.get_rng_state()))
    assert seen == [(2, False), (4, False)]
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
