"""What the database would refuse, refused before the transaction with a message naming the field.

PostgreSQL refuses a NUL character in any text (and in JSONB), a string longer than its ``String(n)``
column, and ``NaN`` / ``Infinity`` in JSON; SQLite stores them, but then the export writes ``Infinity``,
which is not JSON. A refusal inside a shared commit (``refeed.api.group_commit``) would fail every
write in it, so every record is checked here first, on the SDK path and the HTTP path alike:

- no NUL and no lone UTF-16 surrogate in any string (keys of JSON objects included);
- no string longer than its column (the lengths are read from ``tables.py``, so they never drift),
  nor longer than ``MAX_TEXT`` characters in a text column or inside JSON;
- every number finite, every integer within 64 bits;
- JSON values (messages, params, metadata, payload) nested at most ``MAX_DEPTH`` deep.

The walk is iterative, so a deeply nested value is refused instead of raising ``RecursionError``.
"""

from __future__ import annotations

import dataclasses
import math
import re

from refeed.store.errors import ValidationFailed
from refeed.store.tables import Actor, FeedbackRow, FeedbackSpan, InteractionRow
from refeed.types import Feedback, Interaction

MAX_TEXT = 200_000  # characters in one text: a completion, a critique, a message's content, a comment
MAX_DEPTH = 32  # nesting of a JSON value: a chat message with content parts is 4 deep
MAX_INT = 2**63  # integers beyond 64 bits are no column's and no JSON reader's

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def _lengths(**columns) -> dict[str, int]:
    return {field: col.type.length for field, col in columns.items()}


# record field -> the String(n) column it lands in
_LENGTHS = {
    Interaction: _lengths(
        id=InteractionRow.id,
        thread_id=InteractionRow.thread_id,
        model=InteractionRow.model,
        idempotency_key=InteractionRow.idempotency_key,
    ),
    Feedback: _lengths(
        id=FeedbackRow.id,
        label=FeedbackRow.label,
        idempotency_key=FeedbackRow.idempotency_key,
        author=Actor.external_id,
    ),
}
SPAN_CATEGORY = FeedbackSpan.category.type.length


def check_record(rec: Interaction | Feedback) -> None:
    """Raise :class:`ValidationFailed` if the database could refuse ``rec`` (see the module docstring)."""
    what = "interaction" if isinstance(rec, Interaction) else f"{rec.kind} feedback"
    for name, limit in _LENGTHS[type(rec)].items():
        value = getattr(rec, name)
        if isinstance(value, str) and len(value) > limit:
            raise ValidationFailed(
                f"invalid {what}: field {name!r}: at most {limit} characters (got {len(value)})"
            )
    for f in dataclasses.fields(rec):
        if f.name != "created_at":
            check_value(getattr(rec, f.name), f.name, what)
    if isinstance(rec, Feedback):
        for n, span in enumerate(rec.payload.get("spans") or []):
            category = span.get("category") if isinstance(span, dict) else None
            if isinstance(category, str) and len(category) > SPAN_CATEGORY:
                raise ValidationFailed(
                    f"invalid {what}: field 'spans.{n}.category': at most {SPAN_CATEGORY} characters "
                    f"(got {len(category)})"
                )


def check_value(value, field: str, what: str = "record") -> None:
    """Walk ``value`` (a string, number or JSON value) without recursion; refuse what no database stores."""
    stack = [(value, (field,), 0)]
    while stack:
        v, path, depth = stack.pop()
        if isinstance(v, str):
            _check_text(v, path, what)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, float):
            if not math.isfinite(v):
                _fail(what, path, f"must be a finite number (got {v})")
        elif isinstance(v, int):
            if not -MAX_INT < v < MAX_INT:
                _fail(what, path, "an integer beyond 64 bits")
        elif isinstance(v, dict | list | tuple):
            if depth >= MAX_DEPTH:
                _fail(what, path, f"nested deeper than {MAX_DEPTH} levels")
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, x in items:
                if isinstance(k, str):
                    _check_text(k, (*path, k), what)
                stack.append((x, (*path, k), depth + 1))


def _check_text(s: str, path: tuple, what: str) -> None:
    if len(s) > MAX_TEXT:
        _fail(what, path, f"at most {MAX_TEXT} characters (got {len(s)})")
    bad = _BAD_CHAR.search(s)
    if bad is not None:
        char = bad.group()
        why = "a NUL character (\\u0000)" if char == "\x00" else "a lone UTF-16 surrogate"
        _fail(what, path, f"contains {why}, which no database stores as text; remove it")


def _fail(what: str, path: tuple, rule: str):
    name = ".".join(str(p) for p in path)
    raise ValidationFailed(f"invalid {what}: field {name!r}: {rule}")
