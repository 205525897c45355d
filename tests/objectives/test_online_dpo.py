"""Iterative DPO / DNO on hand-sized tensors.

Prompt 0, rewards [0.2, 0.9, 0.5, 0.1]: the pair is (answer 1, answer 3). Two-token answers whose policy
minus reference log-ratio sums are h = [0.2, 0.4, -0.2, -0.4], so z = 0.4 - (-0.4) = 0.8 and with beta = 0.1
the loss is -log sigma(0.08) = softplus(-0.08) = 0.6539. Prompt 1 has rewards all 0.5: a tie, skipped
(tie_frac 0.5), so the batch loss is prompt 0's alone. With the previous iterate as the reference (DNO) the
reference is the sampling log-probs: on policy z = 0, the loss is log 2 and d loss / d log pi(y+) = -beta / 2.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from refeed.objectives import Needs, build
from tests.objectives.lp_online import batch, grp, shift

POL = [[[-1.0, -0.5], [-0.7, -0.2], [-2.0, -0.1], [-0.3, -0.9]], [[-0.4, -0.4], [-1.1, -0.6], [-0.8, -0.2], [-0.5, -0.5]]]
H = [[[0.1], [0.2], [-0.1], [-0.2]], [[0.0], [0.3], [0.1], [-0.1]]]  # per token: sums 2x these
R = [[0.2, 0.9, 0.5, 0.1], [0.5, 0.5, 0.5, 0.5]]


def _ref():
    return shift(grp(POL), [[[-x[0]] for x in g] for g in H])  # ref = policy - h per token


def test_best_against_worst_is_dpo_and_ties_are_skipped():
    policy = grp(POL, requires_grad=True)
    out = build("online_dpo").loss(policy, _ref(), batch(grp(POL), R))
    assert out.loss.item() == pytest.approx(F.softplus(torch.tensor(-0.08, dtype=torch.float64)).item())
    assert out.loss.item() == pytest.approx(0.6539, abs=1e-4)
    assert out.metrics["online_dpo/tie_frac"].item() == 0.5 and out.metrics["online_dpo/pair_frac"].item() == 0.5
    assert out.metrics["rewards/margin"].item() == pytest.approx(0.08)
    out.loss.backward()
    g = policy.values.grad
    s = torch.sigmoid(torch.tensor(-0.08, dtype=torch.float64)).item()
    assert g[0, 1].tolist() == pytest.approx([-0.1 * s] * 2) and g[0, 3].tolist() == pytest.approx([0.1 * s] * 2)
    assert g[0, [0, 2]].abs().sum() == 0 and g[1].abs().sum() == 0  # the tied prompt: no gradient


def test_only_ties_give_a_zero_loss_and_min_margin_skips_close_pairs():
    policy = grp(POL, requires_grad=True)
    out = build("online_dpo").loss(policy, _ref(), batch(grp(POL), [[0.5] * 4, [1.0] * 4]))
    out.loss.backward()
    assert out.loss.item() == 0.0 and policy.values.grad.abs().sum() == 0
    assert out.metrics["online_dpo/tie_frac"].item() == 1.0
    close = build("online_dpo", {"min_margin": 0.9}).loss(grp(POL), _ref(), batch(grp(POL), R))
    assert close.loss.item() == 0.0 and close.metrics["online_dpo/pair_frac"].item() == 0.0  # gap 0.8 <= 0.9


def test_dno_takes_the_sampling_policy_as_the_reference():
    obj = build("online_dpo", {"reference_policy": "previous", "beta": 0.2})
    assert obj.needs == Needs(old_logps=True, rewards=True)  # no reference model: pi_t sampled the answers
    assert build("online_dpo").needs == Needs(reference=True, rewards=True)
    policy = grp(POL, requires_grad=True)
    out = obj.loss(policy, None, batch(grp(POL), R))
    assert out.loss.item() == pytest.approx(math.log(2))
    out.loss.backward()
    assert policy.values.grad[0, 1].tolist() == pytest.approx([-0.1, -0.1])  # -beta / 2
    moved = obj.loss(grp(POL), None, batch(shift(grp(POL), -0.25), R))  # pi moved 0.25 per token from pi_t
    assert moved.loss.item() == pytest.approx(math.log(2))  # the same shift on y+ and y-: z = 0
