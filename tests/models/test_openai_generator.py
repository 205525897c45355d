"""``OpenAIGenerator`` and the AI judge against a real ``refeed serve`` on the tiny model (one server for this
module): with ``return_token_ids`` the endpoint's rollouts are exactly the local ``TransformersGenerator``'s for
the same seed (ids, sampling log-probs, finish reasons); without, rollouts keep the text and are flagged
``token_ids_exact=False``; the judge's request is logged by the server, its reply parsed (a digit forced by
``logit_bias``) or counted unparsable, and a repeat comes from the cache with no request (the store logs none);
a request the server refuses is an error, not retried. Also: choices in vLLM's ``token_id:N`` spelling parse
as exact, text-only ones are flagged; importing refeed loads no vllm, and the vLLM backend without vllm says
what is missing."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from refeed.models.openai_generator import EndpointError, OpenAIGenerator
from refeed.models.tiny import IM_END, SPECIAL_TOKENS
from refeed.rewards import JudgeConfig, judge
from refeed.store import Store
from refeed.types import FinishReason, SamplingParams
from tests.api.conftest import free_port, make_keys, start_server

EOS = SPECIAL_TOKENS.index(IM_END)
PROMPTS = [[{"role": "user", "content": "12+7="}], [{"role": "user", "content": "Reverse the word: cat"}]]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """``refeed serve`` on the tiny model; yields (base url, ingest key, store url)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'feedback.db'}"
    keys = make_keys(url)
    port = free_port()
    proc = start_server(tiny_model_dir, url, port)
    yield f"http://127.0.0.1:{port}/v1", keys["ingest"], url
    proc.terminate()
    proc.wait(timeout=20)


def logged(store_url: str) -> int:
    store = Store(store_url)
    try:
        return sum(1 for _ in store.iter_interactions())
    finally:
        store.close()


@pytest.mark.slow  # the tiny model's server: torch takes seconds to start
def test_endpoint_rollouts_with_token_ids_are_the_local_generators(served, tiny_model_dir):
    from refeed.models import load
    from refeed.models.hf_generator import TransformersGenerator

    base, key, _ = served
    sampling = SamplingParams(temperature=0.8, max_new_tokens=6, seed=11, logprobs=2)
    remote = OpenAIGenerator(base, "tiny", api_key=key, token_ids=True).generate(PROMPTS, sampling, n=3)
    local_gen = TransformersGenerator(*load(tiny_model_dir))
    local = [r for i, p in enumerate(PROMPTS)  # prompt i is seeded seed + i
             for r in local_gen.generate([p], SamplingParams(**{**sampling.to_dict(), "stop": (), "logit_bias": (),
                                                                "seed": 11 + i}), n=3)]
    assert len(remote) == 6 and [r.group for r in remote] == [0, 0, 0, 1, 1, 1]
    for r, want in zip(remote, local, strict=True):
        assert r.token_ids_exact and r.prompt_ids == want.prompt_ids and r.completion_ids == want.completion_ids
        assert r.logprobs == pytest.approx(want.logprobs, abs=1e-5) and r.finish_reason == want.finish_reason
        assert r.completion == want.completion and r.messages == PROMPTS[r.group] and r.sampling == sampling
        assert r.finish_reason is FinishReason.LENGTH or r.completion_ids[-1] == EOS
    assert any(r.finish_reason is FinishReason.LENGTH for r in remote)


@pytest.mark.slow
def test_endpoint_rollouts_without_token_ids_are_flagged(served):
    base, key, _ = served
    rollouts = OpenAIGenerator(base, "tiny", api_key=key, version="tiny@v3").generate(
        PROMPTS, SamplingParams(temperature=1.0, max_new_tokens=4, seed=0), n=2)
    assert [r.group for r in rollouts] == [0, 0, 1, 1]
    for r in rollouts:
        assert not r.token_ids_exact and r.completion_ids == [] == r.logprobs == r.prompt_ids
        assert isinstance(r.completion, str) and r.version == "tiny@v3" and r.finish_reason in set(FinishReason)


