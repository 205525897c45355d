"""References in a payload are checked like targets (issue 11, hardening 3): a retry's ``regeneration_id``
and a follow-up's ``followup_interaction_id`` naming an unknown id, or another project's, get a 404."""

from __future__ import annotations


def _log(server, key: str) -> str:
    with server.client(key) as c:
        r = c.post("/v1/interactions", json={"messages": [{"role": "user", "content": "q"}], "completion": "a"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_unknown_and_foreign_references_are_404(server, store):
    mine, again = _log(server, server.ingest), _log(server, server.ingest)
    theirs = _log(server, server.other_admin)
    before = store.stats()
    with server.client(server.feedback) as c:
        for ref in ("01a2333f0942700000000000000000ff", theirs):
            for body in (
                {"kind": "retry", "interaction_id": mine, "regeneration_id": ref},
                {"kind": "followup", "interaction_id": mine, "text": "and?", "followup_interaction_id": ref},
            ):
                r = c.post("/v1/feedback", json=body)
                assert r.status_code == 404 and ref in r.text, (body, r.text)
        assert store.stats() == before
        ok = [
            c.post("/v1/feedback", json={"kind": "retry", "interaction_id": mine, "regeneration_id": again}),
            c.post("/v1/feedback", json={"kind": "followup", "interaction_id": mine, "text": "and?",
                                         "followup_interaction_id": again}),  # fmt: skip
        ]
    assert [r.status_code for r in ok] == [201, 201], [r.text for r in ok]
