"""``POST /v1/feedback`` (one) and ``POST /v1/feedback/batch`` (all or nothing), every kind, idempotent.

Both go through the app's group writer (``refeed.api.group_commit``): concurrent requests share one
commit, and each is answered only after its own records are committed.
"""

from __future__ import annotations

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from refeed.api.auth import TOKEN_HEADER, Principal, require
from refeed.api.schemas import Created, CreatedMany, FeedbackBatch, FeedbackIn, kind_fields
from refeed.store import ValidationFailed
from refeed.store.records import feedback_record
from refeed.types import Feedback

router = APIRouter(prefix="/v1", tags=["feedback"])
REPLAYED = "Idempotent-Replayed"
_REPLAY = {
    200: {
        "description": f"a replay of an earlier request with the same idempotency key and body: the "
        f"original id(s), header {REPLAYED}: true"
    }
}


def _record(body, key: str | None = None) -> Feedback:
    """The validated store record; its fresh id tells a new write from an idempotent replay."""
    return feedback_record(
        body.interaction_id,
        body.kind,
        source=body.source,
        author=body.author,
        idempotency_key=body.idempotency_key or key,
        fields=kind_fields(body),
    )


def _answer(model, recs: list[Feedback], stored: list[str], **fields):
    """201 for a new write; 200 with ``Idempotent-Replayed: true`` when every record was a replay."""
    if all(i != r.id for i, r in zip(stored, recs, strict=True)):
        return JSONResponse(model(**fields).model_dump(), status_code=200, headers={REPLAYED: "true"})
    return model(**fields)


def references(body) -> set[str]:
    """Every interaction id a feedback body names (its subject, the other side of a preference, ...)."""
    refs = {body.interaction_id}
    for name in ("rejected", "regeneration_id", "followup_interaction_id"):
        refs.add(getattr(body, name, None))
    for entry in getattr(body, "ranking", None) or []:
        refs.update(entry if isinstance(entry, list) else [entry])
    return {r for r in refs if r is not None}


def _in_scope(who: Principal, bodies) -> None:
    """A feedback token allows writes on its own interactions only."""
    if who.interactions is None:
        return
    for body in bodies:
        refs = references(body)
        if not refs or not refs <= who.interactions:
            raise HTTPException(
                403,
                f"a {TOKEN_HEADER} allows feedback on its own interaction only; this body "
                f"names {sorted(refs) or 'no interaction'}",
            )


@router.post("/feedback", status_code=201, response_model=Created, responses=_REPLAY)
async def create_feedback(
    body: FeedbackIn,
    request: Request,
    who: Principal = require("feedback"),
    idempotency_key: str | None = Header(None, max_length=200),
) -> Created:
    """Record one judgement. Retrying with the same ``Idempotency-Key`` (header or field) returns the same id;
    the same key with another body is a 409."""
    _in_scope(who, [body])
    rec = _record(body, idempotency_key)
    ids = await request.app.state.writer.write([rec], who.project)
    return _answer(Created, [rec], ids, id=ids[0])


@router.post("/feedback/batch", status_code=201, response_model=CreatedMany, responses=_REPLAY)
async def create_feedback_batch(
    body: FeedbackBatch, request: Request, who: Principal = require("feedback")
) -> CreatedMany:
    """Up to 1000 judgements in one transaction: one bad item and nothing is written."""
    _in_scope(who, body.items)
    recs = []
    for n, item in enumerate(body.items):
        try:
            recs.append(_record(item))
        except ValidationFailed as e:
            raise ValidationFailed(f"item {n}: {e}") from None
    ids = await request.app.state.writer.write(recs, who.project)
    return _answer(CreatedMany, recs, ids, ids=ids)
