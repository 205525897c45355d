"""``refeed.Store``: log interactions, record every kind of feedback, read it back in pages.

    store = refeed.Store("sqlite:///feedback.db")          # or "postgresql+psycopg://user@host/db"
    i = store.log(messages=[{"role": "user", "content": "2+2?"}], completion="4", model="my-model-v3")
    store.feedback(i, "rating", score=4, scale=(1, 5), author="ana")
    store.feedback(i, "span", start=0, end=1, category="factual_error", severity=2)

Every write is validated first and runs in one transaction: a bad record raises an error naming the
field and the rule, and a failing batch writes nothing. The store imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, insert, select, type_coerce, update

from refeed.store import records, writer
from refeed.store.engine import for_writing, make_engine, upgrade
from refeed.store.errors import NotFound, ValidationFailed
from refeed.store.tables import (
    ROLES,
    Actor,
    ApiKey,
    FeedbackRow,
    FeedbackSpan,
    FeedbackTarget,
    InteractionRow,
    Project,
)
from refeed.types import Answer, Feedback, FeedbackKind, Interaction, new_id


class Store:
    def __init__(self, url: str = "sqlite:///feedback.db", project: str = "default"):
        self.url = url
        self.engine = make_engine(url)
        self._writes = for_writing(self.engine)
        upgrade(self.engine)
        self.project = project
        self._project_ids: dict[str, str] = {}
        self.create_project(project)

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r}, project={self.project!r})"

    def close(self) -> None:
        self.engine.dispose()

    # --- projects and keys ----------------------------------------------------------------------

    def create_project(self, name: str) -> str:
        """The id of project ``name``, created if it does not exist yet."""
        if name in self._project_ids:
            return self._project_ids[name]
        if not name or len(name) > 200:
            raise ValidationFailed("invalid project: field 'name': must be 1 to 200 characters")
        with self._writes.begin() as conn:
            pid = conn.execute(select(Project.id).where(Project.name == name)).scalar()
            if pid is None:
                pid = new_id()
                conn.execute(insert(Project).values(id=pid, name=name, settings={}, created_at=records.now()))
        self._project_ids[name] = pid
        return pid

    def _pid(self, project: str | None) -> str:
        name = project or self.project
        if name not in self._project_ids:
            with self.engine.connect() as conn:
                pid = conn.execute(select(Project.id).where(Project.name == name)).scalar()
            if pid is None:
                raise NotFound(f"unknown project {name!r}; create it with store.create_project({name!r})")
            self._project_ids[name] = pid
        return self._project_ids[name]

    def create_api_key(self, project: str, role: str) -> str:
        """A new key for ``project`` with ``role``; the plaintext is returned once and stored hashed."""
        if role not in ROLES:
            raise ValidationFailed(f"invalid api key: field 'role': must be one of {', '.join(ROLES)}")
        pid = self.create_project(project)
        prefix, secret = f"rf_{secrets.token_hex(6)}", secrets.token_urlsafe(24)
        with self._writes.begin() as conn:
            conn.execute(
                insert(ApiKey).values(
                    id=new_id(),
                    project_id=pid,
                    prefix=prefix,
                    role=role,
                    secret_hash=_sha(secret),
                    created_at=records.now(),
                )
            )
        return f"{prefix}.{secret}"

    def check_api_key(self, key: str) -> tuple[str, str] | None:
        """(project name, role) for a valid, unrevoked key; None otherwise."""
        prefix, _, secret = (key or "").partition(".")
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ApiKey.secret_hash, ApiKey.role, Project.name)
                .join(Project)
                .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
            ).first()
        if row is None or not secrets.compare_digest(row.secret_hash, _sha(secret)):
            return None
        return row.name, row.role

    def has_api_key(self, project: str, role: str) -> bool:
        """Whether ``project`` has an active key of ``role``."""
        with self.engine.connect() as conn:
            return conn.execute(select(ApiKey.id).join(Project).where(
                Project.name == project, ApiKey.role == role, ApiKey.revoked_at.is_(None))).first() is not None

    def list_api_keys(self, project: str) -> list[dict[str, Any]]:
        """The keys of ``project`` (prefix, role, created_at, revoked_at), oldest first; never a secret."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ApiKey.prefix, ApiKey.role, ApiKey.created_at, ApiKey.revoked_at)
                .join(Project)
                .where(Project.name == project)
                .order_by(ApiKey.created_at)
            )
            return [dict(r._mapping) for r in rows]

    def revoke_api_key(self, key_or_prefix: str) -> None:
        prefix = key_or_prefix.partition(".")[0]
        with self._writes.begin() as conn:
            n = conn.execute(
                update(ApiKey)
                .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
                .values(revoked_at=records.now())
            ).rowcount
        if not n:
            raise NotFound(f"no active api key with prefix {prefix!r}")

    # --- writes -----------------------------------------------------------------------------------

    def log(
        self,
        messages: list[dict],
        completion: str,
        *,
        model: str | None = None,
        params: dict | None = None,
        thread_id: str | None = None,
        parent_id: str | None = None,
        derived_from_id: str | None = None,
        metadata: dict | None = None,
        idempotency_key: str | None = None,
        id: str | None = None,
        project: str | None = None,
    ) -> str:
        """Record one answer in context; returns its interaction id."""
        rec = records.interaction_record(
            messages,
            completion,
            model=model,
            params=params,
            thread_id=thread_id,
            parent_id=parent_id,
            derived_from_id=derived_from_id,
            metadata=metadata,
            idempotency_key=idempotency_key,
            id=id,
        )
        return writer.write(self._writes, self._pid(project), [rec])[0]

    def feedback(
        self,
        target: str | None,
        kind: str,
        *,
        source: str = "human",
        author: str | None = None,
        idempotency_key: str | None = None,
        project: str | None = None,
        **fields: Any,
    ) -> str:
        """Record one judgement on interaction ``target``; returns the feedback id. See schemas.py per kind."""
        return self.write_batch(
            [
                {
                    "type": "feedback",
                    "target": target,
                    "kind": kind,
                    "source": source,
                    "author": author,
                    "idempotency_key": idempotency_key,
                    **fields,
                }
            ],
            project,
        )[-1]

    def write_batch(
        self, items: Iterable[dict | Interaction | Feedback], project: str | None = None
    ) -> list[str]:
        """Write many records in ONE transaction (all or nothing); returns their ids in order.

        Items are ``Interaction`` / ``Feedback`` records, or dicts ``{"type": "interaction", <log kwargs>}`` /
        ``{"type": "feedback", "target": ..., "kind": ..., <feedback kwargs>}``. An edit adds the corrected
        answer as an interaction derived from the original, written just before its feedback.
        """
        pid, items = self._pid(project), list(items)
        recs, edits = [], []
        for n, item in enumerate(items):
            try:
                rec = _record(item)
            except ValidationFailed as e:
                raise (ValidationFailed(f"item {n}: {e}") if len(items) > 1 else e) from None
            if (
                isinstance(rec, Feedback)
                and rec.kind == FeedbackKind.EDIT
                and "edited_interaction_id" not in rec.payload
            ):
                edits.append(len(recs))
            recs.append(rec)
        if edits:
            originals = {r.id: r for r in recs if isinstance(r, Interaction)}  # this batch first, then the store
            missing = [recs[i].interaction_id for i in edits if recs[i].interaction_id not in originals]
            originals.update(self.get_interactions(missing, project))
            for i in reversed(edits):
                fb = recs[i]
                if fb.interaction_id not in originals:
                    raise NotFound(f"item {i}: unknown interaction id {fb.interaction_id!r}; log it first")
                derived = records.edit_interaction(originals[fb.interaction_id], fb)
                fb.payload["edited_interaction_id"] = derived.id
                fb.targets = [{"interaction_id": derived.id, "role": "result", "position": 0}]
                recs.insert(i, derived)
        ids = writer.write(self._writes, pid, recs)
        drop = {i + k for k, i in enumerate(sorted(edits))}  # positions of the derived interactions
        return [x for n, x in enumerate(ids) if n not in drop]

    # --- reads --------------------------------------------------------------------------------------

    def get_interaction(self, id: str, project: str | None = None) -> Interaction:
        found = self.get_interactions([id], project)
        if id not in found:
            raise NotFound(f"unknown interaction id {id!r}")
        return found[id]

    def get_interactions(self, ids: Iterable[str], project: str | None = None) -> dict[str, Interaction]:
        ids, pid, out = list(dict.fromkeys(ids)), self._pid(project), {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), writer.CHUNK):
                # By primary key alone (a project_id term lets SQLite pick a project-wide index scan);
                # rows of other projects are dropped here.
                q = select(InteractionRow).where(InteractionRow.id.in_(ids[i : i + writer.CHUNK]))
                for row in _rows(conn, q):
                    if row.project_id == pid:
                        out[row.id] = records.interaction_from_row(row)
        return out

    def answers(self, ids: Iterable[str], project: str | None = None) -> dict[str, Answer]:
        """The chat, completion and prompt group of each interaction: what builders read, fast.

        Reads only those columns, and decodes each distinct chat once (answers to one prompt share it).
        """
        ids, pid, out, chats = list(dict.fromkeys(ids)), self._pid(project), {}, {}
        cols = (InteractionRow.id, InteractionRow.project_id, InteractionRow.completion, InteractionRow.context_hash,
                type_coerce(InteractionRow.messages, Text))
        with self.engine.connect() as conn:
            for i in range(0, len(ids), writer.CHUNK):
                q = select(*cols).where(InteractionRow.id.in_(ids[i : i + writer.CHUNK]))
                for iid, row_pid, completion, ctx, raw in conn.execute(q):
                    if row_pid != pid:
                        continue
                    if ctx not in chats:
                        chats[ctx] = json.loads(raw) if isinstance(raw, str) else raw
                    out[iid] = Answer(iid, chats[ctx], completion, ctx)
        return out

    def builder_input(
        self, kinds: Iterable[str], project: str | None = None
    ) -> tuple[list[records.FeedbackView], dict[str, Answer]]:
        """Active feedback of ``kinds``, oldest first, and every answer it names: what builders read.

        The same feedback, targets, spans and answers as ``iter_feedback`` plus ``answers``, read set-wise
        for a million rows: a few queries in one read transaction (one snapshot), each interaction joined
        to the targets that name it in SQL instead of asked for by lists of ids, only the columns builders
        use, and each distinct payload and chat decoded once (equal ones share one object: read-only).
        """
        pid = self._pid(project)
        kinds = [str(FeedbackKind(k)) for k in kinds]
        active = (FeedbackRow.project_id == pid, FeedbackRow.kind.in_(kinds), FeedbackRow.status == "active")
        answer_cols = (
            InteractionRow.project_id,
            InteractionRow.completion,
            InteractionRow.context_hash,
            cast(InteractionRow.messages, Text),
        )
        answers, chats, targets, spans = {}, {}, defaultdict(list), defaultdict(list)

        def answer(iid, row_pid, completion, ctx, raw):
            if row_pid == pid:  # an interaction of another project is not this project's answer
                chat = chats.get(raw)
                if chat is None:
                    chat = chats[raw] = json.loads(raw)
                answers[iid] = Answer(iid, chat, completion, ctx)

        conn_ = self.engine.connect()
        if self.engine.dialect.name == "postgresql":  # every query below sees the same snapshot
            conn_ = conn_.execution_options(isolation_level="REPEATABLE READ")
        with conn_ as conn:
            rows = conn.execute(
                select(
                    FeedbackRow.id,
                    FeedbackRow.kind,
                    FeedbackRow.interaction_id,
                    FeedbackRow.score,
                    FeedbackRow.label,
                    FeedbackRow.text,
                    cast(FeedbackRow.payload, Text),
                )
                .where(*active)
                .order_by(FeedbackRow.id)
            ).all()
            q = (
                select(FeedbackTarget.feedback_id, FeedbackTarget.interaction_id, FeedbackTarget.role,
                       FeedbackTarget.position, *answer_cols)
                .join_from(FeedbackRow, FeedbackTarget, FeedbackTarget.feedback_id == FeedbackRow.id)
                .outerjoin(InteractionRow, InteractionRow.id == FeedbackTarget.interaction_id)
                .where(*active)
            )
            for fid, iid, role, position, *cols in conn.execute(q).all():
                targets[fid].append({"interaction_id": iid, "role": role, "position": position})
                if iid not in answers:
                    answer(iid, *cols)
            if any(r[2] is not None and r[2] not in answers for r in rows):  # subjects no target names
                q = select(InteractionRow.id, *answer_cols).join_from(
                    FeedbackRow, InteractionRow, InteractionRow.id == FeedbackRow.interaction_id
                ).where(*active)
                for iid, *cols in conn.execute(q).all():
                    if iid not in answers:
                        answer(iid, *cols)
            if "span" in kinds:
                q = select(FeedbackSpan).join_from(FeedbackRow, FeedbackSpan).where(*active)
                for s in conn.execute(q).all():
                    spans[s.feedback_id].append(s)
        return _feedback_views(rows, targets, spans), answers

    def get_feedback(self, id: str, project: str | None = None) -> Feedback:
        with self.engine.connect() as conn:
            rows = list(
                _rows(
                    conn,
                    select(FeedbackRow).where(
                        FeedbackRow.project_id == self._pid(project), FeedbackRow.id == id
                    ),
                )
            )
            if not rows:
                raise NotFound(f"unknown feedback id {id!r}")
            return self._feedback_records(conn, rows)[0]

    def iter_interactions(
        self,
        *,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 1000,
        project: str | None = None,
    ) -> Iterator[Interaction]:
        """Every interaction, oldest first, read in pages of ``page_size`` (keyset on id)."""
        q = select(InteractionRow).where(InteractionRow.project_id == self._pid(project))
        q = _window(q, InteractionRow, since, until)
        if model is not None:
            q = q.where(InteractionRow.model == model)
        for page in _pages(self.engine, q, InteractionRow.id, page_size):
            yield from (records.interaction_from_row(r) for r in page)

    def iter_feedback(
        self,
        *,
        kinds: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        model: str | None = None,
        author: str | None = None,
        source: str | None = None,
        include_inactive: bool = False,
        page_size: int = 1000,
        project: str | None = None,
    ) -> Iterator[Feedback]:
        """Feedback records, oldest first, in pages; filters by kind, time, judged model, author, source."""
        q = select(FeedbackRow).where(FeedbackRow.project_id == self._pid(project))
        q = _window(q, FeedbackRow, since, until)
        if kinds is not None:
            q = q.where(FeedbackRow.kind.in_([str(FeedbackKind(k)) for k in kinds]))
        if not include_inactive:
            q = q.where(FeedbackRow.status == "active")
        if source is not None:
            q = q.where(FeedbackRow.source == source)
        if author is not None:
            q = q.where(FeedbackRow.actor_id.in_(select(Actor.id).where(Actor.external_id == author)))
        if model is not None:
            q = q.where(
                FeedbackRow.interaction_id.in_(select(InteractionRow.id).where(InteractionRow.model == model))
            )
        for page in _pages(self.engine, q, FeedbackRow.id, page_size):
            with self.engine.connect() as conn:
                records_ = self._feedback_records(conn, page)
            yield from records_  # no connection stays open while the caller holds the generator

    def _feedback_records(self, conn, rows) -> list[Feedback]:
        # Pages are id-ordered, so their targets and spans are one index range scan each (no IN list
        # of thousands of ids); rows in the range that belong to other feedback are ignored.
        lo, hi = min(r.id for r in rows), max(r.id for r in rows)
        targets, spans = defaultdict(list), defaultdict(list)
        for t in conn.execute(select(FeedbackTarget).where(FeedbackTarget.feedback_id.between(lo, hi))):
            targets[t.feedback_id].append(t)
        if any(r.kind == "span" for r in rows):
            for s in conn.execute(select(FeedbackSpan).where(FeedbackSpan.feedback_id.between(lo, hi))):
                spans[s.feedback_id].append(s)
        authors = dict(
            conn.execute(
                select(Actor.id, Actor.external_id).where(Actor.id.in_({r.actor_id for r in rows}))
            ).all()
        )
        return [
            records.feedback_from_row(r, targets[r.id], spans[r.id], authors.get(r.actor_id)) for r in rows
        ]

    def unlabelled_interactions(self, limit: int = 50, project: str | None = None) -> list[Interaction]:
        """The oldest interactions nobody has judged yet (the review queue)."""
        pid = self._pid(project)
        judged = select(FeedbackRow.interaction_id).where(FeedbackRow.interaction_id.is_not(None))
        targeted = select(FeedbackTarget.interaction_id)
        q = (
            select(InteractionRow)
            .where(
                InteractionRow.project_id == pid,
                InteractionRow.id.not_in(judged),
                InteractionRow.id.not_in(targeted),
                InteractionRow.derived_from_id.is_(None),
            )
            .order_by(InteractionRow.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [records.interaction_from_row(r) for r in _rows(conn, q)]

    def stats(self, project: str | None = None) -> dict[str, Any]:
        pid = self._pid(project)
        with self.engine.connect() as conn:
            n_int = conn.execute(
                select(func.count()).select_from(InteractionRow).where(InteractionRow.project_id == pid)
            ).scalar()
            kinds = dict(
                conn.execute(
                    select(FeedbackRow.kind, func.count())
                    .where(FeedbackRow.project_id == pid)
                    .group_by(FeedbackRow.kind)
                ).all()
            )
            sources = dict(
                conn.execute(
                    select(FeedbackRow.source, func.count())
                    .where(FeedbackRow.project_id == pid)
                    .group_by(FeedbackRow.source)
                ).all()
            )
        return {
            "project": project or self.project,
            "interactions": n_int,
            "feedback": sum(kinds.values()),
            "feedback_by_kind": dict(sorted(kinds.items())),
            "feedback_by_source": dict(sorted(sources.items())),
        }


def _record(item) -> Interaction | Feedback:
    if isinstance(item, Interaction | Feedback):
        return item
    if not isinstance(item, dict) or item.get("type") not in ("interaction", "feedback"):
        raise ValidationFailed(
            "field 'type': each item must be a dict with type 'interaction' or 'feedback', "
            "or an Interaction / Feedback record"
        )
    body = {k: v for k, v in item.items() if k != "type"}
    if item["type"] == "interaction":
        if "messages" not in body or "completion" not in body:
            raise ValidationFailed("invalid interaction: fields 'messages' and 'completion' are required")
        return records.interaction_record(body.pop("messages"), body.pop("completion"), **body)
    if "kind" not in body:
        raise ValidationFailed("invalid feedback: field 'kind' is required")
    return records.feedback_record(
        body.pop("target", None),
        body.pop("kind"),
        source=body.pop("source", "human") or "human",
        author=body.pop("author", None),
        idempotency_key=body.pop("idempotency_key", None),
        fields=body,
    )


def _rows(conn, q):
    return conn.execute(q).all()


def _window(q, table, since, until):
    if since is not None:
        q = q.where(table.created_at >= since)
    if until is not None:
        q = q.where(table.created_at < until)
    return q


def _pages(engine, q, key, page_size: int):
    """Keyset pagination on ``key`` (time-ordered ids): each page is one short read, no OFFSET."""
    last = None
    while True:
        page_q = q.order_by(key).limit(page_size)
        if last is not None:
            page_q = page_q.where(key > last)
        with engine.connect() as conn:
            page = list(_rows(conn, page_q))
        if not page:
            return
        yield page
        last = page[-1].id
        if len(page) < page_size:
            return


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _feedback_views(rows, targets: dict, spans: dict) -> list[records.FeedbackView]:
    """``FeedbackView``s from ``builder_input``'s rows: each distinct payload decoded once, span rows
    folded into their payload, targets in their canonical order."""
    payloads, kind_of, out = {}, {str(k): k for k in FeedbackKind}, []
    for fid, kind, iid, score, label, text, raw in rows:
        payload = payloads.get(raw)
        if payload is None:
            payload = payloads[raw] = json.loads(raw)
        if kind == "span":
            payload = records.span_payload(payload, spans[fid])
        ts = targets.get(fid, [])
        if len(ts) > 1:
            ts.sort(key=records.target_order)
        out.append(records.FeedbackView(fid, kind_of[kind], iid, score, label, text, payload, ts))
    return out
