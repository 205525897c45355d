"""CausalRM closed form (METHODS.md section 14), f = 2, e01 = 0.2, e10 = 0.1.

l(2,1) = log(1 + e^-2) = 0.1269280110, l(2,0) = 2.1269280110, 1 - e01 - e10 = 0.7:
    l~(2,1) = (0.8 * 0.1269280110 - 0.1 * 2.1269280110) / 0.7 = -0.1587862747
    l~(2,0) = (0.9 * 2.1269280110 - 0.2 * 0.1269280110) / 0.7 =  2.6983565825
observed positive with propensity 0.5: -0.1587862747 / 0.5 = -0.3175725493;
with an unobserved row in the batch (weight 0, still counted): -0.3175725493 / 2 = -0.1587862747.
Unbiasedness: 0.9 l~(2,1) + 0.1 l~(2,0) = l(2,1); 0.8 l~(2,0) + 0.2 l~(2,1) = l(2,0).
"""

import math

import pytest
import torch

from refeed.objectives import build
from refeed.objectives.causal_rm import anchor_noise_rates, corrected_bce
from tests.objectives.lp import scores

NOISY = {"e01": 0.2, "e10": 0.1}


def test_closed_form_and_unbiasedness():
    l1, l0 = corrected_bce(torch.tensor(2.0, dtype=torch.float64), 0.2, 0.1)
    assert (l1.item(), l0.item()) == pytest.approx((-0.1587862747, 2.6983565825), abs=1e-9)
    assert (0.9 * l1 + 0.1 * l0).item() == pytest.approx(0.1269280110, abs=1e-9)
    assert (0.8 * l0 + 0.2 * l1).item() == pytest.approx(2.1269280110, abs=1e-9)
    batch = {
        "observed": torch.tensor([1.0, 0.0]),
        "label": torch.tensor([1.0, 0.0]),
        "propensity": torch.tensor([0.5, 0.3]),
    }
    out = build("causal_rm", NOISY).loss(scores([2.0, 2.0]), None, batch)
    assert out.loss.item() == pytest.approx(-0.3175725493 / 2, abs=1e-9)


def test_no_noise_full_observation_is_plain_bce_and_propensity_is_clipped():
    obj = build("causal_rm")
    one = {"observed": torch.tensor([1.0]), "label": torch.tensor([1.0]), "propensity": torch.tensor([1.0])}
    assert obj.loss(scores([2.0]), None, one).loss.item() == pytest.approx(0.1269280110, abs=1e-9)
    rare = dict(one, propensity=torch.tensor([0.01]))  # clipped to 0.1: weight 10, not 100
    assert obj.loss(scores([0.0]), None, rare).loss.item() == pytest.approx(10 * math.log(2))


def test_gradient_raises_observed_positive():
    s = scores([0.0, 0.0], requires_grad=True)
    batch = {
        "observed": torch.tensor([1.0, 0.0]),
        "label": torch.tensor([1.0, 1.0]),
        "propensity": torch.tensor([0.5, 0.5]),
    }
    build("causal_rm", NOISY).loss(s, None, batch).loss.backward()
    assert s.values.grad[0, -1, 0] < 0 and s.values.grad[1].abs().sum() == 0  # unobserved rows teach nothing


def test_anchor_noise_rates():
    p = torch.linspace(0.2, 0.9, 1001)  # lowest predictions ~ e01, highest ~ 1 - e10
    e01, e10 = anchor_noise_rates(p, q=1.0)
    assert (e01, e10) == pytest.approx((0.2, 0.1))
