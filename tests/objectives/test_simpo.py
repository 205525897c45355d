"""SimPO closed form (METHODS.md section 3).

sum_c=-10 over 4 tokens, sum_r=-12 over 5, beta=2.0, gamma/beta=0.5 so gamma = 1.0:
    beta * (mean_c - mean_r) - gamma = 2 * (-2.5 + 2.4) - 1.0 = -1.2
    loss = -log sigma(-1.2) = log(1 + e^1.2) = 1.4632824673
"""

import math

import pytest

from refeed.objectives import PairLogps, build
from tests.objectives.lp import tokens


def _pol(c=(-2.5,) * 4, r=(-2.4,) * 5, requires_grad=False):
    return PairLogps(tokens([list(c)], requires_grad), tokens([list(r)], requires_grad))


def test_closed_form():
    obj = build("simpo", {"beta": 2.0, "gamma": 1.0})
    assert obj.needs.reference is False
    assert obj.loss(_pol(), None).loss.item() == pytest.approx(1.4632824673, abs=1e-9)


def test_length_invariance_where_dpo_changes():
    """Repeating each answer's token pattern leaves means (SimPO) unchanged but doubles sums (DPO)."""
    c, r = (-1.0, -4.0), (-2.0, -2.0, -5.0)
    simpo = build("simpo", {"beta": 2.0, "gamma": 0.5})
    assert simpo.loss(_pol(c, r), None).loss.item() == pytest.approx(
        simpo.loss(_pol(c * 2, r * 2), None).loss.item()
    )
    dpo, zero = build("dpo"), _pol((0.0,) * 2, (0.0,) * 3)
    zero2 = _pol((0.0,) * 4, (0.0,) * 6)
    assert dpo.loss(_pol(c, r), zero).loss.item() != pytest.approx(
        dpo.loss(_pol(c * 2, r * 2), zero2).loss.item()
    )


def test_zero_margin_limit_is_log2():
    assert build("simpo", {"gamma": 0.0}).loss(
        _pol((-3.0,) * 2, (-3.0,) * 7), None
    ).loss.item() == pytest.approx(math.log(2))


def test_gradient_favours_chosen():
    pol = _pol(requires_grad=True)
    build("simpo").loss(pol, None).loss.backward()
    assert (pol.chosen.values.grad < 0).all() and (pol.rejected.values.grad > 0).all()
