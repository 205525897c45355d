"""Served rollouts round-trip through the store exactly (ids, float log-probs, sampling, version, flag), on
SQLite and PostgreSQL; a batch whose feedback is refused writes no tokens either; projects stay apart."""

import pytest

from refeed.store import NotFound, ValidationFailed
from refeed.store.records import feedback_record
from refeed.store.tokens import iter_rollouts, log_rollouts, rollouts
from refeed.types import FinishReason, Rollout, SamplingParams

CHAT = [{"role": "user", "content": "2+2="}]


def rollout(**kw) -> Rollout:
    base = dict(messages=CHAT, prompt_ids=[7, 8, 9], completion_ids=[40, 41, 3], logprobs=[-0.1, -2.5e-7, -1 / 3],
                completion="ab", finish_reason=FinishReason.STOP, model="tiny", version="tiny@0123abcd",
                sampling=SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=12, stop=("\n",), seed=3,
                                        logprobs=1, logit_bias=((3, -5.0),)),
                top_logprobs=[{40: -0.1}, {41: -2.5e-7}, {3: -1 / 3}])
    return Rollout(**{**base, **kw})


def test_rollouts_read_back_exactly(store):
    sent = [rollout(), rollout(completion_ids=[40, 41], logprobs=[-0.5, -0.25], finish_reason=FinishReason.LENGTH,
                               top_logprobs=None)]
    ids = log_rollouts(store, sent, params={"temperature": 0.7, "n": 2})
    back = rollouts(store, ids)
    for r in sent:
        assert back[r.id] == r  # every field, floats bit for bit
    siblings = [store.get_interaction(i) for i in ids]
    assert siblings[0].context_hash == siblings[1].context_hash
    assert [s.metadata["finish_reason"] for s in siblings] == ["stop", "length"]
    assert [s.metadata["choice"] for s in siblings] == [0, 1]


def test_upstream_rows_are_flagged_and_can_be_skipped(store):
    text_only = rollout(prompt_ids=[], completion_ids=[], logprobs=[], top_logprobs=None, token_ids_exact=False)
    exact = rollout()
    log_rollouts(store, [text_only])
    log_rollouts(store, [exact])
    assert [r.id for r in iter_rollouts(store)] == [text_only.id, exact.id]
    assert [r.id for r in iter_rollouts(store, exact_only=True, page_size=1)] == [exact.id]


def test_a_refused_batch_writes_no_tokens(store):
    before = store.stats()["interactions"]
    bad = feedback_record("no-such-id", "retry", source="implicit", author=None, idempotency_key=None,
                          fields={"regeneration_id": "x"})
    r = rollout()
    with pytest.raises(NotFound):
        log_rollouts(store, [r], extra=[bad])
    assert store.stats()["interactions"] == before and rollouts(store, [r.id]) == {}
    with pytest.raises(ValidationFailed):
        log_rollouts(store, [rollout(messages=[{"role": "nobody", "content": "x"}])])


def test_another_projects_rollouts_look_absent(store):
    store.create_project("other")
    (iid,) = log_rollouts(store, [rollout()], project="other")
    assert rollouts(store, [iid]) == {} and list(iter_rollouts(store)) == []
    assert list(rollouts(store, [iid], project="other")) == [iid]
