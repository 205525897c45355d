"""Writing records: one transaction per batch, idempotency keys, references checked, retries on "busy".

All or nothing: a batch that fails validation or references an unknown interaction writes nothing.
Idempotency (FEEDBACK.md 4.4): every record has a key (the given one, else its id, so re-importing an
export is a no-op); a key seen before with the same request hash returns the original id;
with another body it raises :class:`IdempotencyConflict`. SQLite allows one writer at a time; when
several processes write at once, "database is locked" is retried here with backoff and never reaches
the caller.
"""

from __future__ import annotations

import functools
import random
import time
import weakref
from collections.abc import Sequence
from operator import itemgetter

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError

from refeed.store import checks, records
from refeed.store.errors import IdempotencyConflict, NotFound, StoreError, Unavailable, ValidationFailed
from refeed.store.tables import Actor, FeedbackRow, FeedbackSpan, FeedbackTarget, InteractionRow
from refeed.types import Feedback, FeedbackKind, Interaction

CHUNK = 500  # ids per IN (...) query: far below SQLite's and PostgreSQL's parameter limits


def write(
    engine: Engine, project_id: str, items: Sequence[Interaction | Feedback], retries: int = 50, after=None
) -> list[str]:
    """Write ``items`` in one transaction; return their ids in order (existing ids for replays).

    ``after(conn, ids)``, if given, runs in the same transaction once the records are in (side rows
    such as ``refeed.store.tokens``'s), so they commit, retry and fail together with them.

    Every record is checked against what the database refuses before the transaction starts
    (``checks.check_record``). A failure of the database itself (down, restarted, the connection cut)
    raises :class:`Unavailable`; retrying with the same idempotency keys is safe (a commit that landed
    before the connection died answers as a replay).
    """
    for n, rec in enumerate(items):
        try:
            checks.check_record(rec)
        except ValidationFailed as e:
            raise (ValidationFailed(f"item {n}: {e}") if len(items) > 1 else e) from None
    for attempt in range(retries):
        learned: dict[tuple[str, str], str] = {}
        try:
            with engine.begin() as conn:
                ids = _write(conn, project_id, list(items), learned)
                if after is not None:
                    after(conn, ids)
            _ACTOR_IDS.setdefault(engine, {}).update(learned)  # committed: safe to reuse
            return ids
        except OperationalError as e:  # SQLite busy beyond busy_timeout: back off and try again
            if not _busy(e) or attempt == retries - 1:
                raise Unavailable(f"the database is unavailable: {_first_line(e)}; retry") from e
        except IntegrityError as e:
            if not _idempotency_race(e) or attempt == retries - 1:
                raise StoreError(f"the write broke a database constraint: {e.orig}") from None
            # else a concurrent writer inserted the same idempotency key or actor first: the retry sees it
        except DataError as e:  # a value checks.py let through and the database still refused
            raise ValidationFailed(f"the database refused a value: {_first_line(e)}") from None
        except DBAPIError as e:
            if not e.connection_invalidated and not isinstance(e, InterfaceError):
                raise
            raise Unavailable(f"the database connection failed: {_first_line(e)}; retry") from e
        time.sleep(min(1.0, 0.01 * 2 ** min(attempt, 6)) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _first_line(e: DBAPIError) -> str:
    return str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else type(e.orig).__name__


def _busy(e: OperationalError) -> bool:
    msg = str(e.orig).lower()
    return "locked" in msg or "busy" in msg


def _idempotency_race(e: IntegrityError) -> bool:
    """A unique index another transaction filled first: an idempotency key (the retry replays it) or
    an actor's fingerprint (a new author's first feedback written twice at once; the retry finds it)."""
    msg = str(e.orig)  # the driver's message only: the SQL text would mention every column
    return ("UNIQUE constraint failed" in msg or "duplicate key" in msg) and ("idem" in msg or "fingerprint" in msg)


# (project id, actor fingerprint) -> actor id, per engine, for actor rows known to be committed. Actors
# are never deleted or changed, so a write by a known author skips the actor lookup (one round trip
# of a PostgreSQL group commit's six).
_ACTOR_IDS: weakref.WeakKeyDictionary[Engine, dict[tuple[str, str], str]] = weakref.WeakKeyDictionary()


def _write(conn: Connection, project_id: str, items: list, learned: dict | None = None) -> list[str]:
    inter = [r for r in items if isinstance(r, Interaction)]
    fbs = [r for r in items if isinstance(r, Feedback)]
    replay = _replays(conn, project_id, InteractionRow, inter) | _replays(conn, project_id, FeedbackRow, fbs)
    new_inter = [r for r in inter if r.id not in replay]
    new_fbs = [r for r in fbs if r.id not in replay]
    completions = _completions(conn, project_id, new_inter, new_fbs)
    i_rows = [records.interaction_row(r, project_id) for r in _referenced_first(new_inter)]
    f_rows, t_rows, s_rows = [], [], []
    actors = _actors(conn, project_id, new_fbs, learned if learned is not None else {})
    for fb in new_fbs:
        completion = completions.get(fb.interaction_id) if fb.kind == FeedbackKind.SPAN else None
        row, targets, spans = records.feedback_rows(
            fb, project_id, actors[(fb.source, fb.author)], completion
        )
        f_rows.append(row)
        t_rows += targets
        s_rows += spans
    for table, rows in (
        (InteractionRow, i_rows),
        (FeedbackRow, f_rows),
        (FeedbackTarget, t_rows),
        (FeedbackSpan, s_rows),
    ):
        if rows:
            _insert_many(conn, table.__table__, rows)
    return [replay.get(r.id, r.id) for r in items]


def _insert_many(conn: Connection, table, rows: list[dict]) -> None:
    """``conn.execute(insert(table), rows)`` for rows with one set of keys, minus its per-row bookkeeping.

    The same SQL and the same values: the statement is compiled once per table and key set, each value
    goes through its column type's bind processor (JSON, datetimes), and the DBAPI's executemany runs it.
    SQLAlchemy's own path rebuilds a parameter dict per row, a sixth of the write path's CPU at 5,000 rows.
    The rows are updated in place (they are this module's, made for this one insert).
    """
    first = rows[0].keys()
    if any(r.keys() != first for r in rows):
        conn.execute(insert(table), rows)  # mixed key sets: let SQLAlchemy sort them out
        return
    sql, names, procs = _compiled_insert(conn.dialect, table, tuple(first))
    for k, p in procs:
        for r in rows:
            r[k] = p(r[k])
    if conn.dialect.positional:
        params = list(map(itemgetter(*names), rows))
    else:
        params = [{name: r[k] for name, k in names} for r in rows]
    conn.exec_driver_sql(sql, params)


@functools.lru_cache(maxsize=256)
def _compiled_insert(dialect, table, keys: tuple[str, ...]):
    """(SQL, the keys in placeholder order or (placeholder name, key) pairs, [(key, bind processor)])."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    key_of = {compiled.bind_names[b]: b.key for b in compiled.binds.values()}
    if len(keys) < 2 or set(key_of.values()) != set(keys):
        raise StoreError(f"insert into {table.name}: the compiled statement binds {sorted(key_of.values())}")
    if dialect.positional:
        names = tuple(key_of[n] for n in compiled.positiontup)
    else:
        names = tuple((compiled.escaped_bind_names.get(n, n), k) for n, k in key_of.items())
    procs = [(k, p) for k in keys if (p := table.c[k].type.dialect_impl(dialect).bind_processor(dialect))]
    return compiled.string, names, procs


def _referenced_first(recs: list[Interaction]) -> list[Interaction]:
    """Order interactions so that a parent or original is inserted before what points at it."""
    pending, done, out = list(recs), set(), []
    batch_ids = {r.id for r in recs}
    while pending:
        ready = [
            r
            for r in pending
            if all(x not in batch_ids or x in done for x in (r.parent_id, r.derived_from_id))
        ]
        if not ready:
            raise StoreError(
                f"interactions {sorted(r.id for r in pending)[:3]} reference each other in a cycle"
            )
        out += ready
        done.update(r.id for r in ready)
        pending = [r for r in pending if r.id not in done]
    return out


def _replays(conn, project_id, table, recs) -> dict[str, str]:
    """{record id: stored id} for records whose idempotency key exists; conflicts raise."""
    keyed = {}
    for r in recs:
        key = r.idempotency_key or r.id
        first = keyed.setdefault(key, r)
        if first is not r and records.request_hash(first) != records.request_hash(r):
            raise IdempotencyConflict(
                f"idempotency key {key!r} appears twice in one batch with different bodies"
            )
    out = {}
    keys = list(keyed)
    for i in range(0, len(keys), CHUNK):
        q = select(table.idempotency_key, table.id, table.request_hash).where(
            table.project_id == project_id, table.idempotency_key.in_(keys[i : i + CHUNK])
        )
        for key, stored_id, stored_hash in conn.execute(q):
            rec = keyed[key]
            if stored_hash != records.request_hash(rec):
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was used before (id {stored_id}) with a different body; "
                    "use a new key for a new record"
                )
            out[rec.id] = stored_id
    for r in recs:  # in-batch duplicates of one key point at its first record
        key = r.idempotency_key or r.id
        if keyed[key] is not r:
            out[r.id] = out.get(keyed[key].id, keyed[key].id)
    return out


# Interaction ids a payload names (a retry's regeneration, a follow-up's next turn): checked like targets.
_PAYLOAD_REFS = ("regeneration_id", "followup_interaction_id")


def _completions(conn, project_id, new_inter, new_fbs) -> dict[str, str]:
    """Check every referenced interaction exists (in this batch or this project); return the
    completions that span feedback needs."""
    known = {r.id: r.completion for r in new_inter}
    wanted = set()
    for r in new_inter:
        wanted.update(x for x in (r.parent_id, r.derived_from_id) if x is not None)
    for fb in new_fbs:
        wanted.update(t["interaction_id"] for t in fb.targets)
        if fb.interaction_id is not None:
            wanted.add(fb.interaction_id)
        wanted.update(fb.payload[k] for k in _PAYLOAD_REFS if isinstance(fb.payload.get(k), str))
    missing = list(wanted - known.keys())
    for i in range(0, len(missing), CHUNK):
        # By primary key alone (see Store.get_interactions); other projects' rows are dropped here.
        q = select(InteractionRow.id, InteractionRow.completion, InteractionRow.project_id).where(
            InteractionRow.id.in_(missing[i : i + CHUNK])
        )
        known.update((k, c) for k, c, p in conn.execute(q) if p == project_id)
    absent = sorted(wanted - known.keys())
    if absent:
        raise NotFound(
            f"unknown interaction id {absent[0]!r}"
            + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
            + " in this project; log the interaction first"
        )
    return known


def _actors(conn, project_id, fbs, learned: dict) -> dict[tuple, str]:
    """Get or create one actor row per (source, author); ``learned`` gets (project, fingerprint) -> id
    of every actor this transaction saw, for the cache once it commits."""
    wanted = {(fb.source, fb.author) for fb in fbs}
    known = _ACTOR_IDS.get(conn.engine, {})
    out = {}
    for source, author in wanted:
        fp = records.canonical_hash([str(source), author])
        found = known.get((project_id, fp))
        if found is None:
            found = conn.execute(
                select(Actor.id).where(Actor.project_id == project_id, Actor.fingerprint == fp)
            ).scalar()
        if found is None:
            found = records.new_id()
            conn.execute(
                insert(Actor).values(
                    id=found,
                    project_id=project_id,
                    kind=str(source),
                    external_id=author,
                    fingerprint=fp,
                    created_at=records.now(),
                )
            )
        out[(source, author)] = found
        learned[(project_id, fp)] = found
    return out
