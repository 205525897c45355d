"""IPO closed form (METHODS.md section 2), beta = 0.1 so the target margin is 1/(2 beta) = 5.

Sums pc=-10, pr=-12, rc=-11, rr=-11 (chosen 4 tokens, rejected 5):
    official (sums):  z = (pc - pr) - (rc - rr) = 2,  loss (2 - 5)^2 = 9.0
    TRL (means):      z = (pc - rc)/4 - (pr - rr)/5 = 0.25 + 0.2 = 0.45,  loss (0.45 - 5)^2 = 20.7025
Policy == reference: z = 0, loss 25.
"""

import pytest

from refeed.objectives import PairLogps, build
from tests.objectives.lp import tokens


def _pairs(requires_grad=False):
    pol = PairLogps(tokens([[-2.5] * 4], requires_grad), tokens([[-2.4] * 5], requires_grad))
    ref = PairLogps(tokens([[-2.75] * 4]), tokens([[-2.2] * 5]))
    return pol, ref


def test_closed_form_both_normalisations():
    pol, ref = _pairs()
    assert build("ipo", {"beta": 0.1, "normalize": False}).loss(pol, ref).loss.item() == pytest.approx(
        9.0, abs=1e-9
    )
    assert build("ipo", {"beta": 0.1}).loss(pol, ref).loss.item() == pytest.approx(20.7025, abs=1e-9)


def test_policy_equal_reference_gives_target_squared():
    pol, _ = _pairs()
    assert build("ipo", {"beta": 0.1}).loss(pol, pol).loss.item() == pytest.approx(25.0, abs=1e-9)


def test_gradient_favours_chosen_below_target_and_reverses_above():
    pol, ref = _pairs(requires_grad=True)
    build("ipo", {"beta": 0.1}).loss(pol, ref).loss.backward()
    assert (pol.chosen.values.grad < 0).all() and (pol.rejected.values.grad > 0).all()
    pol, ref = _pairs(requires_grad=True)  # target 1/(2*10) = 0.05 < z = 0.45: pulled back
    build("ipo", {"beta": 10.0}).loss(pol, ref).loss.backward()
    assert (pol.chosen.values.grad > 0).all()
