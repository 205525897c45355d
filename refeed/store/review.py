"""Reading for the review UI: the queue with its progress, agreement between annotators, feedback over time.

"Labelled" means judged by a person or a machine on purpose: an active feedback row about the
interaction (as its subject or one of its targets) that is not implicit (a follow-up message, a copy,
a "try again" are implicit and leave an answer in the queue). With ``kind``, only that kind counts;
with ``annotator``, the queue holds the items assigned to them and only their own feedback counts.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any, Literal

from sqlalchemy import func, or_, select

from refeed.store import records
from refeed.store.errors import ValidationFailed
from refeed.store.sdk import Store
from refeed.store.tables import (
    KINDS,
    Actor,
    Annotator,
    Assignment,
    FeedbackRow,
    FeedbackTarget,
    InteractionRow,
)

AGREEMENT_KINDS = ("rating", "preference", "outcome")
ITEM_KINDS = ("thumbs", "rating", "preference", "outcome")  # thumbs: a rating on the (0, 1) scale


def queue(
    store: Store,
    *,
    model: str | None = None,
    labelled: Literal["no", "yes", "all"] = "no",
    kind: str | None = None,
    annotator: str | None = None,
    mine: str | None = None,
    limit: int = 50,
    offset: int = 0,
    project: str | None = None,
) -> dict[str, Any]:
    """{total, labelled, matching, items, models}: ``total`` answers in view (model and annotator filters),
    how many of them are ``labelled``, how many match the ``labelled`` filter, one page of those, oldest
    first, and every model name in the project (for the filter). Each item lists its ``assignees`` and, with
    ``mine`` (an author), that author's active ratings and outcomes on it, so the page shows them pressed."""
    if labelled not in ("no", "yes", "all"):
        raise ValidationFailed("query parameter 'labelled': must be one of no, yes, all")
    if kind is not None and kind not in KINDS:
        raise ValidationFailed(f"query parameter 'kind': must be one of {', '.join(KINDS)}")
    pid = store._pid(project)
    base = [InteractionRow.project_id == pid, InteractionRow.derived_from_id.is_(None)]
    if model is not None:
        base.append(InteractionRow.model == model)
    if annotator is not None:
        assigned = select(Assignment.interaction_id).join(Annotator, Annotator.id == Assignment.annotator_id)
        base.append(
            InteractionRow.id.in_(assigned.where(Annotator.project_id == pid, Annotator.name == annotator))
        )
    judged = _judged(pid, kind, annotator)
    wanted = {"no": [~judged], "yes": [judged], "all": []}[labelled]
    count = select(func.count()).select_from(InteractionRow)
    with store.engine.connect() as conn:
        total = conn.execute(count.where(*base)).scalar()
        done = conn.execute(count.where(*base, judged)).scalar()
        matching = conn.execute(count.where(*base, *wanted)).scalar()
        page = conn.execute(
            select(InteractionRow)
            .where(*base, *wanted)
            .order_by(InteractionRow.id)
            .offset(offset)
            .limit(limit)
        ).all()
        models = conn.execute(
            select(InteractionRow.model).where(InteractionRow.project_id == pid, InteractionRow.model.is_not(None))
            .group_by(InteractionRow.model).order_by(InteractionRow.model)
        ).scalars().all()  # fmt: skip
        items = _items(conn, page, pid, mine)
    return {"total": total, "labelled": done, "matching": matching, "offset": offset, "items": items,
            "models": list(models)}  # fmt: skip


