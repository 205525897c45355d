"""Reading the store over HTTP: interactions, feedback, the review queue, stats, exports (admin keys),
and logging interactions produced elsewhere (ingest keys)."""

from __future__ import annotations

import json
from dataclasses import asdict

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from refeed.api.auth import Principal, require
from refeed.api.schemas import Created, InteractionIn

router = APIRouter(prefix="/v1", tags=["data"])
DATASETS = (
    "pairs",
    "unpaired",
    "sft",
    "groups",
    "critiques",
    "spans",
    "followups",
    "observational",
    "principles",
)


def _plain(rec) -> dict:
    d = asdict(rec)
    return json.loads(json.dumps(d, default=str))


@router.post("/interactions", status_code=201, response_model=Created)
def log_interaction(body: InteractionIn, request: Request, who: Principal = require("ingest")) -> Created:
    """Log an answer produced outside refeed, so feedback can be attached to it."""
    fields = body.model_dump()
    fields["messages"] = [m.model_dump(exclude_none=True) for m in body.messages]
    return Created(id=request.app.state.store.log(**fields, project=who.project))


@router.get("/interactions/{interaction_id}")
def get_interaction(interaction_id: str, request: Request, who: Principal = require("admin")) -> dict:
    return _plain(request.app.state.store.get_interaction(interaction_id, project=who.project))


@router.get("/review")
def review_queue(
    request: Request, limit: int = Query(20, ge=1, le=200), who: Principal = require("admin")
) -> list:
    """The oldest interactions nobody has judged yet."""
    return [_plain(i) for i in request.app.state.store.unlabelled_interactions(limit, project=who.project)]


@router.get("/feedback/{feedback_id}")
def get_feedback(feedback_id: str, request: Request, who: Principal = require("admin")) -> dict:
    return _plain(request.app.state.store.get_feedback(feedback_id, project=who.project))


@router.get("/feedback")
def list_feedback(
    request: Request,
    kind: str | None = Query(None, max_length=20),
    interaction_id: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    who: Principal = require("admin"),
) -> list:
    from refeed.store.tables import KINDS

    if kind is not None and kind not in KINDS:
        from fastapi import HTTPException

        raise HTTPException(422, f"query parameter 'kind': must be one of {', '.join(KINDS)}")
    out = []
    for fb in request.app.state.store.iter_feedback(kinds=[kind] if kind else None, project=who.project):
        if (
            interaction_id is None
            or fb.interaction_id == interaction_id
            or any(t["interaction_id"] == interaction_id for t in fb.targets)
        ):
            out.append(_plain(fb))
            if len(out) >= limit:
                break
    return out


@router.get("/stats")
def stats(request: Request, who: Principal = require("admin")) -> dict:
    return request.app.state.store.stats(project=who.project)


@router.get("/export", response_class=PlainTextResponse)
def export(request: Request, who: Principal = require("admin")):
    """Everything in the project as refeed JSONL (lossless; ``refeed store import`` reads it back)."""
    from refeed.store.formats import export_lines

    lines = export_lines(request.app.state.store, project=who.project)
    return _jsonl(lines, f"refeed-{who.project}.jsonl")


@router.get("/datasets/{kind}", response_class=PlainTextResponse)
def dataset(kind: str, request: Request, who: Principal = require("admin")):
    """A training dataset built from the project's feedback, as JSONL in TRL's columns."""
    if kind not in DATASETS:
        from fastapi import HTTPException

        raise HTTPException(404, f"unknown dataset {kind!r}; one of {', '.join(DATASETS)}")
    from refeed.datasets import BUILDERS

    ds = BUILDERS[kind](request.app.state.store, project=who.project)
    rows = (json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in ds)
    return _jsonl(rows, f"{kind}.jsonl")


def _jsonl(lines, filename: str) -> StreamingResponse:
    """JSONL streamed as it is made (page by page from the store): no file is left anywhere, and a
    large export never sits whole in memory. A sync iterator: Starlette runs it in a worker thread."""
    return StreamingResponse(
        lines,
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