@pytest.mark.slow
def test_judge_through_refeed_serve_parses_caches_and_counts(served, tiny_model_dir, monkeypatch):
    from transformers import AutoTokenizer  # the served model's tokenizer: which id is "7", which "x"

    base, key, store_url = served
    monkeypatch.setenv("REFEED_TEST_JUDGE_KEY", key)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    seven, x = tok.convert_tokens_to_ids("7"), tok.convert_tokens_to_ids("x")
    prompts = [[{"role": "user", "content": "What is 3+4?"}]] * 2
    answers = [[{"role": "assistant", "content": a}] for a in ("7", "8")]
    cfg = dict(base_url=base, model="tiny", rubric="Correct.", api_key_env="REFEED_TEST_JUDGE_KEY",
               template="{prompt}\n{answer}\nScore {lo}-{hi}:", system="")  # the tiny model's context is 256 tokens
    forced = judge(JudgeConfig(**cfg, max_tokens=1, params={"logit_bias": {str(seven): 100}}))
    before = logged(store_url)
    assert asyncio.run(forced(prompts=prompts, completions=answers)) == [pytest.approx(6 / 9)] * 2
    assert logged(store_url) == before + 2  # the server answered (and logged) both requests
    assert asyncio.run(forced(prompts=prompts, completions=answers)) == [pytest.approx(6 / 9)] * 2
    assert logged(store_url) == before + 2 and forced.stats["cache_hits"] == 2  # no request the second time
    babble = judge(JudgeConfig(**cfg, max_tokens=3, params={"logit_bias": {str(x): 100}}))
    assert asyncio.run(babble(prompts=prompts, completions=answers)) == [None, None]
    assert babble.stats["unparsable"] == 2
    refused = judge(JudgeConfig(**cfg, params={"top_logprobs": 50, "logprobs": True}, backoff=0.01))
    with pytest.raises(EndpointError, match="answered 422") as e:
        asyncio.run(refused(prompts=prompts[:1], completions=answers[:1]))
    assert e.value.status == 422 and refused.stats["requests"] == 1  # a refusal is not retried
    nokey = judge(JudgeConfig(**{**cfg, "api_key_env": None}))
    with pytest.raises(EndpointError, match="answered 401"):
        asyncio.run(nokey(prompts=prompts[:1], completions=answers[:1]))


def test_importing_refeed_loads_no_vllm_and_the_backend_says_what_is_missing():
    code = ("import sys, refeed, refeed.models, refeed.models.generator, refeed.models.openai_generator, "
            "refeed.models.vllm_generator, refeed.rewards, refeed.rewards.build; assert 'vllm' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    from refeed.models.vllm_generator import VLLMGenerator

    if "vllm" in sys.modules or _installed("vllm"):
        pytest.skip("vllm is installed here: the missing-package message cannot be shown")
    with pytest.raises(ImportError, match="VLLMGenerator needs vLLM, which is not installed"):
        VLLMGenerator("some/model")


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_choices_in_vllms_token_id_spelling_are_exact_and_text_only_ones_are_flagged():
    from refeed.models.openai_generator import parse_choice

    spelled = {"index": 0, "message": {"content": "hi"}, "finish_reason": "length", "logprobs": {"content": [
        {"token": "token_id:17", "logprob": -0.5, "top_logprobs": [{"token": "token_id:17", "logprob": -0.5},
                                                                  {"token": "token_id:3", "logprob": -1.5}]},
        {"token": "token_id:4", "logprob": -0.25, "top_logprobs": [{"token": "token_id:9", "logprob": -0.1}]}]}}
    p = parse_choice(spelled, [1, 2])
    assert p["token_ids_exact"] and p["completion_ids"] == [17, 4] and p["logprobs"] == [-0.5, -0.25]
    assert p["top_logprobs"] == [{17: -0.5, 3: -1.5}, {9: -0.1}] and p["finish_reason"] is FinishReason.LENGTH
    text_only = {"index": 0, "message": {"content": "hi"}, "finish_reason": "stop",
                 "logprobs": {"content": [{"token": "h", "logprob": -0.5}, {"token": "i", "logprob": -0.1}]}}
    q = parse_choice(text_only, None)
    assert not q["token_ids_exact"] and q["completion_ids"] == [] == q["logprobs"] and q["completion"] == "hi"
    assert not parse_choice({**spelled, "token_ids": [17]}, [1])["token_ids_exact"]  # ids and log-probs disagree
