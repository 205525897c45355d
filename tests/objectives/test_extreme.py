"""Every registered objective at extreme inputs: token log-ratios up to |1e3| and score-head outputs up
to |1e3|. The objective runs in float32 and must give a finite loss, finite gradients and finite
metrics that match the formula computed here in float64 with a stable form (softplus for -log sigma,
log-sum-exp, log(-expm1) for log(1 - e^-g)), on the same float32-rounded inputs.

The test is parametrized over the registry: an objective registered without a case here fails.
Inputs mix rows far out (log-probs of -1000, -700, -104.5, -30) with moderate rows, so both the
saturated tails and the region where the gradient is O(1) are compared. Pure tensors, no model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F

from refeed.objectives import (
    OBJECTIVES,
    GroupLogps,
    PairLogps,
    PairScores,
    TokenLogps,
    TokenScores,
    UnpairedLogps,
    build,
)
from refeed.objectives.ordinal import MIN_GAP
from tests.objectives.extreme_online import online_cases

B, T, H, K = 6, 4, 3, 3
FAR = torch.tensor([-1000.0, -700.0, -104.5, -30.0, -1.0, -0.01], dtype=torch.float64)


def _logps(seed: int, shape=(B, T)) -> torch.Tensor:
    """Per-token log-probs (<= 0): even rows drawn from FAR (so log-ratios reach +-1e3), odd rows in [-3, 0]."""
    g = torch.Generator().manual_seed(seed)
    far = FAR[torch.randint(len(FAR), shape, generator=g)] * (
        1 + 0.01 * torch.rand(shape, generator=g, dtype=FAR.dtype)
    )
    near = -3 * torch.rand(shape, generator=g, dtype=FAR.dtype)
    odd = (torch.arange(shape[0]) % 2 == 1).view(-1, *[1] * (len(shape) - 1))
    return torch.where(odd, near, far)


def _scores(seed: int, shape=(B, T, H)) -> torch.Tensor:
    """Score-head outputs: even rows of magnitude 17..1000 with random signs, odd rows in [-2, 2]."""
    g = torch.Generator().manual_seed(seed)
    mag = torch.tensor([1000.0, 300.0, 40.0, 17.0], dtype=torch.float64)[torch.randint(4, shape, generator=g)]
    sign = torch.randint(2, shape, generator=g) * 2 - 1
    near = 4 * torch.rand(shape, generator=g, dtype=torch.float64) - 2
    odd = (torch.arange(shape[0]) % 2 == 1).view(-1, *[1] * (len(shape) - 1))
    return torch.where(odd, near, mag * sign)


def _mask(lengths, width=T) -> torch.Tensor:
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]  # (B, width) bool, right-padded


MASK_A = _mask([4, 3, 2, 4, 1, 3])
MASK_B = _mask([2, 4, 4, 1, 3, 4])


@dataclass
class Case:
    """Named leaf tensors (float64 values); ``grad`` names the differentiated ones. ``objective`` builds
    the loss inputs from leaves of either dtype; ``formula`` is the float64 reference loss."""

    leaves: dict[str, torch.Tensor]
    objective: Callable[[dict], tuple]
    formula: Callable[[dict], torch.Tensor]
    cfg: dict = field(default_factory=dict)
    grad: tuple[str, ...] = ("pc", "pr")


def _tok(v: torch.Tensor, m: torch.Tensor) -> TokenLogps:
    return TokenLogps(v * m, m)


def _sum(v, m):  # (B,) sum over completion tokens
    return (v * m).sum(-1)


def _mean(v, m):  # (B,) mean over completion tokens
    return _sum(v, m) / m.sum(-1)


def _last(v, m):  # (B, H) the score at each row's last completion token
    idx = m.sum(-1) - 1
    return v[torch.arange(v.shape[0]), idx]


def _masked_mean(x, keep):
    return (x * keep).sum() / keep.sum().clamp(min=1)


# ---- the preference family ----------------------------------------------------------------------

PAIR_LEAVES = {"pc": _logps(1), "rc": _logps(2), "pr": _logps(3), "rr": _logps(4)}


def _pair_inputs(L, extra=None):
    pol = PairLogps(_tok(L["pc"], MASK_A), _tok(L["pr"], MASK_B))
    ref = PairLogps(_tok(L["rc"], MASK_A), _tok(L["rr"], MASK_B))
    return pol, ref, dict(extra or {})


def _dpo_z(L):  # (B,) the DPO margin of log-ratio sums
    return (_sum(L["pc"], MASK_A) - _sum(L["rc"], MASK_A)) - (_sum(L["pr"], MASK_B) - _sum(L["rr"], MASK_B))


def _dpo_formula(beta, eps):
    def formula(L):
        z = _dpo_z(L)
        return ((1 - eps) * F.softplus(-beta * z) + eps * F.softplus(beta * z)).mean()

    return formula


def _ipo_formula(beta, normalize):
    def formula(L):
        def ratio(p, r, m):
            d = _sum(p, m) - _sum(r, m)
            return d / m.sum(-1) if normalize else d

        margin = ratio(L["pc"], L["rc"], MASK_A) - ratio(L["pr"], L["rr"], MASK_B)
        return ((margin - 1 / (2 * beta)) ** 2).mean()

    return formula


def _simpo_formula(L, beta=2.0, gamma=0.5, eps=0.1, sft=0.5):
    logits = beta * _mean(L["pc"], MASK_A) - beta * _mean(L["pr"], MASK_B) - gamma
    pref = ((1 - eps) * F.softplus(-logits) + eps * F.softplus(logits)).mean()
    return pref + sft * (-_mean(L["pc"], MASK_A)).mean()


def _ld_dpo_formula(L, beta=0.1, alpha=0.5):
    shared = torch.minimum(MASK_A.sum(-1), MASK_B.sum(-1))  # (B,)

    def ld(v, m):  # right-padded rows: the first ``shared`` positions are the shared part
        head = m & (torch.arange(T)[None, :] < shared[:, None])
        return (v * head).sum(-1) + alpha * (v * (m & ~head)).sum(-1)

    z = (ld(L["pc"], MASK_A) - ld(L["rc"], MASK_A)) - (ld(L["pr"], MASK_B) - ld(L["rr"], MASK_B))
    return F.softplus(-beta * z).mean()


SCOPE = torch.tensor([0.0, 0.0, 1.0, 2.0, 0.0, 1.0])


def _c3po_formula(L, beta=0.1, hard=0.1, soft=0.2):
    dpo = _masked_mean(F.softplus(-beta * _dpo_z(L)), SCOPE == 0)
    nll = -_mean(L["pc"], MASK_A)
    return dpo + hard * _masked_mean(nll, SCOPE == 1) + soft * _masked_mean(nll, SCOPE == 2)


# ---- unpaired rows: KTO, NFT, SFT ---------------------------------------------------------------

LABEL = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])
RATE = torch.tensor([0.25, 0.98, 0.5, 0.02, 0.7, 0.3])
UNPAIRED_LEAVES = {"pc": _logps(5), "rc": _logps(6), "pr": _logps(7), "rr": _logps(8)}  # pr/rr: the KL rows


def _kto_inputs(use_kl):
    def inputs(L):
        pol, ref = _tok(L["pc"], MASK_A), _tok(L["rc"], MASK_A)
        if use_kl:
            pol = UnpairedLogps(pol, _tok(L["pr"], MASK_B))
            ref = UnpairedLogps(ref, _tok(L["rr"], MASK_B))
        return pol, ref, {"label": LABEL}

    return inputs


def _kto_formula(use_kl, beta=0.1):
    def formula(L):
        kl = (_sum(L["pr"], MASK_B) - _sum(L["rr"], MASK_B)).mean().clamp(min=0).detach() if use_kl else 0.0
        h = _sum(L["pc"], MASK_A) - _sum(L["rc"], MASK_A)
        good = LABEL > 0.5
        return torch.where(good, torch.sigmoid(-beta * (h - kl)), torch.sigmoid(-beta * (kl - h))).mean()

    return formula


def _nft_inputs(L):
    return _tok(L["pc"], MASK_A), _tok(L["rc"], MASK_A), {"label": LABEL, "correct_rate": RATE}


def _nft_formula(neg_weight=1.0, clamp_neg=1.0, clamp_pos=0.0):
    """Each token's value and its gradient w.r.t. log R in closed form (the code's clamp_preserve_grad
    semantics: value of the clamped argument, gradient of the unclamped one), joined as v + g (lr - lr)."""

    def formula(L):
        lr = (L["pc"] - L["rc"]).clamp(max=10.0)
        r = RATE.double().clamp(0.02, 0.98)[:, None]
        x = lr.detach()
        log_y_pos = x.clamp(min=math.log(clamp_pos)) if clamp_pos > 0 else x
        pos_v, pos_g = -log_y_pos, -torch.exp(x - log_y_pos)  # -R / max(R, c) without forming R
        rr = r * torch.exp(x)  # r R; underflow to 0 is harmless below: nothing divides by it or logs it
        y = torch.clamp((1 - rr) / (1 - r), min=clamp_neg)
        neg_v, neg_g = -torch.log(y), rr / ((1 - r) * y)
        v = torch.where(LABEL[:, None] > 0.5, pos_v, neg_weight * neg_v)
        g = torch.where(LABEL[:, None] > 0.5, pos_g, neg_weight * neg_g)
        per_token = (v + g * (lr - x)) * (1 - r) * MASK_A
        return per_token.sum(-1).mean()

    return formula


WEIGHT = torch.tensor([1.0, 0.5, 2.0, 1.0, 0.0, 3.0])


def _sft_formula(reduction):
    def formula(L):
        nll = -(_mean(L["pc"], MASK_A) if reduction == "sequence_mean" else _sum(L["pc"], MASK_A))
        return (nll * WEIGHT).mean()

    return formula


# ---- groups: Plackett-Luce ----------------------------------------------------------------------

VALID = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=torch.bool)
GROUP_MASK = torch.stack([MASK_A, MASK_B, MASK_A.flip(0)], 1) & VALID[..., None]  # (B, K, T)
GROUP_LEAVES = {"pc": _logps(9, (B, K, T)), "rc": _logps(10, (B, K, T))}


def _group_inputs(L):
    def grp(v):
        return GroupLogps(v * GROUP_MASK, GROUP_MASK, VALID)

    return grp(L["pc"]), grp(L["rc"]), {}


def _pl_formula(beta, top_k):
    def formula(L):
        u = beta * ((L["pc"] - L["rc"]) * GROUP_MASK).sum(-1)  # (B, K)
        total = u.new_zeros(())
        for b in range(B):
            n = int(VALID[b].sum())
            for k in range(n - 1 if not top_k else min(n - 1, top_k)):
                total = total - (u[b, k] - torch.logsumexp(u[b, k:n], 0))
        return total / B

    return formula


# GRPO: old (sampling) log-probs near the policy's (answers are sampled from it), extreme log-prob values,
# rewards of magnitude 1e3 and an all-equal group (std 0).
GRPO_OFFSET = 0.3 * (torch.rand((B, K, T), generator=torch.Generator().manual_seed(11), dtype=torch.float64) - 0.5)
GRPO_REWARDS = torch.tensor([[1e3, -1e3, 0.0], [1.0, 1.0, 5.0], [2.0, 2.0, 2.0], [0.0, 3.0, 1.0],
                             [-1e3, 0.5, 1e3], [1.0, 0.0, 0.0]], dtype=torch.float64)


def _grpo_inputs(L):
    def grp(v):
        return GroupLogps(v * GROUP_MASK, GROUP_MASK, VALID)

    old = grp(L["pc"].detach() + GRPO_OFFSET.to(L["pc"].dtype))
    return grp(L["pc"]), None, {"old_logps": old, "rewards": GRPO_REWARDS.float(), "truncated": ~VALID}


def _grpo_formula(L):
    r = GRPO_REWARDS
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)  # (B, K)
    ratio = torch.exp((L["pc"] - (L["pc"].detach() + GRPO_OFFSET)) * GROUP_MASK)
    a = adv[..., None]
    per_token = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.2) * a) * GROUP_MASK
    per_answer = per_token.sum(-1) / GROUP_MASK.sum(-1).clamp(min=1)
    return per_answer.sum() / VALID.sum()


# ---- score heads --------------------------------------------------------------------------------


def _score_pair_inputs(extra):
    def inputs(L):
        return PairScores(TokenScores(L["pc"], MASK_A), TokenScores(L["pr"], MASK_B)), None, dict(extra)

    return inputs


def _score_inputs(extra):
    def inputs(L):
        return TokenScores(L["pc"], MASK_A), None, dict(extra)

    return inputs


MARGIN = torch.tensor([0.0, 2.0, 0.5, 1.0, 0.0, 3.0])


def _bt_formula(L, center=0.01):
    c, r = _last(L["pc"], MASK_A)[:, 0], _last(L["pr"], MASK_B)[:, 0]
    return F.softplus(-(c - r - MARGIN)).mean() + center * ((c + r) ** 2).mean()


def _binary_formula(L, pos_weight=3.0):
    x = _last(L["pc"], MASK_A)[:, 0]
    return ((pos_weight * LABEL * F.softplus(-x) + (1 - LABEL) * F.softplus(x)) * WEIGHT).mean()


OBSERVED = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
PROPENSITY = torch.tensor([0.05, 0.5, 0.3, 1.0, 0.9, 0.2])


def _causal_formula(L, e01=0.1, e10=0.2, clip=0.1):
    f = _last(L["pc"], MASK_A)[:, 0]
    bce1, bce0, den = F.softplus(-f), F.softplus(f), 1 - e01 - e10
    l1, l0 = ((1 - e01) * bce1 - e10 * bce0) / den, ((1 - e10) * bce0 - e01 * bce1) / den
    w = OBSERVED / PROPENSITY.clamp(min=clip, max=1.0)
    return (w * (LABEL * l1 + (1 - LABEL) * l0)).mean()


LEVEL = torch.tensor([0.0, 3.0, 1.0, 2.0, 3.0, 0.0])
ORDINAL_CFG = {"base_odds": [0.5, 0.05, 0.001], "scales": [4.0, 4.0, 2.0]}


def _ordinal_formula(L):
    """sum_k -log P_k(level): log(1 - p_1) = -softplus(z_1), log p_k = -softplus(-z_k) and
    log(p_j - p_{j+1}) = z_j + log(-expm1(-g_j)) - softplus(z_j) - softplus(z_{j+1}), g_j = z_j - z_{j+1}
    floored at MIN_GAP (the objective's documented floor for order violations)."""
    a = torch.tensor([-math.log(m) for m in ORDINAL_CFG["base_odds"]], dtype=torch.float64)
    z = (
        torch.cumsum(_last(L["pc"], MASK_A) * torch.tensor(ORDINAL_CFG["scales"], dtype=torch.float64), -1)
        - a
    )
    total = z.new_zeros(())
    for b in range(B):
        for k in range(1, K + 1):
            lv = min(int(LEVEL[b]), k)
            if lv == 0:
                total = total + F.softplus(z[b, 0])
            elif lv == k:
                total = total + F.softplus(-z[b, k - 1])
            else:
                zj, zn = z[b, lv - 1], z[b, lv]
                g = (zj - zn).clamp(min=MIN_GAP)
                total = total - (zj + torch.log(-torch.expm1(-g)) - F.softplus(zj) - F.softplus(zn))
    return total / B


SEG_MASK = torch.rand(B, T, H, generator=torch.Generator().manual_seed(11)) < 0.5
SEG_LABELS = (torch.rand(B, T, H, generator=torch.Generator().manual_seed(12)) < 0.5).float()


def _fine_grained_formula(L):
    labelled = SEG_MASK & MASK_A[..., None]
    x, y = L["pc"], SEG_LABELS.double()
    bce = (y * F.softplus(-x) + (1 - y) * F.softplus(x)) * labelled
    return (bce.sum((1, 2)) / labelled.sum((1, 2)).clamp(min=1)).mean()


SCORE_LEAVES = {"pc": _scores(13), "pr": _scores(14)}
SCORE_LEAVES_1 = {"pc": _scores(15, (B, T, 1)), "pr": _scores(16, (B, T, 1))}


CASES: dict[str, list[Case]] = {
    "sft": [
        Case(
            UNPAIRED_LEAVES,
            lambda L: (_tok(L["pc"], MASK_A), None, {"weight": WEIGHT}),
            _sft_formula(r),
            {"reduction": r},
            ("pc",),
        )
        for r in ("sequence_mean", "sum")
    ],
    "nft": [
        Case(UNPAIRED_LEAVES, _nft_inputs, _nft_formula(), {}, ("pc",)),
        Case(
            UNPAIRED_LEAVES,
            _nft_inputs,
            _nft_formula(0.7, 0.05, 0.5),
            {"neg_weight": 0.7, "clamp_negative": 0.05, "clamp_positive": 0.5},
            ("pc",),
        ),
    ],
    "dpo": [Case(PAIR_LEAVES, _pair_inputs, _dpo_formula(0.1, 0.1), {"beta": 0.1, "label_smoothing": 0.1})],
    "ipo": [
        Case(PAIR_LEAVES, _pair_inputs, _ipo_formula(0.1, n), {"beta": 0.1, "normalize": n})
        for n in (True, False)
    ],
    "simpo": [Case(PAIR_LEAVES, _pair_inputs, _simpo_formula, {"label_smoothing": 0.1, "sft_weight": 0.5})],
    "ld_dpo": [Case(PAIR_LEAVES, _pair_inputs, _ld_dpo_formula, {"alpha": 0.5})],
    "kto": [
        Case(UNPAIRED_LEAVES, _kto_inputs(k), _kto_formula(k), {"use_kl": k}, ("pc",)) for k in (True, False)
    ],
    "curry_dpo": [
        Case(PAIR_LEAVES, lambda L: _pair_inputs(L, {"stage": torch.zeros(B)}), _dpo_formula(0.1, 0.0))
    ],
    "flr": [Case(PAIR_LEAVES, _pair_inputs, _dpo_formula(0.1, 0.1), {"label_smoothing": 0.1})],
    "c3po": [Case(PAIR_LEAVES, lambda L: _pair_inputs(L, {"scope": SCOPE}), _c3po_formula)],
    "plackett_luce": [
        Case(GROUP_LEAVES, _group_inputs, _pl_formula(0.1, k), {"top_k": k}, ("pc",)) for k in (0, 1)
    ],
    "grpo": [Case(GROUP_LEAVES, _grpo_inputs, _grpo_formula, {}, ("pc",))],
    "bradley_terry": [
        Case(
            SCORE_LEAVES_1,
            _score_pair_inputs({"margin": MARGIN}),
            _bt_formula,
            {"use_margin": True, "center_coef": 0.01},
        )
    ],
    "binary_rm": [
        Case(
            SCORE_LEAVES_1,
            _score_inputs({"label": LABEL, "weight": WEIGHT}),
            _binary_formula,
            {"pos_weight": 3.0},
            ("pc",),
        )
    ],
    "causal_rm": [
        Case(
            SCORE_LEAVES_1,
            _score_inputs({"label": LABEL, "observed": OBSERVED, "propensity": PROPENSITY}),
            _causal_formula,
            {"e01": 0.1, "e10": 0.2},
            ("pc",),
        )
    ],
    "ordinal": [Case(SCORE_LEAVES, _score_inputs({"label": LEVEL}), _ordinal_formula, ORDINAL_CFG, ("pc",))],
    "fine_grained": [
        Case(
            SCORE_LEAVES,
            _score_inputs({"segment_labels": SEG_LABELS, "segment_mask": SEG_MASK}),
            _fine_grained_formula,
            {"weights": [0.3, 0.5, 0.2]},
            ("pc",),
        )
    ],
}

CASES |= online_cases(Case, _logps)  # rloo, weighted_grpo, pf_ppo, nft_online, online_dpo: GROUP rows with rewards


def _run(case: Case, dtype: torch.dtype, name: str):
    """The loss and the gradients of the ``grad`` leaves, with every leaf rounded to float32 first."""
    L = {k: v.float().to(dtype).requires_grad_(k in case.grad) for k, v in case.leaves.items()}
    if dtype == torch.float32:
        out = build(name, case.cfg).loss(*case.objective(L))
        loss, metrics = out.loss, out.metrics
    else:
        loss, metrics = case.formula(L), {}
    loss.backward()
    return loss.detach(), {k: L[k].grad for k in case.grad}, metrics


def _check(name: str, case: Case, where: str) -> None:
    loss32, grads32, metrics = _run(case, torch.float32, name)
    assert torch.isfinite(loss32), f"{where}: loss {loss32}"
    for k, g in grads32.items():
        assert g is not None and torch.isfinite(g).all(), f"{where}: gradient of {k} not finite: {g}"
    for k, m in metrics.items():
        assert torch.isfinite(torch.as_tensor(m)).all(), f"{where}: metric {k} = {m}"
    loss64, grads64, _ = _run(case, torch.float64, name)
    torch.testing.assert_close(
        loss32.double(), loss64, rtol=1e-5, atol=1e-6, msg=lambda m: f"{where}: loss: {m}"
    )
    for k in grads32:
        scale = max(grads64[k].abs().max().item(), 1.0)
        torch.testing.assert_close(
            grads32[k].double(),
            grads64[k],
            rtol=1e-4,
            atol=1e-6 * scale,
            msg=lambda m, k=k: f"{where}: d/d{k}: {m}",
        )


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_extreme_inputs_stay_finite_and_match_float64(name):
    if name not in CASES:
        pytest.fail(f"objective '{name}' has no extreme-input case in tests/objectives/test_extreme.py")
    for i, case in enumerate(CASES[name]):
        _check(name, case, f"{name} case {i} ({case.cfg})")
