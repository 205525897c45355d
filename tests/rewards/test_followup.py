"""FLR's forward pass: only the follow-up's tokens count, and the score is positive minus negative."""

import pytest
import torch

from refeed.batch.logprobs import naive_completion_logps
from refeed.rewards.followup import encode_followup, flr_pairs, flr_rewards


def test_mask_covers_exactly_the_follow_up(tiny):
    _, tok = tiny
    ids, mask = encode_followup(tok, "2+2?", "4", "Thanks!")
    assert tok.decode([i for i, m in zip(ids, mask, strict=True) if m]) == "Thanks!"
    assert sum(mask) == len(tok("Thanks!", add_special_tokens=False)["input_ids"])


def _mean_logp(model, tok, prompt, answer, followup):
    ids, mask = encode_followup(tok, prompt, answer, followup)
    lp = naive_completion_logps(model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), torch.tensor([mask]))
    return (lp.values.sum() / lp.mask.sum()).item()


@pytest.mark.parametrize("batch_size", [64, 2])  # one batch; three batches of length-sorted, re-padded chats
def test_flr_equals_the_hand_computation(tiny, batch_size):
    """FLR = mean over positives of their token-mean log-prob minus the same over negatives (naive forward)."""
    model, tok = tiny
    pos, neg = ["Thanks!", "Great, right."], ["Wrong."]
    got = flr_rewards(model, tok, ["2+2?", "3+3?"], ["4", "7"], pos, neg, batch_size=batch_size)
    for i, (p, a) in enumerate((("2+2?", "4"), ("3+3?", "7"))):
        want = sum(_mean_logp(model, tok, p, a, f) for f in pos) / 2 - _mean_logp(model, tok, p, a, neg[0])
        assert abs(got[i].item() - want) < 1e-4


def test_pairs_put_the_highest_flr_answer_first(tiny):
    model, tok = tiny
    answers = ["4", "5", "44"]
    scores = flr_rewards(model, tok, ["2+2?"] * 3, answers, ["Thanks!"], ["Wrong."])
    (row,) = flr_pairs(model, tok, ["2+2?"], [answers], ["Thanks!"], ["Wrong."])
    assert row["chosen"] == answers[int(scores.argmax())] and row["rejected"] == answers[int(scores.argmin())]
    assert abs(row["margin"] - (scores.max() - scores.min()).item()) < 1e-5
