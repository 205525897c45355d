"""GRPO and its knobs on hand-sized tensors.

One prompt, K = 2 answers: answer 0 (2 tokens) has reward 1, answer 1 (1 token) reward 0. Group mean 0.5,
unbiased std sqrt(0.25 + 0.25) = 0.70711, so A = +-0.5 / (0.70711 + 1e-4) = +-0.70700.
With policy == old, every ratio is 1 and each token's loss is -A:
    grpo    : mean over each answer's tokens, then over answers: (-A + A) / 2 = 0;
              d loss / d logp = -A / (2 tokens * 2 answers) = -0.17675 on answer 0, +A / 2 = +0.35350 on answer 1.
    dapo    : token level, (-A - A + A) / 3 tokens = -A / 3 = -0.23567.
    dr_grpo : (-A) / (2 answers * max_completion_length 4) = -0.08838.
Clip-higher: old = policy - log 1.5 on answer 0 gives ratio 1.5 > 1 + 0.2 with A > 0: clipped at 1.2, so
those tokens lose -1.2 A each and get no gradient; 2 of 3 tokens clipped high.
k3 KL with ref - logp = 0.1 on every token: e^0.1 - 0.1 - 1 = 0.0051709.
"""

import math

import pytest
import torch

from refeed.objectives.base import GroupLogps, Needs
from refeed.objectives.grpo import GRPO, GRPOConfig, Importance, LossType, group_advantages

A = 0.5 / (math.sqrt(0.5) + 1e-4)


def _group(values, requires_grad=False):
    v = torch.tensor([values], dtype=torch.float64, requires_grad=requires_grad)  # (1, 2, 2)
    mask = torch.tensor([[[True, True], [True, False]]])
    return GroupLogps(values=v * mask if not requires_grad else v, mask=mask, valid=torch.ones(1, 2, dtype=torch.bool))


def _batch(old, rewards=(1.0, 0.0), truncated=(False, False)):
    return {"old_logps": old, "rewards": torch.tensor([rewards], dtype=torch.float64),
            "group_valid": torch.ones(1, 2, dtype=torch.bool), "truncated": torch.tensor([truncated])}


LP = [[-1.0, -2.0], [-0.5, 0.0]]


def test_advantages_are_group_normalised_and_dr_grpo_drops_the_std():
    r = torch.tensor([[1.0, 0.0], [3.0, 3.0]], dtype=torch.float64)
    assert group_advantages(r).tolist()[0] == pytest.approx([A, -A])
    assert group_advantages(r).tolist()[1] == [0.0, 0.0]  # an all-equal group has no signal
    assert group_advantages(r, scale=False).tolist()[0] == [0.5, -0.5]


@pytest.mark.parametrize(("loss_type", "expected"), [(LossType.GRPO, 0.0), (LossType.DAPO, -A / 3), (LossType.DR_GRPO, -A / 8)])
def test_loss_reductions_closed_form(loss_type, expected):
    obj = GRPO(GRPOConfig(loss_type=loss_type, max_completion_length=4))
    out = obj.loss(_group(LP), None, _batch(_group(LP)))
    assert out.loss.item() == pytest.approx(expected, abs=1e-9)
    assert out.metrics["clip/low"] == 0 and out.metrics["clip/high"] == 0


def test_gradient_raises_the_rewarded_answer_and_lowers_the_other():
    policy = _group(LP, requires_grad=True)
    GRPO(GRPOConfig()).loss(policy, None, _batch(_group(LP))).loss.backward()
    g = policy.values.grad[0]
    assert g[0, 0].item() == pytest.approx(-A / 4) and g[0, 1].item() == pytest.approx(-A / 4)
    assert g[1, 0].item() == pytest.approx(A / 2) and g[1, 1].item() == 0.0  # padding gets nothing


def test_clip_higher_stops_the_gradient_of_over_ratio_tokens():
    old = _group([[-1.0 - math.log(1.5), -2.0 - math.log(1.5)], [-0.5, 0.0]])
    policy = _group(LP, requires_grad=True)
    out = GRPO(GRPOConfig(loss_type=LossType.DAPO)).loss(policy, None, _batch(old))
    assert out.loss.item() == pytest.approx((-1.2 * A * 2 + A) / 3)
    assert out.metrics["clip/high"].item() == pytest.approx(2 / 3)
    out.loss.backward()
    assert policy.values.grad[0, 0].abs().sum() == 0
    wide = GRPO(GRPOConfig(loss_type=LossType.DAPO, epsilon_high=0.6)).loss(_group(LP), None, _batch(old))
    assert wide.loss.item() == pytest.approx((-1.5 * A * 2 + A) / 3)  # clip-higher: 1.5 < 1.6, unclipped


def test_sequence_ratio_gspo_uses_the_mean_token_log_ratio():
    old = _group([[-1.0 - 0.2, -2.0], [-0.5, 0.0]])  # answer 0: token log-ratios 0.2 and 0 -> mean 0.1
    out = GRPO(GRPOConfig(loss_type=LossType.DAPO, importance=Importance.SEQUENCE, epsilon=0.5)).loss(
        _group(LP), None, _batch(old))
    assert out.loss.item() == pytest.approx((-math.exp(0.1) * A * 2 + A) / 3)


def test_kl_to_the_reference_and_the_limit_beta_zero():
    obj = GRPO(GRPOConfig(beta=0.5, loss_type=LossType.DAPO))
    assert obj.needs == Needs(old_logps=True, rewards=True, reference=True)
    assert GRPO(GRPOConfig()).needs.reference is False  # beta = 0: no reference model at all (TRL's default)
    ref = _group([[-0.9, -1.9], [-0.4, 0.0]])
    out = obj.loss(_group(LP), ref, _batch(_group(LP)))
    kl = math.exp(0.1) - 0.1 - 1
    assert out.metrics["kl"].item() == pytest.approx(kl)
    assert out.loss.item() == pytest.approx(-A / 3 + 0.5 * kl)


def test_dapo_masks_drop_all_equal_groups_and_truncated_answers():
    obj = GRPO(GRPOConfig(loss_type=LossType.DAPO, mask_zero_std=True, mask_truncated=True))
    same = obj.loss(_group(LP), None, _batch(_group(LP), rewards=(1.0, 1.0)))
    assert same.loss.item() == 0.0 and same.metrics["frac_reward_zero_std"].item() == 1.0
    cut = obj.loss(_group(LP), None, _batch(_group(LP), truncated=(False, True)))
    assert cut.loss.item() == pytest.approx(-A)  # only answer 0's two tokens remain: (-A - A) / 2