def _items(conn, page, pid: str, mine: str | None) -> list[dict[str, Any]]:
    ids = [r.id for r in page]
    who, own = defaultdict(list), defaultdict(list)
    for iid, name in conn.execute(
        select(Assignment.interaction_id, Annotator.name)
        .join(Annotator, Annotator.id == Assignment.annotator_id)
        .where(Assignment.interaction_id.in_(ids))
        .order_by(Annotator.name)
    ):
        who[iid].append(name)
    if mine is not None:
        q = (
            select(FeedbackRow.id, FeedbackRow.interaction_id, FeedbackRow.kind, FeedbackRow.score,
                   FeedbackRow.label, FeedbackRow.payload)
            .join(Actor, Actor.id == FeedbackRow.actor_id)
            .where(FeedbackRow.project_id == pid, FeedbackRow.interaction_id.in_(ids), FeedbackRow.status == "active",
                   FeedbackRow.kind.in_(("rating", "outcome")), Actor.external_id == mine, Actor.kind == "human")
            .order_by(FeedbackRow.id)
        )  # fmt: skip
        for fid, iid, kind, score, label, payload in conn.execute(q):
            own[iid].append(
                {"id": fid, "kind": kind, "score": score, "label": label, "scale": payload.get("scale")}
            )
    out = []
    for r in page:
        rec = records.interaction_from_row(r)
        out.append({"id": rec.id, "messages": rec.messages, "completion": rec.completion, "model": rec.model,
                    "created_at": rec.created_at.isoformat(), "assignees": who[rec.id], "mine": own[rec.id]})  # fmt: skip
    return out


def _judged(pid: str, kind: str | None, annotator: str | None):
    """SQL: this interaction has an active, non-implicit feedback row about it (of ``kind``, by ``annotator``)."""
    conds = [FeedbackRow.project_id == pid, FeedbackRow.status == "active", FeedbackRow.source != "implicit"]
    if kind is not None:
        conds.append(FeedbackRow.kind == kind)
    if annotator is not None:
        conds.append(
            FeedbackRow.actor_id.in_(
                select(Actor.id).where(Actor.project_id == pid, Actor.external_id == annotator)
            )
        )
    direct = select(FeedbackRow.id).where(FeedbackRow.interaction_id == InteractionRow.id, *conds)
    via = (
        select(FeedbackTarget.feedback_id)
        .join(FeedbackRow, FeedbackRow.id == FeedbackTarget.feedback_id)
        .where(FeedbackTarget.interaction_id == InteractionRow.id, *conds)
    )
    return or_(direct.exists(), via.exists())


# --- agreement --------------------------------------------------------------------------------------


def votes(store: Store, project: str | None = None) -> dict[str, dict[tuple, Any]]:
    """{annotator: {item: value}} over people's active ratings, preferences and outcomes.

    An item is what two people can both judge: (thumbs or rating, interaction, scale), (preference, the pair),
    (outcome, interaction). The value is the score, the preferred interaction id (or tie / both_bad),
    or pass / fail. With several active rows on one item, the newest counts.
    """
    out: dict[str, dict[tuple, Any]] = defaultdict(dict)
    for fb in store.iter_feedback(kinds=AGREEMENT_KINDS, source="human", project=project):
        if fb.author is None:
            continue
        if fb.kind == "rating":
            scale = tuple(fb.payload.get("scale") or (1, 5))
            key, value = ("thumbs" if scale == (0, 1) else "rating", fb.interaction_id, scale), fb.score
        elif fb.kind == "preference":
            pair = tuple(sorted(t["interaction_id"] for t in fb.targets))
            chosen = [t["interaction_id"] for t in fb.targets if t["role"] == "chosen"]
            key, value = ("preference", pair), chosen[0] if chosen else fb.label
        else:
            key, value = ("outcome", fb.interaction_id), fb.label
        out[fb.author][key] = value
    return out


def agreement(store: Store, a: str, b: str, project: str | None = None) -> dict[str, Any]:
    """Where ``a`` and ``b`` judged the same item: per kind how many, how many agree, Cohen's kappa, and
    every disagreement with the answers it is about."""
    v = votes(store, project)
    va, vb = v.get(a, {}), v.get(b, {})
    shared = sorted(set(va) & set(vb), key=repr)
    per_kind, disagreements = {}, []
    for kind in ITEM_KINDS:
        keys = [k for k in shared if k[0] == kind]
        agreed = sum(va[k] == vb[k] for k in keys)
        per_kind[kind] = {
            "compared": len(keys),
            "agreed": agreed,
            "kappa": _kappa([(va[k], vb[k]) for k in keys]),
        }
        disagreements += [k for k in keys if va[k] != vb[k]]
    ids = {i for k in disagreements for i in ((k[1],) if k[0] != "preference" else k[1])}
    answers = store.get_interactions(ids, project)
    rows = []
    for k in disagreements:
        inter = [k[1]] if k[0] != "preference" else list(k[1])
        rows.append({
            "kind": k[0], "interaction_ids": inter, "scale": list(k[2]) if k[0] in ("thumbs", "rating") else None,
            "a": va[k], "b": vb[k],
            "prompt": _last_user(answers[inter[0]].messages) if inter[0] in answers else None,
            "answers": [answers[i].completion if i in answers else None for i in inter],
        })  # fmt: skip
    total = sum(p["compared"] for p in per_kind.values())
    agreed = sum(p["agreed"] for p in per_kind.values())
    return {"a": a, "b": b, "compared": total, "agreed": agreed, "rate": agreed / total if total else None,
            "by_kind": per_kind, "disagreements": rows}  # fmt: skip


