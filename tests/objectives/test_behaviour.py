"""Behaviour on the tiny model through the real offline loop (``refeed.train.loop.train``).

Each test trains a fresh tiny model for a few dozen steps and checks a property that fails if the
loss were wired wrong (sign flipped, sums instead of means, labels ignored). Held-out prompts are
never trained on. Runs in a few seconds each on a 2-core CPU; marked slow.
"""

import pytest
import torch

from refeed.batch.collate import collate
from refeed.batch.encode import encode_rows
from refeed.batch.logprobs import naive_completion_logps
from refeed.objectives import build
from refeed.objectives.base import BatchKind
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


def _held_out_logp(model, tok, answer, prompt=_prompt):
    """Mean over held-out names of log pi(answer + EOS | prompt(name)), summed over its tokens."""
    return sum(_seq_logp(model, tok, prompt(n), answer) for n in HELD_OUT) / len(HELD_OUT)


def _per_token_gap(model, tok, good, bad):
    """Mean over held-out prompts of the per-token (length-averaged) log pi(good) - log pi(bad), EOS counted."""
    return sum(
        _seq_logp(model, tok, _prompt(n), good) / (len(good) + 1)
        - _seq_logp(model, tok, _prompt(n), bad) / (len(bad) + 1)
        for n in HELD_OUT
    ) / len(HELD_OUT)  # the tiny tokenizer is character-level: len(text) tokens + EOS


FILLER = "xk" * 20  # a pattern any model that trains on it learns at once


def _filler_logp(model, tok, name):
    """Per-token log pi of the FILLER tokens inside the prompt "Greet {name}. FILLER" (first and last
    filler token left out: they follow / precede the fixed text)."""
    from refeed.batch.encode import encode_prompt

    ids = encode_prompt(tok, [{"role": "user", "content": f"Greet {name}. {FILLER}"}])
    start = len(tok(f"<|im_start|>user\nGreet {name}. ", add_special_tokens=False)["input_ids"])
    assert "".join(tok.convert_ids_to_tokens(ids[start : start + len(FILLER)])) == FILLER
    x = torch.tensor([ids])
    with torch.no_grad():
        lp = model(input_ids=x).logits[0, :-1].log_softmax(-1).gather(-1, x[0, 1:, None])[:, 0]  # (T-1,)
    return lp[start + 1 : start + len(FILLER) - 1].mean().item()  # lp[t-1] predicts token t


def _held_out_filler(model, tok):
    return sum(_filler_logp(model, tok, n) for n in HELD_OUT) / len(HELD_OUT)


def test_sft_trains_completion_tokens_only(tiny_model_dir):
    """Prompt-heavy rows: "Greet {name}. " + 40 filler characters ("xkxk..."), completion "hi". SFT must
    raise held-out log pi(hi) by > 5 nats, while the per-token log-prob of the filler in held-out prompts
    (~-4.6, uniform over ~100 characters, before) rises by < 0.5 nat: prompt tokens carry no loss. The
    same filler trained as a completion (the control: what a loss that ignored the completion mask
    would do) reaches > -1.5 nat per token."""
    from refeed.models import load

    model, tok = load(tiny_model_dir)
    rows = [{"prompt": [{"role": "user", "content": f"Greet {n}. {FILLER}"}], "completion": "hi"} for n in NAMES]
    hi0, filler0 = _held_out_logp(model, tok, "hi"), _held_out_filler(model, tok)
    train(model, tok, rows, build("sft", {}), _cfg())
    hi1, filler1 = _held_out_logp(model, tok, "hi"), _held_out_filler(model, tok)
    assert hi1 - hi0 > 5.0 and filler1 - filler0 < 0.5, (hi0, hi1, filler0, filler1)

    control, tok = load(tiny_model_dir)
    rows = [{"prompt": [{"role": "user", "content": f"Greet {n}. "}], "completion": f"{FILLER} hi"} for n in NAMES]
    train(control, tok, rows, build("sft", {}), _cfg())
    assert _held_out_filler(control, tok) > -1.5


