"""Every kind through HTTP; bad payloads get a 4xx naming the field and write nothing; idempotency."""

from __future__ import annotations

import uuid


def _two(server) -> tuple[str, str]:
    with server.client(server.ingest) as c:
        ids = [
            c.post(
                "/v1/interactions",
                json={"messages": [{"role": "user", "content": "2+2?"}], "completion": text},
            ).json()["id"]
            for text in ("4, surely", "5")
        ]
    return ids[0], ids[1]


def test_every_kind_lands_in_the_store(server, store):
    a, b = _two(server)
    bodies = [
        {"kind": "rating", "interaction_id": a, "score": 4, "scale": [1, 5]},
        {"kind": "thumbs", "interaction_id": b, "up": False},
        {"kind": "preference", "interaction_id": a, "rejected": b, "strength": 0.9},
        {"kind": "ranking", "ranking": [a, b]},
        {"kind": "critique", "interaction_id": b, "text": "wrong sum"},
        {"kind": "edit", "interaction_id": b, "text": "4"},
        {"kind": "span", "interaction_id": a, "start": 3, "end": 9, "category": "hedging", "severity": 1},
        {"kind": "retry", "interaction_id": b},
        {"kind": "followup", "interaction_id": b, "text": "no, it's 4", "label": "correction"},
        {"kind": "principle", "text": "Answer with the number only.", "applies_when": "arithmetic"},
        {"kind": "signal", "interaction_id": a, "signal": "copy", "propensity": 0.5, "source": "implicit"},
        {"kind": "outcome", "interaction_id": b, "passed": False, "verifier": "arithmetic", "source": "rule"},
    ]
    with server.client(server.feedback) as c:
        ids = [c.post("/v1/feedback", json=body) for body in bodies]
    assert [r.status_code for r in ids] == [201] * len(bodies), [r.text for r in ids if r.status_code != 201]
    got = {f.id: f for f in store.iter_feedback()}
    stored = [got[r.json()["id"]] for r in ids]
    assert [str(f.kind) for f in stored] == [b["kind"] if b["kind"] != "thumbs" else "rating" for b in bodies]
    assert stored[6].payload["spans"][0]["quote"] == "surely"
    assert store.get_interaction(stored[5].payload["edited_interaction_id"]).completion == "4"


def test_bad_payloads_name_the_field_and_write_nothing(server, store):
    a, _ = _two(server)
    before = store.stats()
    cases = [
        ({"kind": "rating", "interaction_id": a, "score": 9}, "score"),
        ({"kind": "rating", "interaction_id": a, "score": 3, "stars": 1}, "stars"),
        ({"kind": "sparkle", "interaction_id": a}, "kind"),
        ({"kind": "span", "interaction_id": a, "start": 0, "end": 999}, "end"),
        ({"kind": "thumbs", "interaction_id": a, "up": "maybe"}, "up"),
        ({"interaction_id": a}, "kind"),
    ]
    with server.client(server.feedback) as c:
        for body, field in cases:
            r = c.post("/v1/feedback", json=body)
            assert r.status_code == 422, (body, r.text)
            assert field in r.text, (body, r.text)
        r = c.post(
            "/v1/feedback/batch",
            json={
                "items": [
                    {"kind": "critique", "interaction_id": a, "text": "ok"},
                    {"kind": "rating", "interaction_id": a, "score": 0},
                ]
            },
        )
        assert r.status_code == 422 and "score" in r.text
        r = c.post(
            "/v1/feedback/batch",
            json={
                "items": [
                    {"kind": "critique", "interaction_id": a, "text": "ok"},
                    {"kind": "critique", "interaction_id": "nope", "text": "x"},
                ]
            },
        )
        assert r.status_code == 404 and "nope" in r.text
        assert (
            c.post(
                "/v1/feedback", content=b"{not json", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
        # A lone surrogate, legal as a JSON escape, is no storable text: 422 naming the field, not a 500.
        raw = '{"kind": "critique", "interaction_id": "' + a + '", "text": "ok", "author": "\\ud800"}'
        r = c.post("/v1/feedback", content=raw.encode(), headers={"content-type": "application/json"})
        assert r.status_code == 422 and "'author'" in r.text, r.text
    assert store.stats() == before


def test_idempotency_key_header_and_conflict(server, store):
    a, _ = _two(server)
    key = str(uuid.uuid4())
    body = {"kind": "critique", "interaction_id": a, "text": "terse"}
    with server.client(server.feedback) as c:
        first = c.post("/v1/feedback", json=body, headers={"Idempotency-Key": key})
        again = c.post("/v1/feedback", json=body, headers={"Idempotency-Key": key})
        other = c.post("/v1/feedback", json={**body, "text": "verbose"}, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert first.json() == again.json()
    assert other.status_code == 409 and "different body" in other.text
    assert sum(f.idempotency_key == key for f in store.iter_feedback()) == 1
    batch = {"items": [{**body, "idempotency_key": f"{key}-{n}"} for n in range(3)]}
    with server.client(server.feedback) as c:
        made, replayed = c.post("/v1/feedback/batch", json=batch), c.post("/v1/feedback/batch", json=batch)
    assert (
        made.status_code == 201
        and replayed.status_code == 200
        and replayed.headers["idempotent-replayed"] == "true"
    )
    assert made.json() == replayed.json() and len(set(made.json()["ids"])) == 3


def test_review_queue_and_exports(server):
    a, b = _two(server)
    with server.client(server.admin) as c:
        queue = [i["id"] for i in c.get("/v1/review", params={"limit": 200}).json()]
        assert a in queue and b in queue
        c.post("/v1/feedback", json={"kind": "thumbs", "interaction_id": a, "up": True})
        assert a not in [i["id"] for i in c.get("/v1/review", params={"limit": 200}).json()]
        lines = c.get("/v1/export").text.splitlines()
        assert any(a in line for line in lines)
        assert c.get("/v1/datasets/unpaired").status_code == 200
        assert c.get("/v1/datasets/nope").status_code == 404
        assert c.get("/openapi.json").json()["paths"]["/v1/feedback"]["post"]
