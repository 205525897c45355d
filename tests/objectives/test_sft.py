"""SFT closed form.

Rows with completion log-probs [-1, -3] and [-4]:
    sequence_mean: per-row NLL 2 and 4 -> loss (2 + 4) / 2 = 3.0
    sum:           per-row NLL 4 and 4 -> loss 4.0
    weight [1, 0.5] with sequence_mean: (2 + 0.5 * 4) / 2 = 2.0
"""

import pytest
import torch

from refeed.config import ConfigError
from refeed.objectives import build
from tests.objectives.lp import tokens


def test_closed_form_mean_and_sum():
    lp = tokens([[-1.0, -3.0], [-4.0]])
    assert build("sft").loss(lp, None, {}).loss.item() == pytest.approx(3.0, abs=1e-9)
    assert build("sft", {"reduction": "sum"}).loss(lp, None, {}).loss.item() == pytest.approx(4.0, abs=1e-9)
    w = {"weight": torch.tensor([1.0, 0.5])}
    assert build("sft").loss(lp, None, w).loss.item() == pytest.approx(2.0, abs=1e-9)


def test_certain_completion_has_zero_loss():
    assert build("sft").loss(tokens([[0.0, 0.0], [0.0]]), None, {}).loss.item() == 0.0


def test_gradient_raises_completion_likelihood_and_ignores_padding():
    lp = tokens([[-1.0, -3.0], [-4.0]], requires_grad=True)
    build("sft").loss(lp, None, {}).loss.backward()
    g = lp.values.grad
    assert (g[lp.mask] < 0).all()
    assert g[~lp.mask].abs().sum() == 0
    # sequence_mean: d/d logp = -1 / (B * |y|): -1/4 on row 0's two tokens, -1/2 on row 1's one
    assert g[0, 0].item() == pytest.approx(-0.25) and g[1, 0].item() == pytest.approx(-0.5)


def test_unknown_reduction_is_refused():
    with pytest.raises(ConfigError, match="reduction"):
        build("sft", {"reduction": "max"})
