"""Curry-DPO: pairs from ratings, easiest first; the loss is DPO (METHODS.md sections 1 and 5).

Scores [5, 4, 3, 2] for R1..R4: the best (R1) against each worse one, by gap: (R1,R4,3) stage 0,
(R1,R3,2) stage 1, (R1,R2,1) stage 2. DPO closed form pc=-10, pr=-12, rc=rr=-11, beta=0.1:
z = 2, loss log(1 + e^-0.2) = 0.5981388694.
"""

import math

import pytest

from refeed.objectives import build
from refeed.objectives.curry_dpo import curry_pairs
from tests.objectives.lp import pair


def test_pairs_and_stages():
    rows = curry_pairs("q", ["R1", "R2", "R3", "R4"], [5, 4, 3, 2])
    assert [(r["chosen"], r["rejected"], r["margin"], r["stage"]) for r in rows] == [
        ("R1", "R4", 3.0, 0),
        ("R1", "R3", 2.0, 1),
        ("R1", "R2", 1.0, 2),
    ]
    assert curry_pairs("q", ["a", "b", "c"], [2, 2, 1]) == [
        {"prompt": "q", "chosen": "a", "rejected": "c", "margin": 1.0, "stage": 0}
    ]  # the tie makes no pair


def test_loss_is_dpo_closed_form_and_capabilities():
    obj = build("curry_dpo", {"beta": 0.1})
    assert obj.loss(pair([-10.0], [-12.0]), pair([-11.0], [-11.0]), {}).loss.item() == pytest.approx(
        0.5981388694, abs=1e-9
    )
    assert obj.needs.staged and obj.needs.refresh_reference and "stage" in obj.needs.extra_columns
    assert build("curry_dpo", {"iterative": False}).needs.refresh_reference is False


def test_policy_equal_reference_gives_log2():
    p = pair([-3.0], [-1.0])
    assert build("curry_dpo").loss(p, p, {}).loss.item() == pytest.approx(math.log(2))


def test_gradient_favours_chosen():
    p = pair([-10.0], [-12.0], requires_grad=True)
    build("curry_dpo").loss(p, pair([-11.0], [-11.0]), {}).loss.backward()
    assert p.chosen.values.grad.item() < 0 < p.rejected.values.grad.item()
