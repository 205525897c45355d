"""LD-DPO closed form (METHODS.md section 4), beta = 0.1, shared length l_p = min(4, 5) = 4.

policy chosen [-1,-2,-3,-4] (sum -10), policy rejected [-2,-2,-2,-3 | -3],
ref chosen [-2,-3,-3,-3] (sum -11), ref rejected [-2,-2,-2,-2 | -1]:
    chosen ratio = -10 + 11 = 1 (no tail)
    rejected ratio = (-9 + 8) + alpha * (-3 + 1) = -1 - 2 alpha
    z = 2 + 2 alpha:  alpha=1 -> z=4, loss log(1+e^-0.4) = 0.5130152524 (= DPO)
                      alpha=0.5 -> z=3, 0.5543552445;  alpha=0 -> z=2, 0.5981388694
"""

import pytest

from refeed.objectives import PairLogps, build
from tests.objectives.lp import tokens


def _data(requires_grad=False):
    pol = PairLogps(
        tokens([[-1.0, -2, -3, -4]], requires_grad), tokens([[-2.0, -2, -2, -3, -3]], requires_grad)
    )
    ref = PairLogps(tokens([[-2.0, -3, -3, -3]]), tokens([[-2.0, -2, -2, -2, -1]]))
    return pol, ref


@pytest.mark.parametrize("alpha,expected", [(1.0, 0.5130152524), (0.5, 0.5543552445), (0.0, 0.5981388694)])
def test_closed_form(alpha, expected):
    pol, ref = _data()
    assert build("ld_dpo", {"beta": 0.1, "alpha": alpha}).loss(pol, ref).loss.item() == pytest.approx(
        expected, abs=1e-9
    )


def test_alpha_one_equals_dpo_and_equal_lengths_equal_dpo_for_any_alpha():
    pol, ref = _data()
    assert build("ld_dpo", {"alpha": 1.0}).loss(pol, ref).loss.item() == pytest.approx(
        build("dpo").loss(pol, ref).loss.item()
    )
    pol = PairLogps(tokens([[-1.0, -2]]), tokens([[-3.0, -0.5]]))
    ref = PairLogps(tokens([[-2.0, -2]]), tokens([[-1.0, -1.0]]))
    for alpha in (0.0, 0.3):
        assert build("ld_dpo", {"alpha": alpha}).loss(pol, ref).loss.item() == pytest.approx(
            build("dpo").loss(pol, ref).loss.item()
        )


def test_gradient_favours_chosen_and_tail_is_scaled():
    pol, ref = _data(requires_grad=True)
    build("ld_dpo", {"alpha": 0.5}).loss(pol, ref).loss.backward()
    g = pol.rejected.values.grad[0]
    assert (pol.chosen.values.grad < 0).all() and (g > 0).all()
    assert g[4].item() == pytest.approx(0.5 * g[0].item())  # the token past l_p weighs alpha
