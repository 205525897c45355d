"""RLOO on hand-sized tensors.

One prompt, K = 3 answers of 2, 1 and 2 tokens, rewards [1, 0, 0]. Leave-one-out baselines: answer 0
sees mean(0, 0) = 0, answers 1 and 2 see mean(1, 0) = 0.5, so A = [1, -0.5, -0.5] (= 3/2 (r - 1/3)).
With policy == old every ratio is 1 and the loss is -mean(A) = 0. Its gradient (REINFORCE):
    sequence ratio: every token of answer i gets -A_i / 3 -> -1/3, +1/6, +1/6 (not divided by length);
    token ratio:    -A_i / (3 |y_i|)                     -> -1/6 (2 tokens), +1/6 (1 token), +1/12.
Clip, eps = 0.3, answers 0 and 2 with log(1.5)/2 less under old on each token: sequence ratio 1.5.
    answer 0 (A = 1 > 0): clipped at 1.3, loss -1.3, no gradient; answer 2 (A = -0.5): unclipped, 1.5 * 0.5
    = 0.75; answer 1: 0.5. Loss (-1.3 + 0.5 + 0.75) / 3. Token ratios sqrt(1.5) = 1.2247 < 1.3: none clipped.
k3 with ref - logp = 0.1 on every token: e^0.1 - 0.1 - 1 = 0.0051709; the sequence loss adds beta * its sum
over the answer's tokens, the token loss beta * its mean.
"""

import math

import pytest
import torch

from refeed.objectives import build
from refeed.objectives.rloo import exp_capped, k3, loo_advantages
from tests.objectives.lp_online import batch, grp, shift

LP = [[[-1.0, -2.0], [-0.5, 0.0], [-0.3, -0.7]]]
LEN = [[2, 1, 2]]
R = [[1.0, 0.0, 0.0]]
HALF = math.log(1.5) / 2
K3 = math.exp(0.1) - 0.1 - 1


def test_leave_one_out_advantages_and_ragged_groups():
    r = torch.tensor(R, dtype=torch.float64)
    ok = torch.ones(1, 3, dtype=torch.bool)
    assert loo_advantages(r, ok).tolist() == [[1.0, -0.5, -0.5]]
    assert loo_advantages(r, ok)[0].tolist() == pytest.approx((1.5 * (r - r.mean()))[0].tolist())
    ragged = loo_advantages(torch.tensor([[1.0, 0.0, 5.0], [2.0, 7.0, 7.0]]),
                            torch.tensor([[True, True, False], [True, False, False]]))
    assert ragged.tolist() == [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]  # padding ignored; one answer: no baseline


@pytest.mark.parametrize(("importance", "grads"), [
    ("sequence", [[-1 / 3, -1 / 3], [1 / 6, 0.0], [1 / 6, 1 / 6]]),
    ("token", [[-1 / 6, -1 / 6], [1 / 6, 0.0], [1 / 12, 1 / 12]]),
])
def test_on_policy_loss_is_zero_and_the_gradient_is_reinforce(importance, grads):
    policy = grp(LP, LEN, requires_grad=True)
    out = build("rloo", {"importance": importance}).loss(policy, None, batch(grp(LP, LEN), R))
    assert out.loss.item() == pytest.approx(0.0, abs=1e-12)
    out.loss.backward()
    assert policy.values.grad[0].tolist() == [pytest.approx(g, abs=1e-12) for g in grads]


def test_sequence_ratio_is_clipped_where_token_ratios_are_not():
    old = shift(grp(LP, LEN), [[[-HALF], [0.0], [-HALF]]])
    policy = grp(LP, LEN, requires_grad=True)
    out = build("rloo", {"epsilon": 0.3}).loss(policy, None, batch(old, R))
    assert out.loss.item() == pytest.approx((-1.3 + 0.5 + 0.75) / 3)
    assert out.metrics["clip/high"].item() == pytest.approx(1 / 3) and out.metrics["clip/low"] == 0
    out.loss.backward()
    g = policy.values.grad[0]
    assert g[0].abs().sum() == 0  # clipped: no gradient
    assert g[2].tolist() == pytest.approx([0.25, 0.25])  # -A rho / 3 = 0.5 * 1.5 / 3
    tok = build("rloo", {"epsilon": 0.3, "importance": "token"}).loss(grp(LP, LEN), None, batch(old, R))
    s = math.sqrt(1.5)
    assert tok.loss.item() == pytest.approx((-s + 0.5 + 0.5 * s) / 3)
    assert tok.metrics["clip/high"] == 0


@pytest.mark.parametrize(("importance", "kl_term"), [("sequence", 0.5 * K3 * 5 / 3), ("token", 0.5 * K3)])
def test_k3_kl_to_the_reference(importance, kl_term):
    obj = build("rloo", {"beta": 0.5, "importance": importance})
    assert obj.needs.reference and not build("rloo").needs.reference  # beta = 0: no reference model
    ref = shift(grp(LP, LEN), 0.1)
    out = obj.loss(grp(LP, LEN), ref, batch(grp(LP, LEN), R))
    assert out.loss.item() == pytest.approx(kl_term)
    assert out.metrics["kl"].item() == pytest.approx(K3)


def test_normalized_advantages_are_whitened_over_the_batch():
    policy = grp(LP, LEN, requires_grad=True)
    build("rloo", {"normalize_advantages": True}).loss(policy, None, batch(grp(LP, LEN), R)).loss.backward()
    a = torch.tensor([1.0, -0.5, -0.5], dtype=torch.float64)
    a = (a - a.mean()) / (a.std() + 1e-4)
    assert policy.values.grad[0, :, 0].tolist() == pytest.approx((-a / 3).tolist())


def test_exp_capped_is_exp_then_its_tangent_and_k3_stays_finite():
    x = torch.tensor([-50.0, 0.0, 19.5, 20.0, 25.0, 1000.0], dtype=torch.float64, requires_grad=True)
    y = exp_capped(x)
    y.sum().backward()
    e20 = math.exp(20)
    assert y[:4].tolist() == pytest.approx(torch.exp(x[:4]).tolist())
    assert y[4:].tolist() == pytest.approx([e20 * 6, e20 * 981])
    assert x.grad.tolist() == pytest.approx([math.exp(-50), 1.0, math.exp(19.5), e20, e20, e20])
    lp = torch.tensor([-1000.0, -1.0, 0.0], requires_grad=True)  # float32, ref - logp up to 1000
    kl = k3(lp, torch.zeros(3))
    kl.sum().backward()
    assert torch.isfinite(kl).all() and torch.isfinite(lp.grad).all() and (lp.grad[:2] < 0).all()
    assert kl[1].item() == pytest.approx(math.e - 2, rel=1e-6) and kl[2].item() == 0.0
