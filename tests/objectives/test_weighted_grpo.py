"""Weighted GRPO + positive-negative pairing on hand-sized tensors.

Group-normalised advantages already amplify rare events (METHODS.md section 19, exact): 8 rollouts with one
success give it (1 - 1/8) / std = +2.4749 (std = sqrt(1/8), unbiased) and the failures -0.3536; one failure
in 8 mirrors it. Three groups of K = 4 one-token answers, rewards
    q+  [1, 0, 0, 0]  success rate 0.25 (hard-but-solvable): A = [1.5, -0.5, -0.5, -0.5]  (std 0.5)
    q-  [1, 1, 1, 0]  success rate 0.75 (easy-but-brittle):  A = [0.5, 0.5, 0.5, -1.5]
    mid [1, 1, 0, 0]  success rate 0.5  (neither):           A = +-0.866
(each over std + 1e-4). With w_plus = 2, w_minus = 3, the q+ success becomes 3.0 and the q- failure -4.5;
everything else is unchanged. At ratio 1 the GRPO reduction gives each answer's token the gradient -A' / 12
(12 answers), or -A' / 8 with ``pairing_only`` (the middle group leaves the loss and its normaliser).
"""

import math
import random

import pytest
import torch

from refeed.objectives import build
from refeed.objectives.grpo import GRPO, GRPOConfig, LossType, group_advantages
from refeed.objectives.weighted_grpo import select_pair
from tests.objectives.lp_online import batch, grp, shift

R = [[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
LP = [[[-1.0], [-2.0], [-0.5], [-0.1]], [[-0.3], [-0.7], [-1.2], [-0.9]], [[-0.4], [-0.6], [-2.0], [-0.2]]]


def _adv():
    return group_advantages(torch.tensor(R, dtype=torch.float64))


def test_group_normalisation_amplifies_rare_events_exactly():
    a = group_advantages(torch.tensor([[1.0] + [0.0] * 7, [0.0] + [1.0] * 7], dtype=torch.float64))
    s = math.sqrt(1 / 8)
    assert a[0, 0].item() == pytest.approx(0.875 / (s + 1e-4)) and 0.875 / s == pytest.approx(2.4749, abs=1e-4)
    assert a[0, 1].item() == pytest.approx(-0.125 / (s + 1e-4)) and a[1, 0].item() == pytest.approx(-a[0, 0].item())


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_weights_one_is_exactly_grpo(loss_type):
    """Off policy too (ratios 1.5 and 0.6, so both clips act): same loss, same gradient as grpo.py."""
    lp = [[[-1.0, -2.0], [-0.5, 0.0], [-0.3, -0.7]], [[-0.2, -0.1], [-3.0, -1.0], [-0.6, -0.4]]]
    lens, rewards = [[2, 1, 2], [1, 2, 2]], [[1.0, 0.0, 0.5], [0.0, 0.0, 1.0]]
    old = shift(grp(lp, lens), [[[-math.log(1.5)], [0.0], [0.2]], [[0.0], [-0.51], [0.0]]])
    p1, p2 = grp(lp, lens, requires_grad=True), grp(lp, lens, requires_grad=True)
    ours = build("weighted_grpo", {"loss_type": loss_type}).loss(p1, None, batch(old, rewards))
    theirs = GRPO(GRPOConfig(loss_type=LossType(loss_type))).loss(p2, None, batch(old, rewards))
    assert ours.loss.item() == pytest.approx(theirs.loss.item(), abs=1e-12)
    ours.loss.backward()
    theirs.loss.backward()
    torch.testing.assert_close(p1.values.grad, p2.values.grad, rtol=0, atol=1e-12)
    assert ours.metrics["clip/high"].item() == pytest.approx(theirs.metrics["clip/high"].item())


def test_rare_success_on_q_plus_and_rare_failure_on_q_minus_are_reweighted():
    policy = grp(LP, requires_grad=True)
    out = build("weighted_grpo", {"w_plus": 2.0, "w_minus": 3.0}).loss(policy, None, batch(grp(LP), R))
    w = torch.ones(3, 4, dtype=torch.float64)
    w[0, 0], w[1, 3] = 2.0, 3.0
    expected = _adv() * w
    assert expected[0, 0].item() == pytest.approx(3.0, abs=1e-3) and expected[1, 3].item() == pytest.approx(-4.5, abs=1e-3)
    out.loss.backward()
    torch.testing.assert_close(policy.values.grad[..., 0], -expected / 12, rtol=1e-12, atol=0)
    assert out.metrics["wgrpo/frac_hard"].item() == pytest.approx(1 / 3)
    assert out.metrics["wgrpo/frac_brittle"].item() == pytest.approx(1 / 3)


def test_pairing_only_drops_groups_that_are_neither_and_renormalises():
    policy = grp(LP, requires_grad=True)
    build("weighted_grpo", {"pairing_only": True}).loss(policy, None, batch(grp(LP), R)).loss.backward()
    g = policy.values.grad[..., 0]
    torch.testing.assert_close(g[:2], -_adv()[:2] / 8, rtol=1e-12, atol=0)
    assert g[2].abs().sum() == 0
    none = build("weighted_grpo", {"pairing_only": True}).loss(grp(LP), None, batch(grp(LP), [[0.0] * 4] * 3))
    assert none.loss.item() == 0.0  # no q+ or q- in the batch: nothing to learn, no NaN


def test_success_threshold_turns_graded_rewards_into_outcomes():
    r = [[0.9, 0.2, 0.1, 0.0], [0.9, 0.8, 0.7, 0.4], [0.9, 0.8, 0.2, 0.1]]  # same outcomes as R at 0.5
    a = build("weighted_grpo", {"w_plus": 2.0, "success_threshold": 0.5})
    m = a.loss(grp(LP), None, batch(grp(LP), r)).metrics
    assert m["wgrpo/frac_hard"].item() == pytest.approx(1 / 3) and m["wgrpo/frac_brittle"].item() == pytest.approx(1 / 3)
    m = build("weighted_grpo", {"success_threshold": 0.85}).loss(grp(LP), None, batch(grp(LP), r)).metrics
    assert m["wgrpo/frac_hard"].item() == 1.0  # one success (0.9) in every group


def test_select_pair_never_returns_an_unsolved_or_a_perfect_prompt():
    rng = random.Random(0)
    for _ in range(200):
        rates = {i: rng.choice([0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0]) for i in range(6)}
        pair = select_pair(rates, rng=rng)
        if pair is None:
            assert not any(0 < s <= 0.3 for s in rates.values()) or not any(0.7 <= s < 1 for s in rates.values())
            continue
        plus, minus = pair
        assert 0 < rates[plus] <= 0.3 and 0.7 <= rates[minus] < 1
    assert select_pair({"a": 0.0, "b": 1.0, "c": 0.2}) is None
