"""On-policy NFT on hand-sized tensors (METHODS.md section 29).

One prompt, K = 4 one-token answers, rewards [1, 0, 0, 0]: correct rate r = 0.25. At R = 1 (policy == old)
every token loss is 0 and d loss / d log pi = -(1 - r) / 4 = -0.1875 on the correct answer and +r / 4 =
+0.0625 on each incorrect one (mean over the 4 answers): exactly GRPO's gradient with the un-scaled
advantage 1[correct] - r = [0.75, -0.25, -0.25, -0.25] (Dr.GRPO, scale_rewards=False), the paper's
equivalence. Off policy: the correct answer at log R = ln 2 loses -ln 2 * 0.75; an incorrect one at
log R = -ln 2 has proxy (1 - 0.125) / 0.75 = 7/6 and loses -ln(7/6) * 0.75; the loss is their sum / 4.
"""

import math

import pytest
import torch

from refeed.objectives import build
from refeed.objectives.grpo import GRPO, GRPOConfig
from tests.objectives.lp_online import batch, grp, shift

LP = [[[-1.0], [-2.0], [-0.5], [-0.1]]]
R = [[1.0, 0.0, 0.0, 0.0]]


def test_on_policy_gradient_is_grpo_with_advantage_correct_minus_rate():
    policy = grp(LP, requires_grad=True)
    out = build("nft_online").loss(policy, None, batch(grp(LP), R))
    assert out.loss.item() == pytest.approx(0.0, abs=1e-12)
    out.loss.backward()
    assert policy.values.grad[0, :, 0].tolist() == pytest.approx([-0.1875, 0.0625, 0.0625, 0.0625])
    twin = grp(LP, requires_grad=True)
    GRPO(GRPOConfig(scale_rewards=False)).loss(twin, None, batch(grp(LP), R)).loss.backward()
    torch.testing.assert_close(policy.values.grad, twin.values.grad, rtol=1e-12, atol=1e-15)


def test_closed_form_off_policy():
    old = shift(grp(LP), [[[-math.log(2)], [math.log(2)], [0.0], [0.0]]])  # log R = +ln 2, -ln 2, 0, 0
    out = build("nft_online").loss(grp(LP), None, batch(old, R))
    assert out.loss.item() == pytest.approx((-math.log(2) * 0.75 - math.log(7 / 6) * 0.75) / 4, abs=1e-12)
    assert out.metrics["nft/correct_rate"].item() == 0.25


def test_uniform_groups_are_dropped_unless_asked_to_keep_them():
    lp = LP + [[[-0.3], [-0.2], [-0.7], [-1.0]]]
    rewards = R + [[1.0, 1.0, 1.0, 1.0]]  # group 1: all correct, no signal
    policy = grp(lp, requires_grad=True)
    out = build("nft_online").loss(policy, None, batch(grp(lp), rewards))
    out.loss.backward()
    assert policy.values.grad[1].abs().sum() == 0 and out.metrics["nft/kept_frac"].item() == 0.5
    assert out.metrics["frac_reward_zero_std"].item() == 0.5
    assert policy.values.grad[0, :, 0].tolist() == pytest.approx([-0.1875, 0.0625, 0.0625, 0.0625])
    kept = grp(lp, requires_grad=True)
    build("nft_online", {"mask_zero_std": False}).loss(kept, None, batch(grp(lp), rewards)).loss.backward()
    assert kept.values.grad[1, :, 0].tolist() == pytest.approx([-0.02 / 8] * 4)  # r clamped to 0.98: 1 - r = 0.02
    nothing = grp(lp, requires_grad=True)
    none = build("nft_online").loss(nothing, None, batch(grp(lp), [[0.0] * 4, [1.0] * 4]))
    none.loss.backward()
    assert none.loss.item() == 0.0 and nothing.values.grad.abs().sum() == 0


def test_correct_threshold_and_neg_weight_zero_is_rft():
    policy = grp(LP, requires_grad=True)
    cfg = {"correct_threshold": 0.8, "neg_weight": 0.0}
    build("nft_online", cfg).loss(policy, None, batch(grp(LP), [[0.9, 0.7, 0.1, 0.0]])).loss.backward()
    g = policy.values.grad[0, :, 0]
    assert g[0].item() == pytest.approx(-0.75 / 4) and g[1:].abs().sum() == 0  # 0.7 is not correct at 0.8
