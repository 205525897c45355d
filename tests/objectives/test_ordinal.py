"""GNOLR ordinal RM closed form (METHODS.md section 33).

m = [0.04, 0.0002], s = [4, 4], head outputs [0.5, 0.3]:
    a = [-ln 0.04, -ln 0.0002] = [3.2188758, 8.5171932]
    z = [4*0.5 - 3.2188758, 4*0.5 + 4*0.3 - 8.5171932] -> p_1 = 0.2281343450, p_2 = 0.0048825498
    level 0: 2 * -ln(1 - p_1)                                   = 0.5178895323
    level 1: step 1 -ln p_1, step 2 -ln(p_1 - p_2)              = 2.9772756089
    level 2: -ln p_1 - ln p_2                                   = 6.7999082908
Logits 0: p_k = sigma(-a_k) = m_k / (1 + m_k), the base rate of each level.
"""

import pytest
import torch

from refeed.objectives import TokenScores, build
from refeed.objectives.ordinal import base_odds_from_levels
from tests.objectives.lp import scores

CFG = {"base_odds": [0.04, 0.0002], "scales": [4, 4]}


@pytest.mark.parametrize("level,expected", [(0, 0.5178895323), (1, 2.9772756089), (2, 6.7999082908)])
def test_closed_form(level, expected):
    obj = build("ordinal", CFG)
    assert obj.needs.num_heads == 2
    out = obj.loss(scores([[0.5, 0.3]]), None, {"label": torch.tensor([float(level)])})
    assert out.loss.item() == pytest.approx(expected, abs=1e-9)


def test_zero_logits_predict_base_rates():
    obj = build("ordinal", CFG)
    p = obj.probs(scores([[0.0, 0.0]]))[0]
    assert p.tolist() == pytest.approx([0.04 / 1.04, 0.0002 / 1.0002])
    assert obj.reward(scores([[0.0, 0.0]])).item() == pytest.approx(0.04 / 1.04 + 0.0002 / 1.0002)


def test_gradient_raises_scores_of_high_levels_and_lowers_level_zero():
    s = scores([[0.5, 0.3]], requires_grad=True)
    build("ordinal", CFG).loss(s, None, {"label": torch.tensor([2.0])}).loss.backward()
    assert (s.values.grad[0, -1] < 0).all()  # level 2 reached: raise both cumulative logits
    s = scores([[0.5, 0.3]], requires_grad=True)
    build("ordinal", CFG).loss(s, None, {"label": torch.tensor([0.0])}).loss.backward()
    g = s.values.grad[0, -1]
    assert g[0] > 0 and g[1] == 0  # level 0 depends on p_1 only: lower the first logit


def test_base_odds_from_levels():
    assert base_odds_from_levels([0, 0, 1, 2], 2) == pytest.approx((1.0, 1 / 3))


def test_confidently_wrong_float32_rows_keep_learning():
    """Level 0 with z_1 = 30 and level 2 with z_2 = -30: in float32 1 - sigma(30) and sigma(-30) round
    to 0 (clamped at 1e-12: loss capped at 27.6, gradient 0). In log space the loss grows like |z| and
    the gradient w.r.t. the head output is about the scale s = 4 (halved by the batch mean of 2 rows)."""
    cfg = {"base_odds": [1.0, 1.0], "scales": [4.0, 4.0]}  # a = 0, so z_k = 4 * cumsum(l)
    v = torch.tensor([[[7.5, 0.0]], [[-3.75, -3.75]]], requires_grad=True)  # z = [30, 30], [-15, -30]
    s = TokenScores(v, torch.ones(2, 1, dtype=torch.bool))
    out = build("ordinal", cfg).loss(s, None, {"label": torch.tensor([0.0, 2.0])})
    out.loss.backward()
    assert out.loss.item() == pytest.approx((2 * 30 + 15 + 30) / 2, rel=1e-5)
    assert v.grad[0, 0, 0].item() == pytest.approx(4.0, rel=1e-5)  # 2 steps x s / 2 rows
    assert v.grad[1, 0].tolist() == pytest.approx([-4.0, -2.0], rel=1e-5)
