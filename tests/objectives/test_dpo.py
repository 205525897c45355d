"""DPO closed form (METHODS.md section 1).

pc=-10, pr=-12, rc=-11, rr=-11, beta=0.1:
    z = (pc - pr) - (rc - rr) = 2 - 0 = 2
    loss = -log sigma(0.2) = log(1 + e^-0.2) = 0.5981388694
    chosen reward = beta (pc - rc) = 0.1, rejected reward = beta (pr - rr) = -0.1
label_smoothing 0.1: 0.9 * 0.5981388694 + 0.1 * log(1 + e^0.2) = 0.9 * 0.5981388694 + 0.1 * 0.7981388694
    = 0.5383249825 + 0.0798138869 = 0.6181388694
"""

import math

import pytest
import torch

from refeed.config import ConfigError
from refeed.objectives import PairLogps, TokenLogps, build


def tl(values, requires_grad=False):
    """Per-sequence log-probs as one-token sequences (float64), shape (B, 1)."""
    v = torch.tensor(values, dtype=torch.float64)[:, None].requires_grad_(requires_grad)
    return TokenLogps(v, torch.ones(len(values), 1, dtype=torch.bool))


def test_closed_form():
    out = build("dpo", {"beta": 0.1}).loss(PairLogps(tl([-10.0]), tl([-12.0])), PairLogps(tl([-11.0]), tl([-11.0])), {})
    assert out.loss.item() == pytest.approx(0.5981388694, abs=1e-9)
    assert float(out.metrics["rewards/chosen"]) == pytest.approx(0.1)
    assert float(out.metrics["rewards/rejected"]) == pytest.approx(-0.1)


def test_label_smoothing_closed_form():
    out = build("dpo", {"beta": 0.1, "label_smoothing": 0.1}).loss(
        PairLogps(tl([-10.0]), tl([-12.0])), PairLogps(tl([-11.0]), tl([-11.0])), {}
    )
    assert out.loss.item() == pytest.approx(0.6181388694, abs=1e-9)


def test_token_sums_are_used():
    """Two completion tokens (-4, -6) sum to -10: same loss as the one-token version."""
    chosen = TokenLogps(torch.tensor([[-4.0, -6.0, 0.0]], dtype=torch.float64), torch.tensor([[True, True, False]]))
    out = build("dpo", {"beta": 0.1}).loss(PairLogps(chosen, tl([-12.0])), PairLogps(tl([-11.0]), tl([-11.0])), {})
    assert out.loss.item() == pytest.approx(0.5981388694, abs=1e-9)


def test_beta_to_zero_limit_is_log2_whatever_the_margin():
    for margin in (-5.0, 0.0, 7.0):
        out = build("dpo", {"beta": 1e-9}).loss(PairLogps(tl([margin]), tl([0.0])), PairLogps(tl([0.0]), tl([0.0])), {})
        assert out.loss.item() == pytest.approx(math.log(2), abs=1e-8)


def test_policy_equal_to_reference_gives_log2():
    pol = PairLogps(tl([-3.0, -1.0]), tl([-2.0, -9.0]))
    out = build("dpo", {"beta": 0.5}).loss(pol, PairLogps(tl([-3.0, -1.0]), tl([-2.0, -9.0])), {})
    assert out.loss.item() == pytest.approx(math.log(2))


def test_gradient_favours_chosen_and_reference_gets_none():
    pc, pr = tl([-10.0], True), tl([-12.0], True)
    rc, rr = tl([-11.0]), tl([-11.0])
    build("dpo", {"beta": 0.1}).loss(PairLogps(pc, pr), PairLogps(rc, rr), {}).loss.backward()
    assert pc.values.grad.item() < 0  # descending the loss raises log pi(chosen)
    assert pr.values.grad.item() > 0  # ... and lowers log pi(rejected)
    assert rc.values.grad is None and rr.values.grad is None


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="beta must be > 0"):
        build("dpo", {"beta": 0})
    with pytest.raises(ConfigError, match="unknown config key 'objective.bta'"):
        build("dpo", {"bta": 0.1})
    with pytest.raises(ConfigError, match="unknown objective 'dpx'"):
        build("dpx")
