"""Browser-safe feedback tokens: an answer's token writes feedback on that answer only, for 24 hours,
without an API key; a forged, expired or out-of-scope token is refused and writes nothing."""

from __future__ import annotations

import httpx
import pytest

from refeed.api.auth import TOKEN_SECONDS, check_token, feedback_token

HEADER = "X-Refeed-Feedback-Token"


def _answer(server) -> tuple[str, str]:
    with server.client(server.ingest) as c:
        r = c.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "1+1="}], "max_tokens": 4}
        )
    assert r.status_code == 200, r.text
    return r.json()["refeed"]["interaction_id"], r.json()["refeed"]["feedback_token"]


def test_token_round_trip_and_expiry():
    tok = feedback_token(b"s3cret", "proj", "abc", now=1000.0)
    assert check_token(b"s3cret", tok, now=1000.0 + TOKEN_SECONDS - 1) == ("proj", "abc")
    assert check_token(b"s3cret", tok, now=1000.0 + TOKEN_SECONDS + 1) is None  # expired
    assert check_token(b"other", tok, now=1000.0) is None  # another server's secret
    head, body, sig = tok.split(".")
    forged = feedback_token(b"s3cret", "proj", "xyz", now=1000.0).split(".")[1]
    assert check_token(b"s3cret", f"{head}.{forged}.{sig}", now=1000.0) is None  # body swapped
    assert check_token(b"s3cret", "rft.!!.00", now=1000.0) is None


@pytest.mark.slow  # the tiny model's server: torch takes seconds to start
def test_a_token_writes_feedback_on_its_own_answer_only(model_server, model_store):
    server, store = model_server, model_store
    a, tok_a = _answer(server)
    b, tok_b = _answer(server)
    web = httpx.Client(base_url=server.base, timeout=30)  # a browser: no API key at all
    before = store.stats()["feedback"]
    ok = web.post(
        "/v1/feedback", json={"kind": "thumbs", "interaction_id": a, "up": True}, headers={HEADER: tok_a}
    )
    assert ok.status_code == 201, ok.text
    assert store.get_feedback(ok.json()["id"]).interaction_id == a
    refused = [
        web.post(
            "/v1/feedback", json={"kind": "thumbs", "interaction_id": b, "up": True}, headers={HEADER: tok_a}
        ),
        web.post(
            "/v1/feedback",
            json={"kind": "preference", "interaction_id": a, "rejected": b},
            headers={HEADER: tok_a},
        ),
        web.post("/v1/feedback", json={"kind": "principle", "text": "be brief"}, headers={HEADER: tok_a}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403], [r.text for r in refused]
    assert "own interaction" in refused[0].text
    both = web.post(
        "/v1/feedback",
        json={"kind": "preference", "interaction_id": a, "rejected": b},
        headers={HEADER: f"{tok_a}, {tok_b}"},
    )
    assert both.status_code == 201, both.text
    bad = tok_a[:-4] + ("0000" if not tok_a.endswith("0000") else "1111")
    assert (
        web.post(
            "/v1/feedback", json={"kind": "thumbs", "interaction_id": a, "up": False}, headers={HEADER: bad}
        ).status_code
        == 401
    )
    assert web.get("/v1/review", headers={HEADER: tok_a}).status_code == 401  # tokens never read
    assert (
        web.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}]},
            headers={HEADER: tok_a},
        ).status_code
        == 401
    )  # nor chat
    assert store.stats()["feedback"] == before + 2
