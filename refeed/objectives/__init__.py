"""Training objectives, one file each, behind one visible registry.

    objective = build("dpo", {"beta": 0.2})

Add an objective: write ``refeed/objectives/<name>.py`` following ``dpo.py``, add the class to the
tuple below, add ``tests/objectives/test_<name>.py`` (closed form, limit case, gradient sign).
"""

from __future__ import annotations

from typing import Any

from refeed.config import ConfigError, from_dict
from refeed.objectives.base import (
    BatchKind,
    GroupLogps,
    Head,
    LossOutput,
    Needs,
    Objective,
    PairLogps,
    PairScores,
    TokenLogps,
    TokenScores,
    UnpairedLogps,
)
from refeed.objectives.binary_rm import BinaryRM
from refeed.objectives.bradley_terry import BradleyTerry
from refeed.objectives.c3po import C3PO
from refeed.objectives.causal_rm import CausalRM
from refeed.objectives.curry_dpo import CurryDPO
from refeed.objectives.dpo import DPO
from refeed.objectives.fine_grained import FineGrained
from refeed.objectives.flr import FLR
from refeed.objectives.grpo import GRPO
from refeed.objectives.ipo import IPO
from refeed.objectives.kto import KTO
from refeed.objectives.ld_dpo import LDDPO
from refeed.objectives.nft import NFT
from refeed.objectives.nft_online import NFTOnline
from refeed.objectives.online_dpo import OnlineDPO
from refeed.objectives.ordinal import Ordinal
from refeed.objectives.pf_ppo import PFPPO
from refeed.objectives.plackett_luce import PlackettLuce
from refeed.objectives.rloo import RLOO
from refeed.objectives.sft import SFT
from refeed.objectives.simpo import SimPO
from refeed.objectives.weighted_grpo import WeightedGRPO

OBJECTIVES: dict[str, type] = {
    o.name: o
    for o in (
        SFT,
        NFT,  # supervised
        BradleyTerry,
        BinaryRM,
        Ordinal,
        FineGrained,
        CausalRM,  # reward models (head = SCORE)
        DPO,
        IPO,
        SimPO,
        LDDPO,
        KTO,
        CurryDPO,
        PlackettLuce,
        C3PO,
        FLR,  # preference family
        GRPO,
        RLOO,
        WeightedGRPO,
        PFPPO,
        NFTOnline,
        OnlineDPO,  # online: scored rollouts of the current policy (GROUP rows, rewards (B, K))
    )
}


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


__all__ = [
    "OBJECTIVES",
    "BatchKind",
    "GroupLogps",
    "Head",
    "LossOutput",
    "Needs",
    "Objective",
    "PairLogps",
    "PairScores",
    "TokenLogps",
    "TokenScores",
    "UnpairedLogps",
    "build",
]
