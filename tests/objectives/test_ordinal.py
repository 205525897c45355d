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

from refeed.objectives import build
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