def test_nft_learns_from_incorrect_answers(tiny_model_dir):
    """Sampled answers "hi" (correct, label 1) and "go" (incorrect, label 0), correct_rate 0.5. Both NFT
    (neg_weight 1) and RFT (neg_weight 0: positives only) raise held-out log pi(hi) by > 5 nats; only NFT
    also trains on the incorrect answer, so its held-out log pi(go) must fall by > 3 nats MORE than RFT's
    (RFT lowers it too, indirectly, through the softmax)."""
    from refeed.models import load

    rows = [
        {"prompt": _prompt(n), "completion": c, "label": lab, "correct_rate": 0.5}
        for n in NAMES
        for c, lab in (("hi", 1), ("go", 0))
    ]
    gains = {}
    for neg_weight in (1.0, 0.0):
        model, tok = load(tiny_model_dir)
        before = (_held_out_logp(model, tok, "hi"), _held_out_logp(model, tok, "go"))
        train(model, tok, rows, build("nft", {"neg_weight": neg_weight}), _cfg())
        gains[neg_weight] = (_held_out_logp(model, tok, "hi") - before[0], _held_out_logp(model, tok, "go") - before[1])
    assert gains[1.0][0] > 5.0 and gains[0.0][0] > 5.0, gains
    assert gains[0.0][1] - gains[1.0][1] > 3.0, gains


def test_dpo_raises_chosen_over_rejected(tiny):
    """Pairs "hi" > "go": held-out log pi(hi) - log pi(go) must rise by > 3 nats."""
    model, tok = tiny
    rows = [{"prompt": _prompt(n), "chosen": "hi", "rejected": "go"} for n in NAMES]
    before = _gap(model, tok, "hi", "go")
    train(model, tok, rows, build("dpo", {"beta": 0.5}), _cfg())
    assert _gap(model, tok, "hi", "go") - before > 3.0


def test_ipo_margin_settles_at_its_target_where_dpo_keeps_growing(tiny_model_dir):
    """Pairs "hi" > "go". IPO regresses the per-token log-ratio margin onto 1/(2 beta), so its held-out
    per-token gain in log pi(hi) - log pi(go) must land within 35% of that target for two betas
    (beta 0.5 -> 1 nat, beta 0.125 -> 4 nats: it follows the target, it does not just grow); DPO with
    beta 0.5 on the same data and steps has no finite optimum and goes past 3 nats (3x IPO's target)."""
    from refeed.models import load

    rows = [{"prompt": _prompt(n), "chosen": "hi", "rejected": "go"} for n in NAMES]
    gains = {}
    for name, beta in (("ipo", 0.5), ("ipo", 0.125), ("dpo", 0.5)):
        model, tok = load(tiny_model_dir)
        before = _per_token_gap(model, tok, "hi", "go")
        train(model, tok, rows, build(name, {"beta": beta}), _cfg())
        gains[name, beta] = _per_token_gap(model, tok, "hi", "go") - before
    assert abs(gains["ipo", 0.5] - 1.0) < 0.35 and abs(gains["ipo", 0.125] - 4.0) < 1.4, gains
    assert gains["dpo", 0.5] > 3.0, gains


def test_simpo_pushes_long_answers_less_than_dpo(tiny_model_dir):
    """Data prefers a long answer ("hi hi hi hi", 12 tokens) to a short one ("hi", 3 tokens). DPO's
    summed reward pushes every one of the long answer's tokens up with weight beta; SimPO's mean reward
    gives the whole long answer the same weight as the whole short one, and spends it on making the
    short answer unlikely. So DPO must raise held-out log pi(long) by > 5 nats more than SimPO (paper
    defaults beta 2, gamma 0.5) does, and SimPO's change in log pi(short) must be > 5 nats below DPO's.
    (Sampled lengths are not a usable measure: the random tiny model generates noise either way.)"""
    from refeed.models import load

    long, short = "hi hi hi hi", "hi"
    rows = [{"prompt": _prompt(n), "chosen": long, "rejected": short} for n in NAMES]
    gains = {}
    for name, params in (("dpo", {"beta": 0.5}), ("simpo", {"beta": 2.0, "gamma": 0.5})):
        model, tok = load(tiny_model_dir)
        before = (_held_out_logp(model, tok, long), _held_out_logp(model, tok, short))
        train(model, tok, rows, build(name, params), _cfg())
        gains[name] = (_held_out_logp(model, tok, long) - before[0], _held_out_logp(model, tok, short) - before[1])
    assert gains["dpo"][0] - gains["simpo"][0] > 5.0, gains
    assert gains["simpo"][1] < gains["dpo"][1] - 5.0, gains


