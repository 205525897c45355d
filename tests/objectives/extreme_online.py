"""Extreme-input cases of the online objectives for tests/objectives/test_extreme.py (``online_cases``).

GROUP rows (B, K, T) whose policy, sampling and reference log-probs are drawn like test_extreme's (even rows
from -1000 ... -0.01, so token log-ratios reach +-1e3 and sequence log-ratios +-4e3; odd rows in [-3, 0]).
Each formula is the objective's equation written out here in float64 with its documented guards:
``exp`` continued by its tangent above 20 (rloo.py), log R clamped above at 10 and NFT's clamp_preserve_grad
(value of the clamped argument, gradient of the unclamped one), softplus for DPO's -log sigma.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from refeed.objectives import GroupLogps

B, K, T = 6, 4, 4
LENGTHS = torch.tensor([[4, 3, 2, 1], [2, 4, 4, 3], [1, 1, 4, 2], [3, 2, 1, 4], [4, 4, 4, 4], [2, 3, 1, 2]])
MASK = torch.arange(T)[None, None, :] < LENGTHS[..., None]  # (B, K, T)
VALID = torch.ones(B, K, dtype=torch.bool)
# binary groups with rare events (q+ row 0 at 1/4, q- row 1 at 3/4), a tie, graded rewards with ties at the top
REWARDS = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0],
                        [0.2, 0.9, 0.9, 0.1], [0.0, 1.0, 0.0, 1.0], [0.5, -0.3, 0.5, -0.3]], dtype=torch.float64)
E20 = math.exp(20.0)


def _expc(x):
    return torch.where(x > 20, E20 * (1 + x - 20), torch.exp(x.clamp(max=20)))


def _k3(lp, ref):
    d = ref - lp
    return _expc(d) - d - 1


def _grp(v):
    return GroupLogps(v * MASK, MASK, VALID)


def _inputs(ref_key="rc"):
    def inputs(L):
        r = REWARDS.to(L["pc"].dtype)
        ref = _grp(L[ref_key]) if ref_key else None
        return _grp(L["pc"]), ref, {"old_logps": _grp(L["oc"]), "rewards": r, "group_valid": VALID,
                                    "truncated": torch.zeros(B, K, dtype=torch.bool)}

    return inputs


def _surrogate(lr, a, eps=0.2, high=0.2):
    rho = _expc(lr)
    return -torch.minimum(rho * a, rho.clamp(1 - eps, 1 + high) * a)


def _group_adv():
    r = REWARDS
    return (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)


def _rloo_formula(importance, beta):
    def formula(L):
        r = REWARDS
        a = r - (r.sum(1, keepdim=True) - r) / (K - 1)
        lr = (L["pc"] - L["oc"]) * MASK
        kl = _k3(L["pc"], L["rc"]) * MASK
        if importance == "sequence":
            per = _surrogate(lr.sum(-1), a) + beta * kl.sum(-1)
        else:
            per = ((_surrogate(lr, a[..., None]) + beta * kl) * MASK).sum(-1) / MASK.sum(-1)
        return per.mean()

    return formula


def _token_loss(adv, weight, beta, L):  # GRPO reduction, weighted mean over answers
    lr = (L["pc"] - L["oc"]) * MASK
    per = (_surrogate(lr, adv[..., None]) + beta * _k3(L["pc"], L["rc"])) * MASK
    return ((per.sum(-1) / MASK.sum(-1)) * weight).sum() / weight.sum()


def _wgrpo_formula(L):
    s = (REWARDS > 0.5).double().mean(1, keepdim=True)
    w = torch.ones(B, K, dtype=torch.float64)
    w = torch.where((s > 0) & (s <= 0.3) & (REWARDS > 0.5), 2.0, w)
    w = torch.where((s >= 0.7) & (s < 1) & (REWARDS <= 0.5), 3.0, w)
    return _token_loss(_group_adv() * w, torch.ones(B, K, dtype=torch.float64), 0.1, L)


def _pf_formula(L):
    w = torch.zeros(B, K, dtype=torch.float64)
    for b in range(B):
        row = REWARDS[b].tolist()
        best = row.index(max(row))
        worst = max(i for i, x in enumerate(row) if x == min(row) and i != best)
        w[b, best] = w[b, worst] = 1.0
    return _token_loss(_group_adv(), w, 0.1, L)


def _nft_formula(L):
    correct = REWARDS > 0.5
    rate = correct.double().mean(1)
    keep = (rate > 0) & (rate < 1)
    r = rate.clamp(0.02, 0.98)[:, None, None]
    lr = (L["pc"] - L["oc"]).clamp(max=10.0)
    x = lr.detach()
    pos_v, pos_g = -x, -torch.ones_like(x)  # clamp_positive 0: -log R, gradient -1
    rr = r * torch.exp(x)
    y = torch.clamp((1 - rr) / (1 - r), min=1.0)  # clamp_negative 1
    neg_v, neg_g = -torch.log(y), rr / ((1 - r) * y)
    c = correct[..., None]
    per = (torch.where(c, pos_v, neg_v) + torch.where(c, pos_g, neg_g) * (lr - x)) * (1 - r) * MASK
    return per.sum(-1)[keep].mean()


def _dpo_formula(ref_key, beta=0.1):
    def formula(L):
        h = ((L["pc"] - L[ref_key]) * MASK).sum(-1)  # (B, K)
        total, n = h.new_zeros(()), 0
        for b in range(B):
            row = REWARDS[b].tolist()
            if max(row) == min(row):
                continue  # a tie: no pair
            z = h[b, row.index(max(row))] - h[b, row.index(min(row))]
            total, n = total + F.softplus(-beta * z), n + 1
        return total / n

    return formula


def online_cases(Case, logps) -> dict[str, list]:
    """``Case`` and ``_logps`` come from test_extreme, so the cases share its dataclass and its inputs."""
    leaves = {"pc": logps(21, (B, K, T)), "oc": logps(22, (B, K, T)), "rc": logps(23, (B, K, T))}
    grad = ("pc",)
    return {
        "rloo": [Case(leaves, _inputs(), _rloo_formula(i, 0.1), {"importance": i, "beta": 0.1}, grad)
                 for i in ("sequence", "token")],
        "weighted_grpo": [Case(leaves, _inputs(), _wgrpo_formula, {"w_plus": 2.0, "w_minus": 3.0, "beta": 0.1}, grad)],
        "pf_ppo": [Case(leaves, _inputs(), _pf_formula, {"mode": "bw", "beta": 0.1}, grad)],
        "nft_online": [Case(leaves, _inputs(None), _nft_formula, {}, grad)],
        "online_dpo": [Case(leaves, _inputs(), _dpo_formula("rc"), {}, grad),
                       Case(leaves, _inputs(None), _dpo_formula("oc"), {"reference_policy": "previous"}, grad)],
    }
