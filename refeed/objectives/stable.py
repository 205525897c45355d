"""Log-space helpers shared by objectives whose textbook form over- or underflows in float32.

A float32 ``exp`` underflows to 0 below about -104 and ``sigmoid`` rounds to 1 from about 17, so a
loss written as ``-log(1 - sigmoid(z))`` or ``-log(exp(x))`` returns inf (and 0 * inf = NaN in the
backward pass) on exactly the confident rows training must move. These forms stay in log space.
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, accurate at both ends (Maechler 2012, "Accurately Computing
    log(1 - exp(-|a|))", https://cran.r-project.org/web/packages/Rmpfr/vignettes/log1mexp-note.pdf).

    Near 0, ``log(-expm1(x))``; far below, ``log1p(-exp(x))``. Each branch gets an input clamped to
    its own side so the branch ``torch.where`` discards has a finite gradient too (a discarded
    inf gradient times 0 is still NaN). ``x >= 0`` gives -inf or NaN: callers keep ``x < 0``.
    """
    near = torch.log(-torch.expm1(x.clamp(min=-LN2)))  # used where x > -ln 2
    far = torch.log1p(-torch.exp(x.clamp(max=-LN2)))  # used where x <= -ln 2
    return torch.where(x > -LN2, near, far)


def log_sigmoid_diff(a: torch.Tensor, b: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """``log(sigmoid(a) - sigmoid(b))`` for ``gap = a - b > 0``, passed separately so a caller that
    can compute it without cancellation (or floor it) does.

    sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)), so the log is
    logsigmoid(a) + logsigmoid(-b) + log1mexp(-gap): no term rounds to 0 when both sigmoids round to 1.
    """
    return torch.nn.functional.logsigmoid(a) + torch.nn.functional.logsigmoid(-b) + log1mexp(-gap)


# Importance ratios of online objectives: exp(log-ratio) overflows to inf in float32 above ~88.
CAP = 20.0  # exp is exact up to here, then linear: e^20 ~ 4.9e8 is already far past any clip range


def exp_capped(x: torch.Tensor, cap: float = CAP) -> torch.Tensor:
    """exp(x) for x <= cap, then its tangent line e^cap (1 + x - cap): finite value and slope everywhere."""
    e = torch.exp(x.clamp(max=cap))
    return torch.where(x > cap, e * (1 + (x - cap)), e)


def clipped_loss(log_ratio: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, negated: (-min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A), rho)."""
    ratio = exp_capped(log_ratio)
    return -torch.min(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv), ratio


def k3(logps: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The k3 KL estimator e^d - d - 1 with d = ref - logp, elementwise, >= 0 (expm1 form near 0)."""
    d = ref - logps
    near = torch.expm1(d.clamp(max=CAP)) - d
    return torch.where(d > CAP, exp_capped(d) - 1 - d, near)


def clip_metrics(ratio: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, eps_low: float, eps_high: float
                 ) -> dict[str, torch.Tensor]:
    """Fractions of (masked) ratios clipped below with A < 0 and above with A > 0, as TRL logs them."""
    n = mask.sum().clamp(min=1)
    return {"clip/low": (((ratio < 1 - eps_low) & (adv < 0) & mask).sum() / n).detach(),
            "clip/high": (((ratio > 1 + eps_high) & (adv > 0) & mask).sum() / n).detach()}