def test_kto_with_kl_reference_point_learns_from_thumbs(tiny):
    """The default use_kl=True (z0 from mismatched (prompt, previous row's answer) sequences): thumbs-up
    on "hi", thumbs-down on "go": held-out log pi(hi) - log pi(go) rises by > 1 nat, and the KL estimate
    z0 the loss used is logged and becomes > 0 once the policy moves."""
    model, tok = tiny
    rows = [
        {"prompt": _prompt(n), "completion": c, "label": lab}
        for n in NAMES
        for c, lab in (("hi", 1), ("go", 0))
    ]
    before = _gap(model, tok, "hi", "go")
    result = train(model, tok, rows, build("kto", {"beta": 0.5}), _cfg())
    assert _gap(model, tok, "hi", "go") - before > 1.0
    assert result.history[0]["kto/kl"] == 0.0 and max(r["kto/kl"] for r in result.history) > 0.1


def test_curry_dpo_trains_stages_in_order_with_a_fresh_reference(tiny, tmp_path):
    """Ratings hi 2 > yo 1 > go 0 give per prompt stage 0 (hi vs go, the easy pair) and stage 1 (hi vs
    yo). The history must run every stage-0 step before any stage-1 step (12 each: 12 rows, batch 4,
    4 epochs); with iterative=True the reference is refreshed at stage 1 (reference_logps-stage1.pt
    written), so the first stage-1 step sees policy == reference: its DPO margin is 0 (|.| < 1e-3; with
    the stage-0 reference it would be several nats, as the last stage-0 step's margin > 1 shows).
    Held-out log pi(hi) - log pi(go) and log pi(hi) - log pi(yo) must both rise by > 1 nat."""
    from refeed.objectives.curry_dpo import curry_pairs

    model, tok = tiny
    rows = [r for n in NAMES for r in curry_pairs(_prompt(n), ["hi", "yo", "go"], [2.0, 1.0, 0.0])]
    before = (_gap(model, tok, "hi", "go"), _gap(model, tok, "hi", "yo"))
    history = train(model, tok, rows, build("curry_dpo", {"beta": 0.5}), _cfg(), run_dir=tmp_path).history
    stages = [r["stage"] for r in history]
    assert stages == [0] * 12 + [1] * 12, stages
    assert (tmp_path / "reference_logps.pt").is_file() and (tmp_path / "reference_logps-stage1.pt").is_file()
    assert history[11]["rewards/margin"] > 1.0 and abs(history[12]["rewards/margin"]) < 1e-3, history
    after = (_gap(model, tok, "hi", "go"), _gap(model, tok, "hi", "yo"))
    assert after[0] - before[0] > 1.0 and after[1] - before[1] > 1.0, (before, after)


def _thank(n):
    return [{"role": "user", "content": f"Thank {n}."}]


def _pet(n):
    return [{"role": "user", "content": f"Name {n}'s pet."}]


