"""FLR: score, mining, and the DPO loss on mined pairs (METHODS.md section 16).

Positive follow-ups with token log-probs [-1, -1] and [-2] (token means -1, -2, mean -1.5);
negative [-3] and [-4, -4, -4] (means -3, -4, mean -3.5): FLR = -1.5 - (-3.5) = 2.0.
Loss: DPO closed form pc=-10, pr=-12, rc=rr=-11, beta=0.1: 0.5981388694.
"""

import math

import pytest

from refeed.objectives import build
from refeed.objectives.flr import flr_score, mine_pairs
from tests.objectives.lp import pair, tokens


def test_score_closed_form_order_invariance_and_mask():
    pos, neg = tokens([[-1.0, -1.0], [-2.0]]), tokens([[-3.0], [-4.0, -4.0, -4.0]])
    assert flr_score(pos, neg).item() == pytest.approx(2.0)
    assert flr_score(
        tokens([[-2.0], [-1.0, -1.0]]), tokens([[-4.0, -4.0, -4.0], [-3.0]])
    ).item() == pytest.approx(2.0)
    pos.values[1, 1] = -100.0  # a padding position: not a follow-up token
    assert flr_score(pos, neg).item() == pytest.approx(2.0)
    assert flr_score(neg, pos).item() == pytest.approx(-2.0)


def test_mining_picks_best_and_worst():
    row = mine_pairs("q", ["a", "b", "c"], [0.1, 2.0, -1.0])
    assert (row["chosen"], row["rejected"], row["margin"]) == ("b", "c", 3.0)
    assert mine_pairs("q", ["a", "b"], [1.0, 1.0]) is None and mine_pairs("q", ["a"], [1.0]) is None


def test_loss_is_dpo():
    obj = build("flr", {"beta": 0.1})
    assert obj.loss(pair([-10.0], [-12.0]), pair([-11.0], [-11.0]), {}).loss.item() == pytest.approx(
        0.5981388694, abs=1e-9
    )
    p = pair([-3.0], [-1.0])
    assert obj.loss(p, p, {}).loss.item() == pytest.approx(math.log(2))


def test_gradient_favours_chosen():
    p = pair([-10.0], [-12.0], requires_grad=True)
    build("flr").loss(p, pair([-11.0], [-11.0]), {}).loss.backward()
    assert p.chosen.values.grad.item() < 0 < p.rejected.values.grad.item()
