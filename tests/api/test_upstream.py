"""``refeed serve --upstream``: in front of another OpenAI-compatible server (here a second refeed serving
the tiny model), answers pass through, streamed too, and are logged in the proxy's store; an
unreachable upstream is a 502 and logs nothing. The proxy's rows are flagged ``token_ids_exact=False``."""

from __future__ import annotations

import pytest
from openai import OpenAI

from refeed.store import Store
from refeed.store.tokens import rollouts
from tests.api.conftest import free_port, make_keys, start_server

CHAT = [{"role": "user", "content": "3+4="}]


def test_unreachable_upstream_is_a_502_and_logs_nothing(server, store):
    before = store.stats()["interactions"]
    with server.client(server.ingest) as c:
        plain = c.post("/v1/chat/completions", json={"messages": CHAT})
        streamed = c.post("/v1/chat/completions", json={"messages": CHAT, "stream": True})
    assert plain.status_code == streamed.status_code == 502, (plain.text, streamed.text)
    assert "upstream" in plain.json()["detail"]
    assert store.stats()["interactions"] == before


@pytest.mark.slow
def test_proxied_answers_pass_through_and_are_logged(tmp_path, model_server):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    keys = make_keys(url)
    port = free_port()
    proxy = start_server(None, url, port, "--upstream-api-key", model_server.ingest,
                         upstream=model_server.base + "/v1")  # fmt: skip
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys["ingest"])
        whole = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=6, seed=1)
        two = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=6, seed=2, n=2,
                                             stop=["\n"], logprobs=True)
        pieces, ids = [], set()
        for chunk in client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=6, stream=True):
            ids.add(chunk.model_extra["refeed"]["interaction_id"])
            pieces += [c.delta.content for c in chunk.choices if c.delta.content]
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)
    store = Store(url)
    mine = whole.model_extra["refeed"]["interaction_id"]
    assert store.get_interaction(mine).completion == whole.choices[0].message.content
    (streamed_id,) = ids
    # An upstream returns text, not token ids: the proxy's rows are flagged.
    flagged = rollouts(store, [mine, streamed_id, *two.model_extra["refeed"]["interaction_ids"]])
    assert len(flagged) == 4 and not any(r.token_ids_exact or r.completion_ids for r in flagged.values())
    assert [c.message.content for c in two.choices] == [flagged[i].completion for i in two.model_extra["refeed"]["interaction_ids"]]
    assert all(c.logprobs.content for c in two.choices if c.message.content)  # passed through from upstream
    assert store.get_interaction(streamed_id).completion == "".join(pieces)
    # The upstream logged the same answers under its own ids: refeed in front of refeed.
    upstream = Store(model_server.store_url)
    assert whole.choices[0].message.content in {i.completion for i in upstream.iter_interactions()}
