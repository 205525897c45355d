"""Concurrent feedback requests share commits (refeed.api.group_commit), yet each gets its own outcome:
good ones 201, an unknown interaction 404, a reused key with another body 409, and the store holds
exactly the accepted ones."""

from __future__ import annotations

import asyncio

import httpx


async def _send(server, bodies):
    headers = {"Authorization": f"Bearer {server.feedback}"}
    async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=60) as c:
        return await asyncio.gather(*(c.post("/v1/feedback", json=b) for b in bodies))


def test_concurrent_writes_each_get_their_own_outcome(server, store):
    with server.client(server.ingest) as c:
        a = c.post(
            "/v1/interactions", json={"messages": [{"role": "user", "content": "hi"}], "completion": "hello"}
        ).json()["id"]
    good = [
        {"kind": "thumbs", "interaction_id": a, "up": True, "idempotency_key": f"gc-{i}"} for i in range(60)
    ]
    replay = [dict(good[0])]  # same key, same body: the same id
    unknown = [{"kind": "thumbs", "interaction_id": f"missing-{i}", "up": True} for i in range(5)]
    conflict = [{**good[1], "up": False}]  # same key, another body
    bodies = good + replay + unknown + conflict
    replies = asyncio.run(_send(server, bodies))
    codes = [r.status_code for r in replies]
    # good[1] and its conflicting twin race: whichever commits first wins, the other is a 409.
    assert sorted([codes[1], codes[-1]]) == [201, 409], codes
    winner = replies[1] if codes[1] == 201 else replies[-1]
    assert codes[2:60] == [201] * 58 and codes[61:66] == [404] * 5, codes
    # Whichever of the twins commits first is new (201); the other replays it (200, the same id).
    assert replies[60].json() == replies[0].json() and sorted([codes[0], codes[60]]) == [200, 201]
    ids = {r.json()["id"] for r in replies[:61] + replies[-1:] if r.status_code in (200, 201)}
    stored = {f.id: f for f in store.iter_feedback() if (f.idempotency_key or "").startswith("gc-")}
    assert set(stored) == ids and len(ids) == 60
    assert stored[winner.json()["id"]].score == (1.0 if winner is replies[1] else 0.0)
