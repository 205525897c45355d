"""Reward models on the tiny model through the real offline loop, scored through ``refeed.rewards.score``.

The users prefer polite greetings to rude ones. Each reward model trains a fresh score head (and the
random tiny decoder under it) on train names and must rank answers for held-out names, which it never
saw, far above chance (0.5): a flipped sign, an ignored label or a head read at the wrong position
would land at or below chance. Marked slow (a few seconds each on 2 cores).
"""

import pytest
import torch

from refeed.objectives import build
from refeed.rewards import RewardModel, score
from refeed.train.loop import Schedule, TrainConfig, train

pytestmark = pytest.mark.slow
NAMES = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kim", "lu"]
HELD_OUT = ["max", "ned", "ola", "pat", "quin", "rae"]
POLITE = ["Hello {n}!", "Hi {n}, welcome."]
NEUTRAL = ["Ok {n}.", "Yes {n}."]
RUDE = ["Go away {n}.", "Not now {n}."]


def _prompt(n):
    return [{"role": "user", "content": f"Greet {n}."}]


def _cfg(**kw):
    return TrainConfig(**{"lr": 2e-3, "batch_size": 4, "epochs": 3, "warmup_ratio": 0.0,
                          "schedule": Schedule.CONSTANT, "seed": 0, **kw})


def _trained(tiny, objective, rows, **cfg):
    model, tok = tiny
    res = train(model, tok, rows, objective, _cfg(**cfg))
    return RewardModel(res.model, tok, objective)


def _held_out_pair_accuracy(rm, better, worse):
    """Fraction of (held-out name, better template, worse template) triples the model orders right."""
    triples = [(n, b, w) for n in HELD_OUT for b in better for w in worse]
    prompts = [_prompt(n) for n, _, _ in triples]
    hi = score(rm, prompts, [b.format(n=n) for n, b, _ in triples])
    lo = score(rm, prompts, [w.format(n=n) for n, _, w in triples])
    return (hi > lo).float().mean().item()


def test_bradley_terry_ranks_held_out_pairs(tiny):
    rows = [{"prompt": _prompt(n), "chosen": p.format(n=n), "rejected": r.format(n=n)}
            for n in NAMES for p in POLITE for r in RUDE]
    rm = _trained(tiny, build("bradley_terry", {}), rows)
    assert _held_out_pair_accuracy(rm, POLITE, RUDE) >= 0.9


def test_binary_rm_learns_p_good_from_thumbs(tiny):
    """Unpaired thumbs only; P(good) must be > 0.5 for held-out polite answers and < 0.5 for rude ones."""
    rows = [{"prompt": _prompt(n), "completion": t.format(n=n), "label": lab}
            for n in NAMES for temps, lab in ((POLITE, 1), (RUDE, 0)) for t in temps]
    rm = _trained(tiny, build("binary_rm", {}), rows)
    assert _held_out_pair_accuracy(rm, POLITE, RUDE) >= 0.9
    p_good = score(rm, [_prompt(n) for n in HELD_OUT], [POLITE[0].format(n=n) for n in HELD_OUT])
    p_bad = score(rm, [_prompt(n) for n in HELD_OUT], [RUDE[0].format(n=n) for n in HELD_OUT])
    assert (p_good > 0.5).float().mean() >= 0.8 and (p_bad < 0.5).float().mean() >= 0.8, (p_good, p_bad)


def test_ordinal_orders_three_levels(tiny):
    """Levels rude 0 < neutral 1 < polite 2: the expected level must order held-out answers the same way."""
    levels = ((RUDE, 0), (NEUTRAL, 1), (POLITE, 2))
    rows = [{"prompt": _prompt(n), "completion": t.format(n=n), "label": lv}
            for n in NAMES for temps, lv in levels for t in temps]
    rm = _trained(tiny, build("ordinal", {"base_odds": [2.0, 0.5], "scales": [1.0, 1.0]}), rows)
    assert _held_out_pair_accuracy(rm, POLITE, NEUTRAL) >= 0.8
    assert _held_out_pair_accuracy(rm, NEUTRAL, RUDE) >= 0.8
    assert _held_out_pair_accuracy(rm, POLITE, RUDE) >= 0.9


