"""Training objectives, one file each, behind one visible registry.

    objective = build("dpo", {"beta": 0.2})

Add an objective: write ``refeed/objectives/<name>.py`` following ``dpo.py``, add the class to the
tuple below, add ``tests/objectives/test_<name>.py`` (closed form, limit case, gradient sign).
"""

from __future__ import annotations

from typing import Any

from refeed.config import ConfigError, from_dict
from refeed.objectives.base import BatchKind, LossOutput, Objective, PairLogps, TokenLogps
from refeed.objectives.dpo import DPO
from refeed.objectives.sft import SFT

OBJECTIVES: dict[str, type] = {o.name: o for o in (SFT, DPO)}


def build(name: str, params: dict[str, Any] | None = None) -> Objective:
    """Instantiate objective ``name`` from a plain dict of its config fields."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective '{name}'. Available: {', '.join(sorted(OBJECTIVES))}.")
    cls = OBJECTIVES[name]
    try:
        cfg = from_dict(cls.Config, params or {}, where="objective")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cls(cfg)


__all__ = ["OBJECTIVES", "BatchKind", "LossOutput", "Objective", "PairLogps", "TokenLogps", "build"]
