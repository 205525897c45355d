"""KTO closed form (METHODS.md section 7), beta = 0.1.

Desirable h = 1, undesirable h = -1, mismatched-pair log-ratios [0.3, 0.1] so z0 = mean = 0.2:
    desirable   1 - sigma(0.1 * (1 - 0.2))   = 1 - sigma(0.08) = 0.4800106598
    undesirable 1 - sigma(0.1 * (0.2 + 1))   = 1 - sigma(0.12) = 0.4700359482
    batch mean 0.4750233040
Policy == reference and z0 = 0: every term is 1 - sigma(0) = 0.5.
"""

import pytest
import torch

from refeed.objectives import UnpairedLogps, build
from refeed.objectives.kto import recommended_weights
from tests.objectives.lp import seq

LABELS = {"label": torch.tensor([1.0, 0.0])}


def test_closed_form():
    kl = seq([0.3, 0.1], requires_grad=True)
    pol = UnpairedLogps(seq([1.0, -1.0]), kl)
    ref = UnpairedLogps(seq([0.0, 0.0]), seq([0.0, 0.0]))
    out = build("kto", {"beta": 0.1}).loss(pol, ref, LABELS)
    assert out.loss.item() == pytest.approx(0.4750233040, abs=1e-9)
    assert float(out.metrics["kto/kl"]) == pytest.approx(0.2)
    assert not out.metrics["kto/kl"].requires_grad  # z0 is a constant


def test_negative_kl_is_clamped_and_use_kl_false_means_z0_zero():
    pol = UnpairedLogps(seq([1.0, -1.0]), seq([-5.0, -5.0]))
    ref = UnpairedLogps(seq([0.0, 0.0]), seq([0.0, 0.0]))
    clamped = build("kto").loss(pol, ref, LABELS).loss.item()
    no_kl = build("kto", {"use_kl": False})
    assert no_kl.needs.kl_completions is False and build("kto").needs.kl_completions is True
    assert clamped == pytest.approx(no_kl.loss(pol.completion, ref.completion, LABELS).loss.item())
    assert clamped == pytest.approx(1 - torch.sigmoid(torch.tensor(0.1, dtype=torch.float64)).item())


def test_policy_equal_reference_gives_one_half():
    pol = UnpairedLogps(seq([-3.0, -4.0]), seq([-2.0, -2.0]))
    assert build("kto").loss(pol, pol, LABELS).loss.item() == pytest.approx(0.5)


def test_gradient_raises_thumbs_up_lowers_thumbs_down():
    comp = seq([1.0, -1.0], requires_grad=True)
    pol = UnpairedLogps(comp, seq([0.3, 0.1]))
    ref = UnpairedLogps(seq([0.0, 0.0]), seq([0.0, 0.0]))
    build("kto").loss(pol, ref, LABELS).loss.backward()
    assert comp.values.grad[0, 0] < 0 and comp.values.grad[1, 0] > 0


def test_recommended_weights_for_imbalance():
    lo, hi = recommended_weights(10, 40)
    assert lo == pytest.approx(4.0) and hi == pytest.approx(16 / 3)
