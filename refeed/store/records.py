"""Turning SDK calls into plain records, and plain records into table rows (and back).

The SDK and every importer produce ``refeed.types.Interaction`` / ``Feedback`` records; the writer
turns them into rows of ``interactions``, ``feedback``, ``feedback_targets`` and ``feedback_spans``.
Reading does the reverse, so an export re-imports to identical records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from refeed.store import checks, schemas
from refeed.store.errors import ValidationFailed
from refeed.types import Feedback, FeedbackKind, Interaction, Source, new_id

# request_hash leaves these out: a retry of the same call may carry a fresh id or timestamp.
_VOLATILE = ("id", "created_at", "idempotency_key", "status", "context_hash")


# json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str), without building an encoder per call.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def canonical_hash(obj: Any) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()


def context_hash(messages: list[dict]) -> str:
    """Groups candidate answers to one prompt: sha256 of the canonical chat (role and content)."""
    return canonical_hash([{"role": m.get("role"), "content": m.get("content")} for m in messages])


def request_hash(record: Interaction | Feedback) -> str:
    """sha256 of what a record says; span quotes are left out (the store derives them), so a record
    read back or exported hashes like the call that wrote it."""
    body = {name: getattr(record, name) for name in _hashed_fields(type(record))}
    if isinstance(body.get("payload"), dict) and body["payload"].get("spans"):
        body["payload"] = {**body["payload"], "spans": [{k: v for k, v in sp.items() if k != "quote"}
                                                        for sp in body["payload"]["spans"]]}
    return canonical_hash(body)


@cache
def _hashed_fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in _VOLATILE)


def now() -> datetime:
    return datetime.now(UTC)


def check_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValidationFailed(
            "invalid interaction: field 'messages': must be a list of chat messages (dicts)"
        )
    for n, m in enumerate(messages):
        if m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise ValidationFailed(
                f"invalid interaction: field 'messages.{n}.role': must be one of system, developer, user, "
                f"assistant, tool (got {m.get('role')!r})"
            )
        if not isinstance(m.get("content"), str | list | None):
            raise ValidationFailed(f"invalid interaction: field 'messages.{n}.content': must be text")
    return messages


def interaction_record(messages, completion, **kw) -> Interaction:
    if not isinstance(completion, str):
        raise ValidationFailed("invalid interaction: field 'completion': must be text")
    check_messages(messages)
    kw = {k: v for k, v in kw.items() if v is not None}
    rec = Interaction(messages=messages, completion=completion, **kw)
    checks.check_record(rec)
    return rec


def feedback_record(target: str | None, kind: str, *, source, author, idempotency_key, fields) -> Feedback:
    """Validate one SDK feedback call and build its record (spans without quotes: the writer adds them)."""
    model = schemas.parse(kind, fields)
    if model.needs_target and not target:
        raise ValidationFailed(f"invalid {kind} feedback: field 'target': an interaction id is required")
    try:
        source = Source(source)
    except ValueError:
        raise ValidationFailed(
            f"invalid {kind} feedback: field 'source': must be one of {', '.join(s.value for s in Source)}"
        ) from None
    cols = model.columns()
    stored_kind = "rating" if kind == "thumbs" else kind
    fb = Feedback(
        kind=FeedbackKind(stored_kind),
        interaction_id=target,
        source=source,
        author=author,
        idempotency_key=idempotency_key,
        score=cols.get("score"),
        label=cols.get("label"),
        text=cols.get("text"),
        payload=cols["payload"],
    )
    if hasattr(model, "targets"):
        try:
            fb.targets = sorted(model.targets(target), key=lambda t: (t["position"], t["interaction_id"]))
        except ValueError as e:
            raise ValidationFailed(f"invalid {kind} feedback: {e}") from None
        if kind == "ranking":
            fb.interaction_id = None
    if kind == "span":
        fb.payload["spans"] = [s.model_dump() for s in model.spans]
    checks.check_record(fb)
    return fb


def edit_interaction(original: Interaction, fb: Feedback) -> Interaction:
    """The corrected answer as an interaction of its own, derived from the original."""
    key = f"{fb.idempotency_key}:edit" if fb.idempotency_key else None
    # A replayed edit (same key) must name the same derived interaction, so its id follows from the key.
    derived_id = canonical_hash(key)[:32] if key else new_id()
    return Interaction(
        id=derived_id,
        messages=original.messages,
        completion=fb.text or "",
        model=original.model,
        derived_from_id=original.id,
        thread_id=original.thread_id,
        parent_id=original.parent_id,
        metadata={"origin": "human_edit"},
        idempotency_key=key,
    )


# --- rows <-> records -------------------------------------------------------------------------


def interaction_row(rec: Interaction, project_id: str) -> dict:
    return {
        "id": rec.id,
        "project_id": project_id,
        "thread_id": rec.thread_id,
        "parent_id": rec.parent_id,
        "derived_from_id": rec.derived_from_id,
        "messages": rec.messages,
        "completion": rec.completion,
        "context_hash": rec.context_hash or context_hash(rec.messages),
        "completion_hash": canonical_hash(rec.completion),
        "model": rec.model,
        "params": rec.params,
        "metadata": rec.metadata,
        "idempotency_key": rec.idempotency_key or rec.id,
        "request_hash": request_hash(rec),
        "created_at": rec.created_at or now(),
    }


def interaction_from_row(r) -> Interaction:
    return Interaction(
        messages=r.messages,
        completion=r.completion,
        model=r.model,
        params=r.params,
        id=r.id,
        thread_id=r.thread_id,
        parent_id=r.parent_id,
        derived_from_id=r.derived_from_id,
        metadata=r.metadata,
        idempotency_key=None if r.idempotency_key == r.id else r.idempotency_key,
        context_hash=r.context_hash,
        created_at=_utc(r.created_at),
    )


def feedback_rows(rec: Feedback, project_id: str, actor_id: str, completion: str | None):
    """(feedback row, target rows, span rows) for one record; span quotes come from ``completion``."""
    payload = dict(rec.payload)
    spans = payload.pop("spans", None) or []
    row = {
        "id": rec.id,
        "project_id": project_id,
        "kind": str(rec.kind),
        "interaction_id": rec.interaction_id,
        "score": rec.score,
        "label": rec.label,
        "text": rec.text,
        "payload": payload,
        "actor_id": actor_id,
        "source": str(rec.source),
        "status": rec.status,
        "idempotency_key": rec.idempotency_key or rec.id,
        "request_hash": request_hash(rec),
        "created_at": rec.created_at or now(),
    }
    targets = [
        {
            "feedback_id": rec.id,
            "interaction_id": t["interaction_id"],
            "role": t["role"],
            "position": t.get("position") or 0,
        }
        for t in rec.targets
    ]
    span_rows = []
    for n, s in enumerate(spans):
        if completion is None or s["end"] > len(completion):
            raise ValidationFailed(
                f"invalid span feedback: field 'spans.{n}.end': {s['end']} is past the end of the completion "
                f"({0 if completion is None else len(completion)} characters)"
            )
        quote = completion[s["start"] : s["end"]]
        if s.get("quote") not in (None, quote):
            raise ValidationFailed(
                f"invalid span feedback: field 'spans.{n}.quote': does not match the completion "
                f"at [{s['start']}, {s['end']}) ({quote!r})"
            )
        span_rows.append(
            {
                "id": new_id(),
                "feedback_id": rec.id,
                "interaction_id": rec.interaction_id,
                "ordinal": n,
                "start_cp": s["start"],
                "end_cp": s["end"],
                "quote": quote,
                "category": s.get("category"),
                "severity": s.get("severity"),
                "comment": s.get("comment"),
            }
        )
    return row, targets, span_rows


def feedback_from_row(r, targets: list, spans: list, author: str | None) -> Feedback:
    payload = span_payload(r.payload, spans) if r.kind == "span" else dict(r.payload)
    return Feedback(
        kind=FeedbackKind(r.kind),
        interaction_id=r.interaction_id,
        score=r.score,
        label=r.label,
        text=r.text,
        payload=payload,
        source=Source(r.source),
        author=author,
        id=r.id,
        idempotency_key=None if r.idempotency_key == r.id else r.idempotency_key,
        status=r.status,
        created_at=_utc(r.created_at),
        targets=[
            {"interaction_id": t.interaction_id, "role": t.role, "position": t.position}
            for t in sorted(targets, key=lambda t: (t.position, t.interaction_id))
        ],
    )


class FeedbackView(NamedTuple):
    """What dataset builders read of one active feedback row (``Store.builder_input``).

    The fields of ``Feedback`` that builders use, with the same values (``targets`` sorted the same way,
    span payloads with their spans), and none of author, source, status, key or timestamps. A plain tuple:
    a million of them cost a fraction of a million ``Feedback`` records. Views whose payloads are equal
    share one payload dict, so treat it as read-only.
    """

    id: str
    kind: FeedbackKind
    interaction_id: str | None
    score: float | None
    label: str | None
    text: str | None
    payload: dict[str, Any]
    targets: list[dict[str, Any]]


def span_payload(payload: dict, spans: list) -> dict:
    """A span feedback's payload as ``Feedback.payload`` holds it: the stored rest plus its spans in order."""
    return {
        **payload,
        "spans": [
            {
                "start": s.start_cp,
                "end": s.end_cp,
                "quote": s.quote,
                "category": s.category,
                "severity": s.severity,
                "comment": s.comment,
            }
            for s in sorted(spans, key=lambda s: s.ordinal)
        ],
    }


def target_order(t: dict) -> tuple:
    """How a record's targets are ordered: by position, then interaction id."""
    return t["position"], t["interaction_id"]


def _utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything the store writes is UTC."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt
