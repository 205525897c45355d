"""NFT closed form (METHODS.md section 29), r = correct_rate, R = pi / pi_old per token.

At R = 1 both token losses are 0; d loss_t / d log pi = -(1 - r) for a correct token and +r for an
incorrect one (r = 0.25: -0.75 and +0.25), i.e. GRPO with advantage 1[correct] - r. The batch is the
mean of per-sequence sums, so with B = 2 rows each gradient is halved: -0.375 and +0.125.
Away from R = 1 (r = 0.25):
    correct, log R = ln 2:    -ln 2 * 0.75                                  = -0.5198603854
    incorrect, log R = -ln 2: R = 0.5, proxy = (1 - 0.125) / 0.75 = 7/6, -ln(7/6) * 0.75 = -0.1156130099
    batch mean = (-0.5198603854 - 0.1156130099) / 2 = -0.3177366976
"""

import math

import pytest
import torch

from refeed.objectives import TokenLogps, build
from tests.objectives.lp import seq

BATCH = {"label": torch.tensor([1.0, 0.0]), "correct_rate": torch.tensor([0.25, 0.25])}


def test_zero_at_ratio_one_and_grpo_gradients():
    pol = seq([-1.0, -2.0], requires_grad=True)
    out = build("nft").loss(pol, seq([-1.0, -2.0]), BATCH)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-12)
    out.loss.backward()
    assert pol.values.grad[:, 0].tolist() == pytest.approx([-0.375, 0.125], abs=1e-9)


def test_closed_form_off_policy():
    pol = seq([-1.0 + math.log(2), -1.0 - math.log(2)])
    loss = build("nft").loss(pol, seq([-1.0, -1.0]), BATCH).loss.item()
    expected = (-math.log(2) * 0.75 - math.log(7 / 6) * 0.75) / 2
    assert expected == pytest.approx(-0.3177366976, abs=1e-9)
    assert loss == pytest.approx(expected, abs=1e-9)


def test_rft_limit_ignores_negatives():
    pol = seq([-1.0, -2.0], requires_grad=True)
    build("nft", {"neg_weight": 0.0}).loss(pol, seq([-1.0, -2.0]), BATCH).loss.backward()
    assert pol.values.grad[1, 0].item() == 0.0 and pol.values.grad[0, 0].item() < 0


def test_clamp_keeps_loss_finite_when_r_times_ratio_exceeds_one():
    """r = 0.98, log R = 1: r R = 2.66 > 1, so the proxy is negative; the clamp makes it 1 (value 0)."""
    pol = seq([0.0], requires_grad=True)
    out = build("nft").loss(
        pol, seq([-1.0]), {"label": torch.tensor([0.0]), "correct_rate": torch.tensor([0.98])}
    )
    assert out.loss.item() == pytest.approx(0.0, abs=1e-12)
    out.loss.backward()
    assert (
        torch.isfinite(pol.values.grad).all() and pol.values.grad.item() > 0
    )  # still pushes the negative down


def test_float32_log_ratio_below_minus_104_stays_finite():
    """exp(-200) underflows to 0 in float32: the code's form gives -log 0 = inf and a NaN gradient, on the
    incorrect row too. In log space the correct row's loss is 200 * (1 - r) and its gradient -(1 - r) / B."""
    pol = torch.tensor([[-200.0], [-200.0]], requires_grad=True)
    ref = torch.zeros(2, 1)
    mask = torch.ones(2, 1, dtype=torch.bool)
    out = build("nft").loss(TokenLogps(pol, mask), TokenLogps(ref, mask), BATCH)
    out.loss.backward()
    # correct: 200 * 0.75; incorrect: -log(1 / 0.75) * 0.75 (proxy 1 / (1 - r) as R -> 0)
    assert out.loss.item() == pytest.approx((150.0 + 0.75 * math.log(0.75)) / 2, rel=1e-6)
    assert pol.grad[:, 0].tolist() == pytest.approx([-0.375, 0.0], abs=1e-7)
