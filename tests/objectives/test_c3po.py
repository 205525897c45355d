"""C3PO composition (METHODS.md section 8), beta = 0.1, sigma_hard = 0.1, sigma_soft = 0.2.

Row 0 in-scope: pc=-10, pr=-12, rc=rr=-11 -> DPO 0.5981388694.
Row 1 near-scope: base answer tokens [-1, -3] -> mean-token CE 2.
Row 2 general: base answer token [-4] -> CE 4.
    loss = 0.5981388694 + 0.1 * 2 + 0.2 * 4 = 1.5981388694
sigma_hard = sigma_soft = 0 -> exactly DPO on the in-scope rows, whatever else the batch holds.
"""

import math

import pytest
import torch

from refeed.objectives import PairLogps, build
from tests.objectives.lp import seq, tokens

SCOPE = {"scope": torch.tensor([0.0, 1.0, 2.0])}


def _batch(requires_grad=False):
    chosen = tokens([[-10.0], [-1.0, -3.0], [-4.0]], requires_grad)
    rejected = tokens([[-12.0], [-1.0, -3.0], [-4.0]], requires_grad)
    ref = PairLogps(tokens([[-11.0], [-2.0, -2.0], [-4.0]]), tokens([[-11.0], [-2.0, -2.0], [-4.0]]))
    return PairLogps(chosen, rejected), ref


def test_closed_form():
    pol, ref = _batch()
    assert build("c3po").loss(pol, ref, SCOPE).loss.item() == pytest.approx(1.5981388694, abs=1e-9)


def test_zero_sigmas_give_dpo_exactly():
    pol, ref = _batch()
    got = build("c3po", {"sigma_hard": 0.0, "sigma_soft": 0.0}).loss(pol, ref, SCOPE).loss.item()
    dpo = (
        build("dpo")
        .loss(PairLogps(seq([-10.0]), seq([-12.0])), PairLogps(seq([-11.0]), seq([-11.0])))
        .loss.item()
    )
    assert got == pytest.approx(dpo, abs=1e-12)


def test_policy_equal_reference_in_scope_only_gives_log2():
    p = PairLogps(seq([-1.0, -2.0]), seq([-3.0, -4.0]))
    assert build("c3po").loss(p, p, {"scope": torch.tensor([0.0, 0.0])}).loss.item() == pytest.approx(
        math.log(2)
    )


def test_gradients_favour_chosen_in_scope_and_keep_base_answers_out_of_scope():
    pol, ref = _batch(requires_grad=True)
    out = build("c3po").loss(pol, ref, SCOPE)
    out.loss.backward()
    gc, gr = pol.chosen.values.grad, pol.rejected.values.grad
    assert gc[0, 0] < 0 < gr[0, 0]  # in-scope: revised answer up, base answer down
    assert (gc[1, :2] < 0).all() and gc[2, 0] < 0  # out of scope: the base answer's likelihood is held up
    assert gr[1:].abs().sum() == 0  # out-of-scope rows' rejected column is ignored
    assert float(out.metrics["c3po/kl_out_of_scope"]) == pytest.approx(
        0.0
    )  # row 1: (-2 - -2) mean 0; row 2: 0
