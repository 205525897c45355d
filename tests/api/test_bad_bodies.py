"""One bad body never fails another client's write (issue 11, hardening 1), on SQLite and PostgreSQL.

200 valid writes from concurrent clients are interleaved with bodies the database would refuse (NUL in a
text, a span category over its 100-character column, a follow-up label over 200, a non-finite score):
every valid write is 201 and stored, every bad one a 422 naming its field. A value the database refuses
although validation let it through (a trigger stands in for that) fails only its own request: the group
commit retries its members one by one.
"""

# ruff: noqa: UP031  (raw JSON bodies: %s keeps their braces readable; json.dumps cannot write 1e999)

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import create_engine, text

from refeed.store import Store


def _interaction(server) -> str:
    with server.client(server.ingest) as c:
        r = c.post("/v1/interactions", json={"messages": [{"role": "user", "content": "q"}],
                                             "completion": "an answer with some words"})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _send(server, bodies: list) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {server.feedback}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=60, limits=limits) as c:
        return await asyncio.gather(
            *(c.post("/v1/feedback", content=b, headers={"content-type": "application/json"}) for b in bodies)
        )


def _bad_bodies(iid: str) -> list[tuple[str, str]]:
    """(raw JSON body, the field its 422 must name)."""
    return [
        ('{"kind": "critique", "interaction_id": "%s", "text": "a\\u0000b"}' % iid, "'text'"),
        ('{"kind": "span", "interaction_id": "%s", "start": 0, "end": 2, "category": "%s"}' % (iid, "c" * 101),
         "category"),
        ('{"kind": "followup", "interaction_id": "%s", "text": "no", "label": "%s"}' % (iid, "l" * 201), "label"),
        ('{"kind": "signal", "interaction_id": "%s", "signal": "dwell", "value": 1e999}' % iid, "value"),
        ('{"kind": "critique", "interaction_id": "%s", "text": "ok", "author": "x\\u0000"}' % iid, "author"),
    ]  # fmt: skip


def test_bad_bodies_get_422_and_never_fail_valid_writes(any_server):
    iid = _interaction(any_server)
    bad = _bad_bodies(iid)
    bodies, expect = [], []
    for n in range(200):
        bodies.append('{"kind": "critique", "interaction_id": "%s", "text": "fine %d", '
                      '"idempotency_key": "bad-bodies-%s-%d"}' % (iid, n, iid, n))  # fmt: skip
        expect.append(None)
        if n % 4 == 0:
            body, field = bad[(n // 4) % len(bad)]
            bodies.append(body)
            expect.append(field)
    replies = asyncio.run(_send(any_server, bodies))
    for r, field in zip(replies, expect, strict=True):
        if field is None:
            assert r.status_code == 201, r.text
        else:
            assert r.status_code == 422 and field in r.text, (field, r.status_code, r.text)
    store = Store(any_server.store_url)
    stored = [f for f in store.iter_feedback(kinds=["critique", "span", "followup", "signal"])
              if f.interaction_id == iid]  # fmt: skip
    store.close()
    assert len(stored) == 200 and all(f.text.startswith("fine ") for f in stored)


def test_a_refusal_inside_the_shared_commit_fails_only_its_own_request(any_server):
    """A trigger refuses one text at the database, after validation: the group is retried one by one."""
    iid = _interaction(any_server)
    engine = create_engine(any_server.store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        if sqlite:
            conn.execute(text("CREATE TRIGGER refuse_text BEFORE INSERT ON feedback WHEN NEW.text = 'refused' "
                              "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"))  # fmt: skip
        else:
            conn.execute(text("CREATE FUNCTION refuse_text() RETURNS trigger AS $$ BEGIN IF NEW.text = 'refused' "
                              "THEN RAISE EXCEPTION 'refused by trigger' USING ERRCODE = '22000'; END IF; "
                              "RETURN NEW; END $$ LANGUAGE plpgsql"))  # fmt: skip
            conn.execute(text("CREATE TRIGGER refuse_text BEFORE INSERT ON feedback "
                              "FOR EACH ROW EXECUTE FUNCTION refuse_text()"))  # fmt: skip
    try:
        bodies = [
            '{"kind": "critique", "interaction_id": "%s", "text": "%s"}' % (iid, "refused" if n % 10 == 5 else f"ok {n}")
            for n in range(80)
        ]  # fmt: skip
        codes = [r.status_code for r in asyncio.run(_send(any_server, bodies))]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_text" + ("" if sqlite else " ON feedback")))
        engine.dispose()
    assert [c for n, c in enumerate(codes) if n % 10 != 5] == [201] * 72, codes
    assert all(400 <= c < 500 for n, c in enumerate(codes) if n % 10 == 5), codes
