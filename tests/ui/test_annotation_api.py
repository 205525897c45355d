"""The annotation routes over real HTTP (``refeed serve`` without a model): retract and supersede through
the API with keys and tokens, the review queue, assignments, agreement and the overview with builder
counts that match the builders run directly."""

from __future__ import annotations

import uuid

from refeed.datasets import BUILDERS
from refeed.store import Store
from refeed.store import annotation as ann

Q = [{"role": "user", "content": "what is 2+2?"}]


def _log(server, text: str, model: str = "m-api") -> str:
    with server.client(server.ingest) as c:
        return c.post("/v1/interactions", json={"messages": Q, "completion": text, "model": model}).json()[
            "id"
        ]


def test_second_click_retracts_or_supersedes(server):
    i = _log(server, "4")
    body = {"kind": "thumbs", "interaction_id": i, "up": True, "author": "ana"}
    with server.client(server.feedback) as c:
        up = c.post("/v1/feedback", json=body).json()["id"]
        r = c.post(f"/v1/feedback/{up}/supersede", json={**body, "up": False, "idempotency_key": "s1"})
        assert r.status_code == 201, r.text
        down = r.json()["id"]
        assert c.post(
            f"/v1/feedback/{up}/supersede", json={**body, "up": False, "idempotency_key": "s1"}
        ).json() == {"id": down}  # a double click replays
        again = c.post(f"/v1/feedback/{up}/supersede", json={**body, "idempotency_key": "s2"})
        assert again.status_code == 422 and "superseded" in again.json()["detail"]
        assert c.post(f"/v1/feedback/{down}/retract").json() == {"id": down, "status": "retracted"}
        assert c.post(f"/v1/feedback/{uuid.uuid4().hex}/retract").status_code == 404
    with server.client(server.other_admin) as c:  # another project's row looks absent
        assert c.post(f"/v1/feedback/{down}/retract").status_code == 404
    store = Store(server.store_url)
    rows = {r["id"]: r for r in ann.history(store, [i])}
    assert [rows[up]["status"], rows[down]["status"]] == ["superseded", "retracted"]
    assert rows[down]["supersedes_id"] == up and rows[down]["author"] == "ana"
    store.close()


def test_queue_assignments_agreement_and_overview(server):
    model = f"m-{uuid.uuid4().hex[:6]}"
    a, b, c_ = (_log(server, t, model) for t in ("4", "5", "6"))
    with server.client(server.admin) as c:
        q = c.get("/v1/review/items", params={"model": model}).json()
        assert (q["total"], q["labelled"], [x["id"] for x in q["items"]]) == (3, 0, [a, b, c_])
        assert model in q["models"]
        assert (
            c.post("/v1/assignments", json={"annotator": "ben", "interaction_ids": [a, b]}).json()["assigned"]
            == 2
        )
        for who, score in (("ana", 5), ("ben", 1)):
            c.post(
                "/v1/feedback", json={"kind": "rating", "interaction_id": a, "score": score, "author": who}
            )
        mine = c.get(
            "/v1/review/items", params={"model": model, "annotator": "ben", "labelled": "all"}
        ).json()
        assert (mine["total"], mine["labelled"]) == (2, 1)
        assert mine["items"][0]["assignees"] == ["ben"]
        assert [x["id"] for x in c.get("/v1/review/items", params={"model": model}).json()["items"]] == [
            b,
            c_,
        ]
        bad = c.get("/v1/review/items", params={"kind": "nonsense"})
        assert bad.status_code == 422 and "kind" in bad.text
        got = c.get("/v1/agreement", params={"a": "ana", "b": "ben"}).json()
        assert any(d["interaction_ids"] == [a] and (d["a"], d["b"]) == (5, 1) for d in got["disagreements"])
        names = {x["name"] for x in c.get("/v1/annotators").json()}
        assert {"ana", "ben"} <= names
        ov = c.get("/v1/overview").json()
    store = Store(server.store_url)
    for name, build in BUILDERS.items():
        assert ov["builders"][name]["rows"] == len(build(store)), name
    assert sum(p["n"] for p in ov["timeline"]["points"]) == len(list(store.iter_feedback()))
    store.close()
