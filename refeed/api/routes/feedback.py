"""``POST /v1/feedback`` (one) and ``POST /v1/feedback/batch`` (all or nothing), every kind, idempotent."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request

from refeed.api.auth import Principal, require
from refeed.api.schemas import Created, CreatedMany, FeedbackBatch, FeedbackIn, kind_fields

router = APIRouter(prefix="/v1", tags=["feedback"])


def _item(body, key: str | None = None) -> dict:
    return {"type": "feedback", "target": body.interaction_id, "kind": body.kind, "source": body.source,
            "author": body.author, "idempotency_key": body.idempotency_key or key, **kind_fields(body)}


@router.post("/feedback", status_code=201, response_model=Created)
def create_feedback(body: FeedbackIn, request: Request, who: Principal = require("feedback"),
                    idempotency_key: str | None = Header(None, max_length=200)) -> Created:
    """Record one judgement. Retrying with the same ``Idempotency-Key`` (header or field) returns the same id;
    the same key with another body is a 409."""
    return Created(id=request.app.state.writer.write([_item(body, idempotency_key)], who.project)[0])


@router.post("/feedback/batch", status_code=201, response_model=CreatedMany)
def create_feedback_batch(body: FeedbackBatch, request: Request, who: Principal = require("feedback")) -> CreatedMany:
    """Up to 1000 judgements in one transaction: one bad item and nothing is written."""
    return CreatedMany(ids=request.app.state.writer.write([_item(b) for b in body.items], who.project))
