"""Fine-grained RM: dense reward and segment BCE (METHODS.md section 13).

Dense reward, L = 10 tokens: head 0 (relevance, w 0.3) judges ends 3 (ok) and 9 (not ok); head 1
(factuality, w 0.5) judges end 9 (ok); completeness raw 1.0 -> (1 + 0.4468) / 8.3012 * 0.3
    = 1.4468 / 8.3012 * 0.3 = 0.174288055 * 0.3 = 0.0522864164
    r = [0, 0, 0, 0.3, 0, 0, 0, 0, 0, -0.3 + 0.5 + 0.0522864164 = 0.2522864164]
(METHODS.md prints 0.25228583, 6e-7 off: its constants mean -0.4468 / std 8.3012 give the value above.)
Loss: one row labelled at (t=1, h=0) label 1 and (t=2, h=1) label 0, head outputs 2 there:
    (log(1 + e^-2) + log(1 + e^2)) / 2 = (0.1269280110 + 2.1269280110) / 2 = 1.1269280110
"""

import math

import pytest
import torch

from refeed.objectives import TokenScores, build
from refeed.objectives.fine_grained import dense_rewards, normalize_preference_score


def test_dense_reward_closed_form_and_weight_isolation():
    ends = torch.zeros(1, 10, 2, dtype=torch.bool)
    ok = torch.zeros(1, 10, 2, dtype=torch.bool)
    ends[0, 3, 0] = ends[0, 9, 0] = ends[0, 9, 1] = True
    ok[0, 3, 0] = ok[0, 9, 1] = True
    mask = torch.ones(1, 10, dtype=torch.bool)
    final = normalize_preference_score(torch.tensor([1.0], dtype=torch.float64))
    r = dense_rewards(ok, ends, torch.tensor([0.3, 0.5], dtype=torch.float64), mask, final)
    assert r[0].tolist() == pytest.approx([0, 0, 0, 0.3, 0, 0, 0, 0, 0, 0.2522864164], abs=1e-9)
    r0 = dense_rewards(ok, ends, torch.tensor([0.3, 0.0], dtype=torch.float64), mask)
    assert r0[0].tolist() == pytest.approx([0, 0, 0, 0.3, 0, 0, 0, 0, 0, -0.3])  # only head 1's entry moved


def _row(value=2.0, requires_grad=False):
    v = torch.full((1, 3, 2), 50.0, dtype=torch.float64)  # unlabelled entries: large, must be ignored
    v[0, 1, 0] = v[0, 2, 1] = value
    labels = torch.zeros(1, 3, 2)
    labels[0, 1, 0] = 1.0
    seg = torch.zeros(1, 3, 2, dtype=torch.bool)
    seg[0, 1, 0] = seg[0, 2, 1] = True
    return TokenScores(v.requires_grad_(requires_grad), torch.ones(1, 3, dtype=torch.bool)), {
        "segment_labels": labels,
        "segment_mask": seg,
    }


def test_loss_closed_form_and_zero_logit_limit():
    s, batch = _row()
    obj = build("fine_grained")
    assert obj.needs.num_heads == 2 and obj.needs.dense_reward
    assert obj.loss(s, None, batch).loss.item() == pytest.approx(1.1269280110, abs=1e-9)
    s0, batch0 = _row(0.0)
    assert obj.loss(s0, None, batch0).loss.item() == pytest.approx(math.log(2))
    assert obj.reward(s, batch)[0].tolist() == pytest.approx(
        [0.0, 0.3, 0.5]
    )  # both heads say "ok" (logit 2 > 0)


def test_gradient_follows_labels_and_skips_unlabelled():
    s, batch = _row(0.0, requires_grad=True)
    build("fine_grained").loss(s, None, batch).loss.backward()
    g = s.values.grad[0]
    assert g[1, 0] < 0 < g[2, 1]
    assert g.abs().sum() == g[1, 0].abs() + g[2, 1].abs()
