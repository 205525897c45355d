"""Plackett-Luce groupwise DPO closed form (METHODS.md section 32).

u = beta * h. beta = 1, h = [1, 0, -1] (best first):
    L = -(1 - log(e + 1 + e^-1)) - (0 - log(1 + e^-1)) = 0.4076059644 + 0.3132616875 = 0.7208676520
    top_k = 1 keeps the first term only: 0.4076059644
K = 2, beta = 0.1, h = [2, 0]: u = [0.2, 0], L = log(1 + e^-0.2) = 0.5981388694 (= DPO).
Policy == reference: u = 0, L = log 3 + log 2 = log 6 for K = 3.
"""

import math

import pytest

from refeed.objectives import build
from tests.objectives.lp import group

ZERO3 = group([[0.0, 0.0, 0.0]])


def test_closed_form_and_partial_ranking():
    assert build("plackett_luce", {"beta": 1.0}).loss(
        group([[1.0, 0.0, -1.0]]), ZERO3
    ).loss.item() == pytest.approx(0.7208676520, abs=1e-9)
    top1 = (
        build("plackett_luce", {"beta": 1.0, "top_k": 1}).loss(group([[1.0, 0.0, -1.0]]), ZERO3).loss.item()
    )
    assert top1 == pytest.approx(0.4076059644, abs=1e-9)


def test_two_answers_equal_dpo():
    assert build("plackett_luce", {"beta": 0.1}).loss(
        group([[2.0, 0.0]]), group([[0.0, 0.0]])
    ).loss.item() == pytest.approx(0.5981388694, abs=1e-9)


def test_order_matters_and_padding_is_inert():
    obj = build("plackett_luce", {"beta": 1.0})
    assert obj.loss(group([[-1.0, 0.0, 1.0]]), ZERO3).loss.item() > 0.7208676520 + 1
    padded = group([[1.0, 0.0, -1.0, 9.0]], valid=[[True, True, True, False]], requires_grad=True)
    out = obj.loss(padded, group([[0.0] * 4], valid=[[True, True, True, False]]))
    assert out.loss.item() == pytest.approx(0.7208676520, abs=1e-9)
    out.loss.backward()
    assert math.isfinite(padded.values.grad.abs().sum().item()) and padded.values.grad[0, 3].item() == 0.0


def test_policy_equal_reference_gives_log_k_factorial():
    g = group([[-3.0, -1.0, -2.0]])
    assert build("plackett_luce").loss(g, g).loss.item() == pytest.approx(math.log(6))


def test_gradient_favours_best_and_disfavours_worst():
    g = group([[0.0, 0.0, 0.0]], requires_grad=True)
    build("plackett_luce").loss(g, ZERO3).loss.backward()
    grad = g.values.grad[0, :, 0]
    assert grad[0] < 0 < grad[2]
