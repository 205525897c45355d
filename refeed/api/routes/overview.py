"""The annotation overview: feedback over time, agreement between annotators, contradictions, and what
each dataset builder would produce now.

The builder counts run the builders themselves (``refeed.datasets``, as ``GET /v1/datasets/{kind}``
does), so the figures are the rows a training run would get, not an estimate; on a large store this
page costs what building every dataset costs.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from refeed.api.auth import Principal, require
from refeed.store import review

router = APIRouter(prefix="/v1", tags=["annotation"])


@router.get("/agreement")
def agreement(
    request: Request,
    a: str = Query(min_length=1, max_length=200),
    b: str = Query(min_length=1, max_length=200),
    who: Principal = require("admin"),
) -> dict:
    """Where annotators ``a`` and ``b`` judged the same ratings, preferences and outcomes: how often they
    agree (and Cohen's kappa per kind), and each item where they do not."""
    return review.agreement(request.app.state.store, a, b, who.project)


@router.get("/overview")
def overview(
    request: Request, bucket: Literal["hour", "day"] | None = None, who: Principal = require("admin")
) -> dict:
    """{timeline, agreement (every annotator pair), builders {name: {rows, dropped, agreement,
    contradictions}}, contradictions (from the pairs builder)}."""
    from refeed.datasets import BUILDERS, build_report

    store = request.app.state.store
    builders, contradictions = {}, []
    for name, build in BUILDERS.items():
        try:
            rep = build_report(build(store, project=who.project))
        except Exception as e:  # one failing builder must not hide the others' counts
            builders[name] = {"rows": None, "error": f"{type(e).__name__}: {e}"}
            continue
        builders[name] = {k: rep.get(k) for k in ("rows", "dropped", "agreement")}
        builders[name]["contradictions"] = len(rep.get("contradictions") or [])
        if name == "pairs":
            contradictions = rep.get("contradictions") or []
    return {
        "timeline": review.timeline(store, bucket, who.project),
        "agreement": review.pairwise(store, who.project),
        "builders": builders,
        "contradictions": contradictions[:50],
    }
