"""PF-PPO filtration on hand-sized tensors (METHODS.md section 20).

Rewards [0.2, 0.9, 0.5, 0.1] of one prompt: bw (best-worst) keeps [0, 1, 0, 1]; bon [0, 1, 0, 0];
br (best + one random other, in expectation) [1/3, 1, 1/3, 1/3]; pow (|r|^2) [0.04, 0.81, 0.25, 0.01].
Advantages come from the whole group, A = (r - 0.425) / (std + 1e-4), std = 0.3594 (unbiased); at ratio 1
the weighted mean over answers gives each kept token -w_i A_i / sum(w) (one-token answers).
"""

import math

import pytest
import torch

from refeed.objectives import build
from refeed.objectives.grpo import GRPO, GRPOConfig, group_advantages
from refeed.objectives.pf_ppo import FilterMode, filter_weights, filtered_r2
from tests.objectives.lp_online import batch, grp, shift

R = [[0.2, 0.9, 0.5, 0.1]]
LP = [[[-1.0], [-2.0], [-0.5], [-0.1]]]
OK = torch.ones(1, 4, dtype=torch.bool)


@pytest.mark.parametrize(("mode", "weights"), [
    ("bw", [0, 1, 0, 1]), ("bon", [0, 1, 0, 0]), ("br", [1 / 3, 1, 1 / 3, 1 / 3]),
    ("pow", [0.04, 0.81, 0.25, 0.01]), ("none", [1, 1, 1, 1]),
])
def test_filter_weights_of_each_mode(mode, weights):
    w = filter_weights(torch.tensor(R, dtype=torch.float64), OK, FilterMode(mode))
    assert w[0].tolist() == pytest.approx(weights)


def test_ties_and_padding():
    bw = FilterMode.BW
    same = filter_weights(torch.full((1, 4), 0.5), OK, bw)
    assert same.tolist() == [[1, 0, 0, 1]]  # all equal: the first as best, the last as worst
    binary = filter_weights(torch.tensor([[1.0, 0.0, 1.0, 0.0]]), OK, bw)
    assert binary.tolist() == [[1, 0, 0, 1]]
    ragged = torch.tensor([[True, True, False, False], [True, False, False, False]])
    w = filter_weights(torch.tensor([[0.1, 0.2, 5.0, -5.0], [3.0, 9.0, -9.0, 0.0]]), ragged, bw)
    assert w.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]  # padding is never best or worst; one answer: itself
    assert filter_weights(torch.tensor([[3.0, 9.0, -9.0, 0.0]]), ragged[1:], FilterMode.BR).tolist() == [[1, 0, 0, 0]]


@pytest.mark.parametrize("mode", ["bw", "br", "pow"])
def test_loss_is_the_weighted_grpo_loss_with_whole_group_advantages(mode):
    policy = grp(LP, requires_grad=True)
    out = build("pf_ppo", {"mode": mode}).loss(policy, None, batch(grp(LP), R))
    r = torch.tensor(R, dtype=torch.float64)
    a, w = group_advantages(r), filter_weights(r, OK, FilterMode(mode))
    assert out.loss.item() == pytest.approx(float(-(w * a).sum() / w.sum()))
    out.loss.backward()
    torch.testing.assert_close(policy.values.grad[..., 0], -w * a / w.sum(), rtol=1e-12, atol=0)
    assert out.metrics["pf/kept_frac"].item() == pytest.approx(float((w > 0).float().mean()))


def test_mode_none_is_grpo_off_policy_too():
    lp = [[[-1.0, -2.0], [-0.5, 0.0], [-0.3, -0.7]]]
    old = shift(grp(lp, [[2, 1, 2]]), [[[-math.log(1.5)], [0.3], [0.0]]])
    p1, p2 = grp(lp, [[2, 1, 2]], requires_grad=True), grp(lp, [[2, 1, 2]], requires_grad=True)
    ours = build("pf_ppo", {"mode": "none"}).loss(p1, None, batch(old, [[1.0, 0.0, 0.4]]))
    theirs = GRPO(GRPOConfig()).loss(p2, None, batch(old, [[1.0, 0.0, 0.4]]))
    assert ours.loss.item() == pytest.approx(theirs.loss.item(), abs=1e-12)
    ours.loss.backward()
    theirs.loss.backward()
    torch.testing.assert_close(p1.values.grad, p2.values.grad, rtol=0, atol=1e-12)


def test_r2_on_best_worst_samples_beats_all_samples_when_the_reward_is_noisy_in_the_middle():
    """A reward model exact at each group's extremes and noisy in between (kept between them): the
    best-worst filter keeps exactly the reliable samples, so its R^2 is 1 and above that of all samples."""
    g = torch.Generator().manual_seed(0)
    true = torch.rand(200, 8, generator=g, dtype=torch.float64)
    lo, hi = true.amin(1, keepdim=True), true.amax(1, keepdim=True)
    noisy = (true + 0.5 * torch.randn(200, 8, generator=g, dtype=torch.float64)).clamp(lo + 1e-6, hi - 1e-6)
    rm = torch.where((true == lo) | (true == hi), true, noisy)
    ok = torch.ones(200, 8, dtype=torch.bool)
    everything = filtered_r2(rm, true, ok.double())
    best_worst = filtered_r2(rm, true, filter_weights(rm, ok, FilterMode.BW))
    assert best_worst == pytest.approx(1.0) and everything < 0.9, (best_worst, everything)
