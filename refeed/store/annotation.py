"""What the annotation UI needs of the store: changing a judgement, annotators and their queues, agreement.

A judgement is never edited in place (FEEDBACK.md 4.1, append-only history):
- ``retract`` marks a row ``retracted`` (a second click on the same thumb);
- ``supersede`` writes the new judgement and, in the same transaction, marks the old row ``superseded``
  and points the new row's ``supersedes_id`` at it (thumbs up, then thumbs down);
- ``decide`` turns a ``proposed`` row (an AI judge's label, a candidate rule) into ``active`` or
  ``retracted`` once a person has looked at it.
Builders read ``active`` rows only, so each of these changes what the next dataset holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update

from refeed.store import records, writer
from refeed.store.errors import NotFound, ValidationFailed
from refeed.store.sdk import Store
from refeed.store.tables import (
    Actor,
    Annotator,
    Assignment,
    FeedbackRow,
    FeedbackTarget,
)
from refeed.types import Feedback, FeedbackKind

CHANGEABLE = ("active", "proposed")  # a row in another status has been replaced or withdrawn already


# --- changing a judgement -------------------------------------------------------------------------


def subjects(store: Store, feedback_id: str, project: str | None = None) -> set[str]:
    """Every interaction one feedback row is about (its subject and its targets); NotFound if absent."""
    pid = store._pid(project)
    with store.engine.connect() as conn:
        row = conn.execute(
            select(FeedbackRow.interaction_id).where(
                FeedbackRow.project_id == pid, FeedbackRow.id == feedback_id
            )
        ).first()
        if row is None:
            raise NotFound(f"unknown feedback id {feedback_id!r}")
        targets = conn.execute(
            select(FeedbackTarget.interaction_id).where(FeedbackTarget.feedback_id == feedback_id)
        ).scalars()
        return {x for x in (row.interaction_id, *targets) if x is not None}


def retract(store: Store, feedback_id: str, project: str | None = None) -> str:
    """Withdraw one judgement (status ``retracted``); retracting it again is a no-op. Returns its status."""
    pid = store._pid(project)
    with store._writes.begin() as conn:
        status = _status(conn, pid, feedback_id)
        if status == "retracted":
            return status
        if status not in CHANGEABLE:
            raise ValidationFailed(
                f"feedback {feedback_id!r} is {status}; retract the row that replaced it instead"
            )
        conn.execute(update(FeedbackRow).where(FeedbackRow.id == feedback_id).values(status="retracted"))
    return "retracted"


def supersede(store: Store, old_id: str, new: Feedback, project: str | None = None) -> str:
    """Write ``new`` in place of ``old_id`` in one transaction; return the new row's id.

    The new row must be of the same kind and about the same interactions (a changed judgement, not a
    new one). Replaying the same request (same idempotency key and body) returns the same id.
    """
    if new.kind == FeedbackKind.EDIT:
        raise ValidationFailed(
            "an edit cannot supersede another row; write a new edit (it keeps the original)"
        )
    pid = store._pid(project)
    with store._writes.begin() as conn:
        old = conn.execute(
            select(FeedbackRow.kind, FeedbackRow.status, FeedbackRow.interaction_id).where(
                FeedbackRow.project_id == pid, FeedbackRow.id == old_id
            )
        ).first()
        if old is None:
            raise NotFound(f"unknown feedback id {old_id!r}")
        if old.kind != str(new.kind):
            raise ValidationFailed(f"a {new.kind} cannot supersede a {old.kind}; write it as new feedback")
        old_targets = set(
            conn.execute(
                select(FeedbackTarget.interaction_id).where(FeedbackTarget.feedback_id == old_id)
            ).scalars()
        )
        new_targets = {t["interaction_id"] for t in new.targets}
        if {old.interaction_id, *old_targets} - {None} != {new.interaction_id, *new_targets} - {None}:
            raise ValidationFailed(
                f"feedback {old_id!r} is about other interactions; a superseding row judges the same ones"
            )
        (new_id,) = writer._write(conn, pid, [new])
        if old.status == "superseded" and _successor(conn, old_id) == new_id:
            return new_id  # a replay: already done
        if old.status not in CHANGEABLE:
            raise ValidationFailed(f"feedback {old_id!r} is {old.status}; change the row that replaced it")
        conn.execute(update(FeedbackRow).where(FeedbackRow.id == old_id).values(status="superseded"))
        conn.execute(update(FeedbackRow).where(FeedbackRow.id == new_id).values(supersedes_id=old_id))
    return new_id


def decide(store: Store, feedback_id: str, accept: bool, project: str | None = None) -> str:
    """Accept (``active``) or reject (``retracted``) a ``proposed`` row; returns the new status."""
    pid = store._pid(project)
    with store._writes.begin() as conn:
        status = _status(conn, pid, feedback_id)
        if status != "proposed":
            raise ValidationFailed(f"feedback {feedback_id!r} is {status}, not proposed")
        new = "active" if accept else "retracted"
        conn.execute(update(FeedbackRow).where(FeedbackRow.id == feedback_id).values(status=new))
    return new


def history(store: Store, interaction_ids: Iterable[str], project: str | None = None) -> list[dict[str, Any]]:
    """Every feedback row about ``interaction_ids`` (subject or target), in every status, oldest first:
    id, kind, status, supersedes_id, author, score, label, text, targets."""
    pid, ids = store._pid(project), list(interaction_ids)
    targeted = select(FeedbackTarget.feedback_id).where(FeedbackTarget.interaction_id.in_(ids))
    cols = ("id", "kind", "status", "supersedes_id", "interaction_id", "score", "label", "text", "source")
    q = (
        select(*(getattr(FeedbackRow, c) for c in cols), Actor.external_id.label("author"))
        .join(Actor, Actor.id == FeedbackRow.actor_id)
        .where(
            FeedbackRow.project_id == pid,
            or_(FeedbackRow.interaction_id.in_(ids), FeedbackRow.id.in_(targeted)),
        )
        .order_by(FeedbackRow.created_at, FeedbackRow.id)
    )
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
        targets = defaultdict(list)
        fids = [r["id"] for r in rows]
        for t in conn.execute(select(FeedbackTarget).where(FeedbackTarget.feedback_id.in_(fids))):
            targets[t.feedback_id].append(
                {"interaction_id": t.interaction_id, "role": t.role, "position": t.position}
            )
    return [{**r, "targets": sorted(targets[r["id"]], key=records.target_order)} for r in rows]


def _status(conn, pid: str, feedback_id: str) -> str:
    status = conn.execute(
        select(FeedbackRow.status).where(FeedbackRow.project_id == pid, FeedbackRow.id == feedback_id)
    ).scalar()
    if status is None:
        raise NotFound(f"unknown feedback id {feedback_id!r}")
    return status


def _successor(conn, old_id: str) -> str | None:
    return conn.execute(select(FeedbackRow.id).where(FeedbackRow.supersedes_id == old_id)).scalar()


# --- annotators and assignments -------------------------------------------------------------------


def add_annotator(store: Store, name: str, project: str | None = None) -> str:
    """The id of annotator ``name``, registered if new."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 200:
        raise ValidationFailed("invalid annotator: field 'name': must be 1 to 200 characters")
    pid = store._pid(project)
    with store._writes.begin() as conn:
        found = conn.execute(
            select(Annotator.id).where(Annotator.project_id == pid, Annotator.name == name)
        ).scalar()
        if found is None:
            found = records.new_id()
            conn.execute(
                insert(Annotator).values(id=found, project_id=pid, name=name, created_at=records.now())
            )
    return found