def test_c3po_changes_in_scope_behaviour_and_keeps_out_of_scope(tiny_model_dir):
    """A base model that answers "go" to every prompt (SFT first), then the feedback "greet with hi":
    in-scope rows (scope 0, "Greet {name}.": chosen "hi", rejected "go"), near-scope ("Thank {name}.",
    scope 1) and general ("Name {name}'s pet.", scope 2) rows whose chosen = rejected = the base answer.
    C3PO (paper defaults sigma_hard 0.1, sigma_soft 0.2) must raise the held-out in-scope gap
    log pi(hi) - log pi(go) by > 3 nats while held-out out-of-scope log pi(go) moves by < 0.5 nat per
    token; without the constraint (sigma_hard = sigma_soft = 0, DPO on the in-scope rows alone) the
    tiny model over-generalises and out-of-scope log pi(go) falls by > 2 nats per token."""
    import copy

    from refeed.models import load

    base, tok = load(tiny_model_dir)
    train(base, tok, [{"prompt": p(n), "completion": "go"} for n in NAMES for p in (_prompt, _thank, _pet)],
          build("sft", {}), _cfg(epochs=3, lr=5e-3))
    rows = [{"prompt": _prompt(n), "chosen": "hi", "rejected": "go", "scope": 0} for n in NAMES]
    rows += [{"prompt": p(n), "chosen": "go", "rejected": "go", "scope": s} for n in NAMES for p, s in ((_thank, 1), (_pet, 2))]

    def out_of_scope(model):  # per-token log pi(go) on held-out near-scope and general prompts
        return [_held_out_logp(model, tok, "go", p) / 3 for p in (_thank, _pet)]

    in0, out0 = _gap(base, tok, "hi", "go"), out_of_scope(base)
    drift = {}
    for sigma in (None, 0.0):
        model = copy.deepcopy(base)
        params = {"beta": 0.5} if sigma is None else {"beta": 0.5, "sigma_hard": sigma, "sigma_soft": sigma}
        train(model, tok, rows, build("c3po", params), _cfg())
        drift[sigma] = [a - b for a, b in zip(out_of_scope(model), out0, strict=True)]
        if sigma is None:
            in_gain = _gap(model, tok, "hi", "go") - in0
    assert in_gain > 3.0 and all(abs(d) < 0.5 for d in drift[None]), (in_gain, drift)
    assert all(d < -2.0 for d in drift[0.0]), drift


def _followup_logps(scorer, tok, prompt, answer, followup):
    """Log-probs of ``followup`` as the user's next turn after (prompt, answer), under ``scorer``."""
    history = tok.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
    row = {"prompt": history + "<|im_start|>user\n", "completion": followup}  # EOS = the turn's <|im_end|>
    b = collate(encode_rows(tok, [row], BatchKind.SFT, 256), tok.pad_token_id)
    with torch.no_grad():
        return naive_completion_logps(scorer, b["input_ids"], b["attention_mask"], b["completion_mask"])


def test_flr_trains_on_pairs_mined_by_follow_up_likelihood(tiny_model_dir):
    """A scorer LM learns how users reply: "thanks" after "hi", "rude" after "go" (SFT on those follow-up
    turns, train names). Per train prompt, flr_score (log pi(thanks) - log pi(rude) as the next user turn)
    ranks the sampled answers ["go", "yo", "hi"] and mine_pairs keeps best vs worst: every mined chosen
    must be "hi" (the scorer separates hi from go by > 0.5 on held-out names). FLR (DPO, beta 0.5) on
    the mined pairs must raise held-out log pi(hi) - log pi(rejected) by > 3 nats for each mined rejected."""
    from refeed.models import load
    from refeed.objectives.flr import flr_score, mine_pairs

    scorer, tok = load(tiny_model_dir)
    replies = [{"prompt": tok.apply_chat_template([*_prompt(n), {"role": "assistant", "content": y}], tokenize=False)
                + "<|im_start|>user\n", "completion": f} for n in NAMES for y, f in (("hi", "thanks"), ("go", "rude"))]
    train(scorer, tok, replies, build("sft", {}), _cfg(epochs=10))

    def flr(prompt, answer):
        pos, neg = (_followup_logps(scorer, tok, prompt, answer, f) for f in ("thanks", "rude"))
        return flr_score(pos, neg).item()

    assert all(flr(_prompt(n), "hi") - flr(_prompt(n), "go") > 0.5 for n in HELD_OUT)
    answers = ["go", "yo", "hi"]
    rows = [mine_pairs(_prompt(n), answers, [flr(_prompt(n), a) for a in answers]) for n in NAMES]
    assert all(r is not None and r["chosen"] == "hi" for r in rows), rows
    model, tok = load(tiny_model_dir)
    rejected = sorted({r["rejected"] for r in rows})
    before = [_gap(model, tok, "hi", r) for r in rejected]
    train(model, tok, rows, build("flr", {"beta": 0.5}), _cfg())
    gains = [_gap(model, tok, "hi", r) - b for r, b in zip(rejected, before, strict=True)]
    assert all(g > 3.0 for g in gains), dict(zip(rejected, gains, strict=True))
