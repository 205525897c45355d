"""The transformers Generator keeps what it sampled: ids, log-probs under the sampling distribution
(checked against a fresh forward pass), finish reasons, stop strings, n, seeds, streaming, abort."""

import threading

import pytest
import torch

from refeed.models.generator import Generator
from refeed.models.hf_generator import TransformersGenerator
from refeed.types import FinishReason, SamplingParams

PROMPTS = [[{"role": "user", "content": "What is 1+2?"}], [{"role": "user", "content": "Reverse the word: abcdef"}]]


@pytest.fixture
def gen(tiny):
    model, tok = tiny
    return TransformersGenerator(model, tok, name="tiny")


def fresh_logp(gen, r, temperature: float) -> torch.Tensor:
    """log_softmax(logits / T) of one unpadded forward over prompt + completion, at the sampled ids."""
    ids = torch.tensor([r.prompt_ids + r.completion_ids])
    with torch.no_grad():
        logits = gen.model(input_ids=ids).logits[0, len(r.prompt_ids) - 1 : -1].float()  # (A, V)
    logp = torch.log_softmax(logits / (temperature or 1.0), dim=-1)
    return logp, logp.gather(1, torch.tensor(r.completion_ids)[:, None]).squeeze(1)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_are_a_fresh_forwards_at_the_sampled_ids(gen, temperature):
    n = 1 if temperature == 0 else 2
    out = gen.generate(PROMPTS, SamplingParams(temperature=temperature, max_new_tokens=12, seed=1), n=n)
    assert [r.group for r in out] == [i for i in range(len(PROMPTS)) for _ in range(n)]
    for r in out:
        assert r.prompt_ids == gen.encode(r.messages) and r.token_ids_exact and r.model == "tiny"
        logp, at_ids = fresh_logp(gen, r, temperature)
        assert torch.allclose(torch.tensor(r.logprobs), at_ids, atol=1e-4), (r.logprobs, at_ids)
        if temperature == 0:
            assert r.completion_ids == logp.argmax(-1).tolist()  # greedy takes the argmax
        assert r.completion == gen.tok.decode(r.completion_ids, skip_special_tokens=True)


def test_top_p_logprobs_are_renormalised_over_the_nucleus(gen):
    top_p = 0.3
    (r,) = gen.generate(PROMPTS[:1], SamplingParams(temperature=1.0, top_p=top_p, max_new_tokens=10, seed=0))
    logp, _ = fresh_logp(gen, r, 1.0)
    for t, tid in enumerate(r.completion_ids):
        p = logp[t].exp()
        order = p.argsort(descending=True)
        keep = order[: int((p[order].cumsum(0) - p[order] < top_p).sum())]  # smallest set reaching top_p
        assert tid in keep.tolist()
        assert r.logprobs[t] == pytest.approx((p[tid] / p[keep].sum()).log().item(), abs=1e-4)


def test_a_vanishing_top_p_keeps_the_most_likely_id(gen):
    (r,) = gen.generate(PROMPTS[:1], SamplingParams(temperature=1.0, top_p=5e-324, max_new_tokens=4, seed=0))
    (greedy,) = gen.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=4))
    assert r.completion_ids == greedy.completion_ids and r.logprobs == [0.0] * len(r.logprobs)


def test_top_logprobs_list_the_most_likely_alternatives(gen):
    (r,) = gen.generate(PROMPTS[:1], SamplingParams(temperature=0.7, max_new_tokens=6, seed=2, logprobs=3))
    logp, _ = fresh_logp(gen, r, 0.7)
    assert len(r.top_logprobs) == len(r.completion_ids)
    for t, alts in enumerate(r.top_logprobs):
        best = logp[t].topk(3)
        assert list(alts) == best.indices.tolist()
        assert list(alts.values()) == pytest.approx(best.values.tolist(), abs=1e-4)


def test_length_appends_no_eos_and_eos_is_kept(gen):
    eos = gen.tok.eos_token_id
    cut = gen.generate(PROMPTS, SamplingParams(max_new_tokens=5, seed=0, logit_bias=((eos, -100.0),)))
    assert all(r.finish_reason == FinishReason.LENGTH and len(r.completion_ids) == 5 for r in cut)
    assert all(eos not in r.completion_ids for r in cut)
    ended = gen.generate(PROMPTS, SamplingParams(max_new_tokens=5, seed=0, logit_bias=((eos, 100.0),)))
    assert [(r.completion_ids, r.completion, r.finish_reason) for r in ended] == [([eos], "", FinishReason.STOP)] * 2
    assert ended[0].logprobs[0] == pytest.approx(0.0, abs=1e-4)  # the biased distribution was sampled from


def test_a_stop_string_keeps_its_tokens_and_drops_its_text(gen):
    eos = gen.tok.eos_token_id
    greedy = SamplingParams(temperature=0, max_new_tokens=16, logit_bias=((eos, -100.0),))
    (free,) = gen.generate(PROMPTS[:1], greedy)
    stop = free.completion[4:6]  # characters 4-5 of the unstopped answer (one token per character)
    at = free.completion.find(stop)
    (r,) = gen.generate(PROMPTS[:1], SamplingParams(**{**greedy.__dict__, "stop": (stop, "never-there")}))
    assert r.finish_reason == FinishReason.STOP and r.completion == free.completion[:at]
    assert r.completion_ids == free.completion_ids[: at + len(stop)]  # the stop string's tokens are kept
    assert r.logprobs == pytest.approx(free.logprobs[: at + len(stop)], abs=1e-5)


def test_n_samples_and_seeds(gen):
    sampling = SamplingParams(temperature=1.0, max_new_tokens=10, seed=7)
    a = gen.generate(PROMPTS, sampling, n=3)
    b = gen.generate(PROMPTS, sampling, n=3)
    c = gen.generate(PROMPTS, SamplingParams(temperature=1.0, max_new_tokens=10, seed=8), n=3)
    assert len(a) == 6 and [r.group for r in a] == [0, 0, 0, 1, 1, 1]
    assert [r.completion_ids for r in a] == [r.completion_ids for r in b]
    assert [r.completion_ids for r in a] != [r.completion_ids for r in c]
    assert len({tuple(r.completion_ids) for r in a[:3]}) > 1  # the n samples of one prompt differ
    assert a[0].version == gen.version and gen.version.startswith("tiny@")
    assert isinstance(gen, Generator)  # the protocol every loop samples through


def test_streamed_steps_add_up_and_abort_keeps_what_was_sampled(gen):
    steps, stop_now = [], threading.Event()

    def on_step(deltas):
        steps.append(deltas)
        if len(steps) == 3:
            stop_now.set()

    out = gen.generate(PROMPTS, SamplingParams(max_new_tokens=12, seed=0, stop=("zz",)), n=2,
                       on_step=on_step, abort=stop_now)
    for i, r in enumerate(out):
        mine = [d for s in steps for d in s if d.index == i]
        assert [d.token_id for d in mine] == r.completion_ids and "".join(d.text for d in mine) == r.completion
        assert r.finish_reason == FinishReason.ABORTED or r.completion_ids[-1] == gen.tok.eos_token_id
    assert any(r.finish_reason == FinishReason.ABORTED and len(r.completion_ids) == 3 for r in out)


def test_no_room_in_the_context_is_refused_before_any_work(gen):
    with pytest.raises(ValueError, match="context of 256 tokens"):
        gen.generate(PROMPTS, SamplingParams(max_new_tokens=250))
