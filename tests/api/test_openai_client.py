"""The official ``openai`` client, pointed at ``refeed serve``, gets completions (streamed too), and every
answer lands in the store under the id the response carries."""

from __future__ import annotations

import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow  # the tiny model's server: torch takes seconds to start

CHAT = [{"role": "user", "content": "12+7="}]


def test_completion_is_logged_with_its_id(model_server, model_store):
    client = OpenAI(base_url=model_server.base + "/v1", api_key=model_server.ingest)
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=CHAT, max_tokens=8, temperature=0.7, seed=3
    )
    resp = raw.parse()
    iid = resp.model_extra["refeed"]["interaction_id"]
    assert raw.headers["x-refeed-interaction-id"] == iid
    logged = model_store.get_interaction(iid)
    assert logged.completion == resp.choices[0].message.content
    assert logged.messages == CHAT and logged.params == {"temperature": 0.7, "max_tokens": 8, "seed": 3}
    assert [m.id for m in client.models.list().data] == [resp.model]


def test_streamed_completion_is_logged_whole(model_server, model_store):
    client = OpenAI(base_url=model_server.base + "/v1", api_key=model_server.ingest)
    pieces, ids = [], set()
    for chunk in client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=10, stream=True):
        ids.add(chunk.model_extra["refeed"]["interaction_id"])
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    (iid,) = ids
    assert model_store.get_interaction(iid).completion == "".join(pieces)


def test_try_again_is_logged_as_a_retry(model_server, model_store):
    client = OpenAI(base_url=model_server.base + "/v1", api_key=model_server.ingest)
    first = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=6)
    old = first.model_extra["refeed"]["interaction_id"]
    again = client.chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=6, extra_body={"retry_of": old}
    )
    new = again.model_extra["refeed"]["interaction_id"]
    retries = [f for f in model_store.iter_feedback(kinds=["retry"]) if f.interaction_id == old]
    assert [f.payload["regeneration_id"] for f in retries] == [new]
    assert model_store.get_interaction(new).context_hash == model_store.get_interaction(old).context_hash
