"""The official ``openai`` client, pointed at ``refeed serve``, gets completions (streamed too), and every
answer lands in the store under the id the response carries: ``n`` choices as siblings, ``stop``,
``finish_reason`` "length", ``logprobs`` / ``top_logprobs``, streamed ``usage``, and each answer's token
ids and sampling log-probs read back from the store equal a fresh forward pass."""

from __future__ import annotations

import pytest
from openai import OpenAI

from refeed.models.tiny import IM_END, SPECIAL_TOKENS

pytestmark = pytest.mark.slow  # the tiny model's server: torch takes seconds to start

CHAT = [{"role": "user", "content": "12+7="}]
EOS = SPECIAL_TOKENS.index(IM_END)  # the tiny tokenizer's ids: its special tokens first


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


def fresh_logprobs(model_dir, r) -> list[float]:
    """log_softmax(logits / T) of one fresh forward over the stored prompt + completion ids, at those ids."""
    import torch

    from refeed.models import load

    model, _ = load(model_dir)
    ids = torch.tensor([r.prompt_ids + r.completion_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(r.prompt_ids) - 1 : -1]
    logp = torch.log_softmax(logits / (r.sampling.temperature or 1.0), dim=-1)
    return logp.gather(1, torch.tensor(r.completion_ids)[:, None]).squeeze(1).tolist()


def test_n_choices_are_sibling_interactions_whose_tokens_read_back(model_server, model_store, tiny_model_dir):
    from refeed.store.tokens import rollouts

    client = OpenAI(base_url=model_server.base + "/v1", api_key=model_server.ingest)
    resp = client.chat.completions.create(model="tiny", messages=CHAT, n=3, temperature=0.7, seed=5, max_tokens=8,
                                          logprobs=True, top_logprobs=2)
    ids = resp.model_extra["refeed"]["interaction_ids"]
    assert len(set(ids)) == 3 and ids[0] == resp.model_extra["refeed"]["interaction_id"]
    assert [c.model_extra["refeed"]["interaction_id"] for c in resp.choices] == ids
    logged = [model_store.get_interaction(i) for i in ids]
    assert len({i.context_hash for i in logged}) == 1  # siblings: one prompt
    served = rollouts(model_store, ids)
    assert resp.usage.completion_tokens == sum(len(served[i].completion_ids) for i in ids)
    assert resp.usage.prompt_tokens == len(served[ids[0]].prompt_ids)
    for choice, i, row in zip(resp.choices, ids, logged, strict=True):
        r = served[i]
        assert row.completion == choice.message.content == r.completion and r.token_ids_exact
        assert r.finish_reason == choice.finish_reason and r.sampling.temperature == 0.7 and r.sampling.seed == 5
        assert r.version.startswith(resp.model + "@") and r.model == resp.model
        assert [t.logprob for t in choice.logprobs.content] == r.logprobs  # what the client saw is what is stored
        assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)
        assert r.logprobs == pytest.approx(fresh_logprobs(tiny_model_dir, r), abs=1e-4)
    assert "/" not in resp.model and [m.id for m in client.models.list().data] == [resp.model]


def test_stop_keeps_the_stop_tokens_and_length_appends_no_eos(model_server, model_store):
    from refeed.store.tokens import rollouts

    client = OpenAI(base_url=model_server.base + "/v1", api_key=model_server.ingest)
    greedy = dict(model="tiny", messages=CHAT, temperature=0, max_tokens=10, logit_bias={str(EOS): -100})
    cut = client.chat.completions.create(**greedy)
    (choice,) = cut.choices
    r = rollouts(model_store, [cut.model_extra["refeed"]["interaction_id"]]).popitem()[1]
    assert choice.finish_reason == "length" and len(r.completion_ids) == 10 and EOS not in r.completion_ids
    stop = choice.message.content[4:6]
    at = choice.message.content.find(stop)
    stopped = client.chat.completions.create(**greedy, stop=[stop, "never"])
    s = rollouts(model_store, [stopped.model_extra["refeed"]["interaction_id"]]).popitem()[1]
    assert stopped.choices[0].finish_reason == "stop" and stopped.choices[0].message.content == choice.message.content[:at]
    assert s.completion_ids == r.completion_ids[: at + len(stop)]  # the stop string's tokens are stored
    assert s.completion == stopped.choices[0].message.content and s.sampling.stop == (stop, "never")


def test_streamed_usage_logprobs_and_n(model_server, model_store):
    from refeed.store.tokens import rollouts

    client = OpenAI(base_url=model_server.base + "/v1", api_key=model_server.ingest)
    texts, lps, finish, usage, ids = {0: "", 1: ""}, {0: [], 1: []}, {}, [], set()
    for chunk in client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=9, n=2, temperature=1.0,
                                                seed=11, stream=True, logprobs=True,
                                                stream_options={"include_usage": True}):
        ids.add(tuple(chunk.model_extra["refeed"]["interaction_ids"]))
        if chunk.usage is not None:
            usage.append(chunk.usage)
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            lps[c.index] += [t.logprob for t in (c.logprobs.content if c.logprobs else None) or []]
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    ((first, second),) = ids
    served = rollouts(model_store, [first, second])
    for k, iid in enumerate((first, second)):
        assert served[iid].completion == texts[k] and served[iid].logprobs == lps[k]
        assert str(served[iid].finish_reason) == finish[k]
    (u,) = usage  # one usage chunk, at the end
    assert u.completion_tokens == sum(len(r.completion_ids) for r in served.values())


def test_return_token_ids_through_the_openai_client_are_the_stored_ones(model_server, model_store):
    """vLLM's ``return_token_ids`` extension, as the openai client sends and parses it: each choice's
    ``token_ids`` and the response's ``prompt_token_ids`` are the ids stored for that answer; without the
    flag the response carries neither."""
    from refeed.store.tokens import rollouts

    client = OpenAI(base_url=model_server.base + "/v1", api_key=model_server.ingest)
    resp = client.chat.completions.create(model="tiny", messages=CHAT, n=2, temperature=0.7, seed=9, max_tokens=6,
                                          extra_body={"return_token_ids": True})
    ids = resp.model_extra["refeed"]["interaction_ids"]
    served = rollouts(model_store, ids)
    assert [c.model_extra["token_ids"] for c in resp.choices] == [list(served[i].completion_ids) for i in ids]
    assert resp.model_extra["prompt_token_ids"] == list(served[ids[0]].prompt_ids)
    plain = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=4)
    assert "prompt_token_ids" not in plain.model_extra and "token_ids" not in plain.choices[0].model_extra
