"""Bradley-Terry reward model closed form; the score is the head at the LAST completion token
(the helper fills earlier tokens with 7.0, so reading any other position changes every number).

r_w = 2, r_l = 0.5: L = -log sigma(1.5) = log(1 + e^-1.5) = 0.2014132779
with margin 1: -log sigma(0.5) = log(1 + e^-0.5) = 0.4740769842
center_coef 0.01: 0.2014132779 + 0.01 * (2.5)^2 = 0.2639132779
"""

import math

import pytest
import torch

from refeed.objectives import Head, build
from tests.objectives.lp import pair_scores


def test_closed_form_margin_and_centring():
    s = pair_scores([2.0], [0.5])
    assert build("bradley_terry").needs.head is Head.SCORE
    assert build("bradley_terry").loss(s).loss.item() == pytest.approx(0.2014132779, abs=1e-9)
    got = (
        build("bradley_terry", {"use_margin": True})
        .loss(s, None, {"margin": torch.tensor([1.0])})
        .loss.item()
    )
    assert got == pytest.approx(0.4740769842, abs=1e-9)
    assert build("bradley_terry", {"center_coef": 0.01}).loss(s).loss.item() == pytest.approx(
        0.2639132779, abs=1e-9
    )


def test_equal_scores_give_log2_and_reward_reads_last_token():
    obj = build("bradley_terry")
    s = pair_scores([1.3], [1.3])
    assert obj.loss(s).loss.item() == pytest.approx(math.log(2))
    assert obj.reward(s.chosen).tolist() == [1.3]


def test_gradient_raises_chosen_score_only_at_last_token():
    s = pair_scores([0.0], [0.0], requires_grad=True)
    build("bradley_terry").loss(s).loss.backward()
    gc, gr = s.chosen.values.grad[0, :, 0], s.rejected.values.grad[0, :, 0]
    assert gc[-1] < 0 < gr[-1] and gc[:-1].abs().sum() == 0