def annotators(store: Store, project: str | None = None) -> list[dict[str, Any]]:
    """Registered annotators and every person who has given feedback under a name, with counts."""
    pid = store._pid(project)
    with store.engine.connect() as conn:
        names = set(conn.execute(select(Annotator.name).where(Annotator.project_id == pid)).scalars())
        given = dict(
            conn.execute(
                select(Actor.external_id, func.count(FeedbackRow.id))
                .join(FeedbackRow, FeedbackRow.actor_id == Actor.id)
                .where(Actor.project_id == pid, Actor.kind == "human", Actor.external_id.is_not(None),
                       FeedbackRow.status == "active")
                .group_by(Actor.external_id)
            ).all()
        )  # fmt: skip
        assigned = dict(
            conn.execute(
                select(Annotator.name, func.count(Assignment.id))
                .join(Assignment, Assignment.annotator_id == Annotator.id)
                .where(Annotator.project_id == pid)
                .group_by(Annotator.name)
            ).all()
        )
    return [
        {"name": n, "feedback": given.get(n, 0), "assigned": assigned.get(n, 0)}
        for n in sorted(names | set(given))
    ]


def assign(store: Store, annotator: str, interaction_ids: Iterable[str], project: str | None = None) -> int:
    """Put ``interaction_ids`` in ``annotator``'s queue; returns how many were new there."""
    ids = list(dict.fromkeys(interaction_ids))
    if not ids:
        raise ValidationFailed("invalid assignment: field 'interaction_ids': name at least one interaction")
    known = store.get_interactions(ids, project)
    missing = [i for i in ids if i not in known]
    if missing:
        raise NotFound(f"unknown interaction id {missing[0]!r} in this project")
    aid, pid = add_annotator(store, annotator, project), store._pid(project)
    with store._writes.begin() as conn:
        have = set(
            conn.execute(
                select(Assignment.interaction_id).where(
                    Assignment.annotator_id == aid, Assignment.interaction_id.in_(ids)
                )
            ).scalars()
        )
        rows = [
            {"id": records.new_id(), "project_id": pid, "interaction_id": i, "annotator_id": aid,
             "created_at": records.now()}
            for i in ids if i not in have
        ]  # fmt: skip
        if rows:
            conn.execute(insert(Assignment), rows)
    return len(rows)


def unassign(store: Store, annotator: str, interaction_ids: Iterable[str], project: str | None = None) -> int:
    pid, ids = store._pid(project), list(interaction_ids)
    with store._writes.begin() as conn:
        aid = conn.execute(
            select(Annotator.id).where(Annotator.project_id == pid, Annotator.name == annotator)
        ).scalar()
        if aid is None:
            return 0
        return conn.execute(
            delete(Assignment).where(Assignment.annotator_id == aid, Assignment.interaction_id.in_(ids))
        ).rowcount


def proposed(store: Store, limit: int = 100, project: str | None = None) -> list[Feedback]:
    """The oldest ``proposed`` rows (machine-made, waiting for a person), as feedback records."""
    pid = store._pid(project)
    q = (
        select(FeedbackRow)
        .where(FeedbackRow.project_id == pid, FeedbackRow.status == "proposed")
        .order_by(FeedbackRow.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
        return store._feedback_records(conn, rows) if rows else []
