"""Behaviour on the tiny model through the real offline loop (``refeed.train.loop.train``).

Each test trains a fresh tiny model for a few dozen steps and checks a property that fails if the
loss were wired wrong (sign flipped, sums instead of means, labels ignored). Held-out prompts are
never trained on. Runs in a few seconds each on a 2-core CPU; marked slow.
"""

import pytest
import torch

from refeed.objectives import build
from refeed.objectives.base import BatchKind
from refeed.train.batching import collate, encode_rows
from refeed.train.logprobs import naive_completion_logps
from refeed.train.loop import Schedule, TrainConfig, train

pytestmark = pytest.mark.slow
NAMES = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kim", "lu"]
HELD_OUT = ["max", "ned", "ola", "pat"]


def _prompt(name):
    return [{"role": "user", "content": f"Greet {name}."}]


def _seq_logp(model, tok, prompt, answer):
    """log pi(answer + EOS | prompt), summed over completion tokens."""
    enc = encode_rows(tok, [{"prompt": prompt, "completion": answer}], BatchKind.SFT, 256)
    b = collate(enc, tok.pad_token_id)
    with torch.no_grad():
        return (
            naive_completion_logps(model, b["input_ids"], b["attention_mask"], b["completion_mask"])
            .sum()
            .item()
        )


def _gap(model, tok, good, bad):
    """Mean over held-out prompts of log pi(good) - log pi(bad)."""
    return sum(
        _seq_logp(model, tok, _prompt(n), good) - _seq_logp(model, tok, _prompt(n), bad) for n in HELD_OUT
    ) / len(HELD_OUT)


def _cfg(**kw):
    return TrainConfig(
        **{
            "lr": 2e-3,
            "batch_size": 4,
            "epochs": 4,
            "warmup_ratio": 0.0,
            "schedule": Schedule.CONSTANT,
            "seed": 0,
            **kw,
        }
    )


def test_kto_learns_from_thumbs_alone(tiny):
    """Thumbs-up on "hi" and thumbs-down on "go" (never paired): held-out log pi(hi) - log pi(go) rises by > 1 nat."""
    model, tok = tiny
    rows = [
        {"prompt": _prompt(n), "completion": c, "label": lab}
        for n in NAMES
        for c, lab in (("hi", 1), ("go", 0))
    ]
    before = _gap(model, tok, "hi", "go")
    train(model, tok, rows, build("kto", {"beta": 0.5, "use_kl": False}), _cfg())
    assert _gap(model, tok, "hi", "go") - before > 1.0


def test_ld_dpo_learns_less_verbosity_than_dpo(tiny_model_dir):
    """Data prefers a long answer ("hi hi hi hi") over a short one ("hi"). DPO pushes up every token of the
    long answer; LD-DPO with alpha=0 trains only its first |short| tokens, so on held-out prompts its gain in
    log pi(long) - log pi(short) must be smaller than DPO's by > 1 nat (same beta, data, steps)."""
    from refeed.models import load

    rows = [{"prompt": _prompt(n), "chosen": "hi hi hi hi", "rejected": "hi"} for n in NAMES]
    gains = {}
    for name, params in (("dpo", {"beta": 0.5}), ("ld_dpo", {"beta": 0.5, "alpha": 0.0})):
        model, tok = load(tiny_model_dir)
        before = _gap(model, tok, "hi hi hi hi", "hi")
        train(model, tok, rows, build(name, params), _cfg())
        gains[name] = _gap(model, tok, "hi hi hi hi", "hi") - before
    assert gains["dpo"] > 0 and gains["dpo"] - gains["ld_dpo"] > 1.0, gains


def test_plackett_luce_raises_the_top_ranked_answer(tiny):
    """Groups ranked "hi" > "yo" > "go": held-out log pi(hi) - log pi(go) must rise by > 1 nat, and
    log pi(hi) - log pi(yo) must rise too (a flipped sign or ignored order would lower them)."""
    model, tok = tiny
    rows = [{"prompt": _prompt(n), "completions": ["hi", "yo", "go"]} for n in NAMES]
    before = (_gap(model, tok, "hi", "go"), _gap(model, tok, "hi", "yo"))
    train(model, tok, rows, build("plackett_luce", {"beta": 0.5}), _cfg())
    after = (_gap(model, tok, "hi", "go"), _gap(model, tok, "hi", "yo"))
    assert after[0] - before[0] > 1.0 and after[1] > before[1], (before, after)
