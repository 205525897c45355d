"""Changing a judgement and running the review queue: what the web UI's annotators need.

- ``POST /v1/feedback/{id}/retract``: withdraw a judgement (a second click on the same thumb).
- ``POST /v1/feedback/{id}/supersede`` with a feedback body: replace it (thumbs up, then down); the old
  row becomes ``superseded`` and the new one points at it (``supersedes_id``), in one transaction.
- ``GET /v1/proposed``, ``POST /v1/feedback/{id}/accept`` / ``reject``: decide on ``proposed`` rows (admin).
- ``GET /v1/review/items``: the queue with its progress, filtered by model, labelled or not, kind and
  annotator; ``GET/POST /v1/annotators``; ``POST /v1/assignments`` (and ``/v1/assignments/remove``).

Retract and supersede accept ``feedback`` keys (browser-safe) and feedback tokens, which reach only
rows about their own interactions.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from refeed.api.auth import TOKEN_HEADER, Principal, require
from refeed.api.routes.feedback import _in_scope, _record
from refeed.api.schemas import Created, FeedbackIn
from refeed.store import annotation, review

router = APIRouter(prefix="/v1", tags=["annotation"])
Id = Field(min_length=1, max_length=64)


class Status(BaseModel):
    id: str
    status: str


class AnnotatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(min_length=1, max_length=200)
    interaction_ids: list[str] = Field(min_length=1, max_length=1000)


def _own(request: Request, who: Principal, feedback_id: str) -> None:
    """A feedback token may change only rows about its own interactions (others look absent: 404)."""
    refs = annotation.subjects(request.app.state.store, feedback_id, project=who.project)
    if who.interactions is not None and not refs <= who.interactions:
        raise HTTPException(403, f"a {TOKEN_HEADER} allows changes to feedback on its own interaction only")


@router.post("/feedback/{feedback_id}/retract", response_model=Status)
def retract(feedback_id: str, request: Request, who: Principal = require("feedback")) -> Status:
    """Withdraw a judgement: it keeps its row with status ``retracted``; builders skip it. Idempotent."""
    _own(request, who, feedback_id)
    return Status(
        id=feedback_id, status=annotation.retract(request.app.state.store, feedback_id, who.project)
    )


@router.post("/feedback/{feedback_id}/supersede", status_code=201, response_model=Created)
def supersede(
    feedback_id: str,
    body: FeedbackIn,
    request: Request,
    who: Principal = require("feedback"),
    idempotency_key: str | None = Header(None, max_length=200),
) -> Created:
    """Replace a judgement with ``body`` (same kind, same interactions): the new row's id."""
    _own(request, who, feedback_id)
    _in_scope(who, [body])
    rec = _record(body, idempotency_key)
    return Created(id=annotation.supersede(request.app.state.store, feedback_id, rec, who.project))


@router.get("/proposed")
def list_proposed(
    request: Request, limit: int = Query(100, ge=1, le=1000), who: Principal = require("admin")
) -> list:
    """The oldest ``proposed`` rows (an AI judge's labels, candidate rules), waiting for accept / reject."""
    from refeed.api.routes.data import _plain

    return [_plain(f) for f in annotation.proposed(request.app.state.store, limit, who.project)]


@router.post("/feedback/{feedback_id}/{decision}", response_model=Status)
def decide(
    feedback_id: str,
    decision: Literal["accept", "reject"],
    request: Request,
    who: Principal = require("admin"),
) -> Status:
    """Accept (``active``) or reject (``retracted``) a ``proposed`` row, e.g. an AI judge's label."""
    status = annotation.decide(request.app.state.store, feedback_id, decision == "accept", who.project)
    return Status(id=feedback_id, status=status)


@router.get("/review/items")
def review_items(
    request: Request,
    model: str | None = Query(None, max_length=200),
    labelled: Literal["no", "yes", "all"] = "no",
    kind: str | None = Query(None, max_length=20),
    annotator: str | None = Query(None, max_length=200),
    mine: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**62),  # the databases take 64-bit offsets; larger is a 422, not a 500
    who: Principal = require("admin"),
) -> dict:
    """One page of the review queue, oldest first, with progress: ``total`` answers in view, how many are
    ``labelled``, how many ``matching`` the filter. With ``annotator``: their assigned items and labels. With
    ``mine``: each item's active ratings and outcomes by that author (the page shows them pressed)."""
    return review.queue(request.app.state.store, model=model or None, labelled=labelled, kind=kind or None,
                        annotator=annotator or None, mine=mine or None, limit=limit, offset=offset, project=who.project)  # fmt: skip


@router.get("/annotators")
def list_annotators(request: Request, who: Principal = require("admin")) -> list:
    """Registered annotators and everyone who has given feedback under a name: feedback and assigned counts."""
    return annotation.annotators(request.app.state.store, who.project)


@router.post("/annotators", status_code=201, response_model=Created)
def add_annotator(body: AnnotatorIn, request: Request, who: Principal = require("admin")) -> Created:
    return Created(id=annotation.add_annotator(request.app.state.store, body.name, who.project))


@router.post("/assignments")
def assign(body: AssignmentIn, request: Request, who: Principal = require("admin")) -> dict:
    """Put interactions in an annotator's queue (registered if new); already assigned ones are kept once."""
    n = annotation.assign(request.app.state.store, body.annotator, body.interaction_ids, who.project)
    return {"annotator": body.annotator, "assigned": n}


@router.post("/assignments/remove")
def unassign(body: AssignmentIn, request: Request, who: Principal = require("admin")) -> dict:
    n = annotation.unassign(request.app.state.store, body.annotator, body.interaction_ids, who.project)
    return {"annotator": body.annotator, "removed": n}
