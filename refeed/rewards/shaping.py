"""Reward shaping: DAPO's soft overlong penalty, and weighted composites of reward functions.

Overlong shaping (DAPO, Yu et al. 2025, https://arxiv.org/abs/2503.14476, Eq. 13): with
L_max = ``max_length`` and L_cache = ``cache``, a completion of |y| tokens gets

    R_length(y) = 0                                  if |y| <= L_max - L_cache
                = ((L_max - L_cache) - |y|) / L_cache  if L_max - L_cache < |y| <= L_max
                = -1                                 if L_max < |y|

so the penalty grows linearly from 0 to -1 over the last ``cache`` tokens. |y| is
``len(completion_ids)``, the sampled tokens, EOS included (text length would count characters).
Added to a correctness reward, it tells a cut-off answer from a merely wrong one without the cliff
of a hard truncation penalty.

Composite: ``composite([(verifier(...), 1.0), (overlong(...), 1.0)])`` is one reward function whose
value is sum_i w_i r_i over the parts that apply (None counts 0), and None when no part applies.
Its parts may be async; the composite is then async too.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any

from refeed.rewards.base import Reward, is_async, name_of


def overlong_penalty(length: int, max_length: int, cache: int) -> float:
    """DAPO Eq. 13 for one completion of ``length`` tokens."""
    soft = max_length - cache
    if length <= soft:
        return 0.0
    if length <= max_length:
        return (soft - length) / cache
    return -1.0


def overlong(max_length: int, cache: int) -> Reward:
    """DAPO's soft overlong punishment as a reward function over ``completion_ids``."""
    if not (isinstance(max_length, int) and isinstance(cache, int)) or not 0 < cache <= max_length:
        raise ValueError(f"overlong: need integers 0 < cache <= max_length, got cache={cache}, max_length={max_length}")

    def fn(prompts=None, completions=None, completion_ids=None, **columns) -> list[float]:
        if completion_ids is None:
            raise ValueError("overlong: the penalty counts sampled tokens and needs completion_ids "
                             "(the online loop passes them; a TRL trainer does too)")
        return [overlong_penalty(len(ids), max_length, cache) for ids in completion_ids]

    fn.__name__ = fn.__qualname__ = "overlong"
    return fn


def composite(parts: Sequence[tuple[Reward, float]], name: str = "composite") -> Reward:
    """One reward: the weighted sum of ``parts`` (function, weight); None where no part applies."""
    if not parts:
        raise ValueError("composite: needs at least one part")

    def combine(outputs: list[Any], n: int) -> list[float | None]:
        total: list[float | None] = [None] * n
        for (fn, w), values in zip(parts, outputs, strict=True):
            if isinstance(values, dict):
                raise ValueError(f"composite '{name}': part '{name_of(fn)}' returned several signals "
                                 f"({', '.join(values)}); list it on its own instead")
            values = list(values)
            if len(values) != n:
                raise ValueError(f"composite '{name}': part '{name_of(fn)}' returned {len(values)} values "
                                 f"for {n} completions")
            for j, v in enumerate(values):
                if v is not None:
                    total[j] = (total[j] or 0.0) + w * float(v)
        return total

    if any(is_async(fn) for fn, _ in parts):
        async def fn(prompts, completions, **kwargs):
            outs = [fn_(prompts=prompts, completions=completions, **kwargs) for fn_, _ in parts]
            pending = [o for o in outs if inspect.isawaitable(o)]
            done = iter(await asyncio.gather(*pending))
            return combine([next(done) if inspect.isawaitable(o) else o for o in outs], len(completions))
    else:
        def fn(prompts, completions, **kwargs):
            return combine([fn_(prompts=prompts, completions=completions, **kwargs) for fn_, _ in parts],
                           len(completions))

    fn.__name__ = fn.__qualname__ = name
    fn.parts = list(parts)
    return fn