def pairwise(store: Store, project: str | None = None) -> list[dict[str, Any]]:
    """Every pair of annotators who judged a shared item: how many items, and the share they agree on."""
    v = votes(store, project)
    out = []
    for a, b in combinations(sorted(v), 2):
        shared = set(v[a]) & set(v[b])
        if shared:
            agreed = sum(v[a][k] == v[b][k] for k in shared)
            out.append(
                {"a": a, "b": b, "compared": len(shared), "agreed": agreed, "rate": agreed / len(shared)}
            )
    return out


def _kappa(pairs: list[tuple]) -> float | None:
    """Cohen's kappa for two raters' nominal values; None when undefined (no items, or chance agreement 1)."""
    n = len(pairs)
    if not n:
        return None
    observed = sum(x == y for x, y in pairs) / n
    ca, cb = defaultdict(int), defaultdict(int)
    for x, y in pairs:
        ca[repr(x)] += 1
        cb[repr(y)] += 1
    expected = sum(ca[c] * cb.get(c, 0) for c in ca) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def _last_user(messages: list[dict]) -> str | None:
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else None


# --- over time -----------------------------------------------------------------------------------------


def timeline(store: Store, bucket: Literal["hour", "day"] | None = None, project: str | None = None) -> dict:
    """Active feedback counted per time bucket, kind and source: {bucket, points [{t, kind, source, n}],
    statuses {status: n}}. Without ``bucket``: hours when everything lies within two days, else days."""
    pid = store._pid(project)
    mine = FeedbackRow.project_id == pid
    with store.engine.connect() as conn:
        lo, hi = conn.execute(
            select(func.min(FeedbackRow.created_at), func.max(FeedbackRow.created_at)).where(mine)
        ).one()
        statuses = dict(
            conn.execute(
                select(FeedbackRow.status, func.count()).where(mine).group_by(FeedbackRow.status)
            ).all()
        )
        if bucket is None:
            bucket = "hour" if lo is None or (hi - lo).total_seconds() <= 2 * 86400 else "day"
        t = _truncate(conn.dialect.name, bucket)
        rows = conn.execute(
            select(t.label("t"), FeedbackRow.kind, FeedbackRow.source, func.count())
            .where(mine, FeedbackRow.status == "active")
            .group_by(t, FeedbackRow.kind, FeedbackRow.source)
            .order_by(t)
        ).all()
    points = [{"t": str(tb), "kind": k, "source": s, "n": n} for tb, k, s, n in rows]
    return {"bucket": bucket, "points": points, "statuses": dict(sorted(statuses.items()))}


def _truncate(dialect: str, bucket: str):
    """created_at truncated to its hour or day, as text ``YYYY-MM-DDTHH:00`` / ``YYYY-MM-DD`` (UTC)."""
    if dialect == "sqlite":  # stored as UTC text 'YYYY-MM-DD HH:MM:SS...'
        return func.strftime("%Y-%m-%dT%H:00" if bucket == "hour" else "%Y-%m-%d", FeedbackRow.created_at)
    fmt = 'YYYY-MM-DD"T"HH24:00' if bucket == "hour" else "YYYY-MM-DD"
    return func.to_char(func.timezone("UTC", FeedbackRow.created_at), fmt)