def test_causal_rm_learns_from_observed_rows_only(tiny):
    """Logged rows: observed reactions (label = polite, 1 in 5 flipped, the noise the config corrects)
    and many unobserved rows whose label field says the opposite. CausalRM weighs only observed rows
    (by 1 / propensity); a loss that read the unobserved labels would learn rude > polite."""
    rows = []
    for i, n in enumerate(NAMES):
        for temps, good in ((POLITE, 1), (RUDE, 0)):
            for j, t in enumerate(temps):
                flip = (i + j) % 5 == 0
                rows.append({"prompt": _prompt(n), "completion": t.format(n=n), "label": good ^ flip,
                             "observed": 1, "propensity": 0.5})
                rows += [{"prompt": _prompt(n), "completion": t.format(n=n), "label": 1 - good,
                          "observed": 0, "propensity": 0.5}] * 2
    # 2 epochs passed on one machine and gave 0.83 on an Intel one (kernels differ); 6, 8 and 10 pass there
    # with 1 and 2 threads, 3 and 5 did not.
    rm = _trained(tiny, build("causal_rm", {"e01": 0.2, "e10": 0.2}), rows, epochs=8)
    assert _held_out_pair_accuracy(rm, POLITE, RUDE) >= 0.9


def test_fine_grained_rewards_the_right_sentence(tiny):
    """Two-sentence answers from the span builder's rows: head 0 (weight 0.3) judges rudeness (category
    "rude"), head 1 (weight 0.5) a wrong fact (category "wrong"). At a sentence end the dense reward is
    the sum over heads of +w (fine) or -w (error): the first sentence never holds a fact, so it must get
    0.3 + 0.5 = 0.8 when polite and -0.3 + 0.5 = 0.2 when rude; the second is never rude, so 0.8 when
    true and 0.3 - 0.5 = -0.2 when wrong; every other token gets 0. Checked on held-out names."""
    first = {"Hello {n}.": False, "Go away {n}.": True}  # text -> rude?
    second = {" The sky is blue.": False, " The sky is green.": True}  # text -> wrong fact?
    rows = []
    for n in NAMES:
        for a, rude in first.items():
            for b, wrong in second.items():
                s1 = a.format(n=n)
                spans = ([{"start": 0, "end": len(s1), "category": "rude"}] if rude else []) + (
                    [{"start": len(s1) + 1, "end": len(s1) + len(b), "category": "wrong"}] if wrong else [])
                rows.append({"prompt": _prompt(n), "completion": s1 + b, "spans": spans})
    # 6 epochs gave 0.67 on an Intel machine; 8 to 12 pass there with 1 and 2 threads
    rm = _trained(tiny, build("fine_grained", {"weights": [0.3, 0.5], "categories": ["rude", "wrong"]}), rows, epochs=10)
    right = total = 0
    for n in HELD_OUT:
        for a, rude in first.items():
            for b, wrong in second.items():
                s1 = a.format(n=n)
                (dense,) = score(rm, [_prompt(n)], [s1 + b], dense=True)
                # character-level tokenizer: sentence ends are the tokens of the two "."
                ends = [len(s1) - 1, len(s1) + len(b) - 1]
                assert dense.shape == (len(s1) + len(b) + 1,)  # the completion's tokens and EOS
                assert torch.count_nonzero(dense).item() <= 2 and all(dense[i] != 0 for i in ends)
                want = [0.2 if rude else 0.8, -0.2 if wrong else 0.8]
                right += sum(abs(dense[i].item() - w) < 1e-5 for i, w in zip(ends, want, strict=True))
                total += 2
    assert right / total >= 0.9, right / total


def test_binary_rm_conditioned_on_a_principle_judges_by_it(tiny):
    """RLBFF: one answer, two principles ("be polite" / "be rude"): the label says whether the answer
    satisfies the row's principle. The same held-out answer must score high under the principle it
    meets and low under the other, which a model that ignored the principle cannot do (same text)."""
    rows = [{"prompt": _prompt(n), "completion": t.format(n=n), "principle": pr, "label": int(good == (pr == "be polite"))}
            for n in NAMES for temps, good in ((POLITE, True), (RUDE, False)) for t in temps for pr in ("be polite", "be rude")]
    # the reward is an interaction (answer x principle), which the random tiny model needs more steps for
    # (at 10 epochs held-out accuracy was 0.92 on one machine and 0.83 on an AVX2-only one: kernels differ)
    rm = _trained(tiny, build("binary_rm", {"principle": True}), rows, epochs=16, lr=3e-3)
    answers = [(n, t.format(n=n), good) for n in HELD_OUT for temps, good in ((POLITE, True), (RUDE, False)) for t in temps]
    prompts, texts = [_prompt(n) for n, _, _ in answers], [a for _, a, _ in answers]
    p_polite = score(rm, prompts, texts, principles=["be polite"] * len(texts))
    p_rude = score(rm, prompts, texts, principles=["be rude"] * len(texts))
    meets = torch.tensor([good for _, _, good in answers])
    right = torch.where(meets, p_polite > p_rude, p_rude > p_polite).float().mean().item()
    # 0.92 seen on one machine, 0.83 (20 of 24) on others at 16 and 24 epochs; a principle-blind model is at
    # 0.5 by construction, so 0.8 still needs the principle read
    assert right >= 0.8, right
    with pytest.raises(ValueError, match="pass principles"):
        score(rm, prompts, texts)
