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
