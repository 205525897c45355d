"""Pointwise binary RM closed form (RLUF P[Love] / RLBFF yes-no), f = the head at the last token.

f = 2: label 1 -> log(1 + e^-2) = 0.1269280110; label 0 -> log(1 + e^2) = 2.1269280110;
batch of both: 1.1269280110; pos_weight 3 on the positive alone: 3 * 0.1269280110 = 0.3807840331.
f = 0: log 2 whatever the label.
"""

import math

import pytest
import torch

from refeed.objectives import build
from refeed.objectives.binary_rm import principle_prompt
from tests.objectives.lp import scores


def test_closed_form_and_pos_weight():
    both = build("binary_rm").loss(scores([2.0, 2.0]), None, {"label": torch.tensor([1.0, 0.0])})
    assert both.loss.item() == pytest.approx(1.1269280110, abs=1e-9)
    pos = build("binary_rm", {"pos_weight": 3.0}).loss(scores([2.0]), None, {"label": torch.tensor([1.0])})
    assert pos.loss.item() == pytest.approx(0.3807840331, abs=1e-9)


def test_zero_logit_gives_log2_and_reward_is_probability():
    obj = build("binary_rm")
    assert obj.loss(
        scores([0.0, 0.0]), None, {"label": torch.tensor([1.0, 0.0])}
    ).loss.item() == pytest.approx(math.log(2))
    assert obj.reward(scores([0.0])).item() == pytest.approx(0.5)


def test_gradient_sign_follows_the_label():
    s = scores([0.0, 0.0], requires_grad=True)
    build("binary_rm").loss(s, None, {"label": torch.tensor([1.0, 0.0])}).loss.backward()
    assert s.values.grad[0, -1, 0] < 0 < s.values.grad[1, -1, 0]


def test_principle_lives_in_the_prompt():
    assert principle_prompt("Write a haiku", "concise") != principle_prompt("Write a haiku", "accurate")
    assert "concise" in principle_prompt("Write a haiku", "concise")
