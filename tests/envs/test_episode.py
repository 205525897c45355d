"""Episodes keep the served tokens: the prefix invariant, the policy mask, and refusals that name the turn."""

import dataclasses

import pytest

from refeed.envs import FeedbackEnv, add_answer, add_feedback, run, start, verify
from refeed.envs.episode import between, render
from refeed.models.hf_generator import TransformersGenerator
from refeed.models.templates import resolve_chat_template
from refeed.tasks import get_task, oracle
from refeed.types import SamplingParams


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    from refeed.models import load

    model, tok = load(tiny_model_dir)
    task = get_task("arithmetic", levels=(2,), sizes={"train": 20, "dev": 5, "test": 8})
    return model, tok, task, TransformersGenerator(model, tok, batch_size=8)


def _episodes(setup, source="critique", turns=3, eos_bias=0.0, **kw):
    """Episodes of the random tiny model; ``eos_bias`` makes its answers end with EOS sooner or later."""
    model, tok, task, gen = setup
    exs = task.examples("test")
    envs = [FeedbackEnv(task, source, max_turns=turns) for _ in exs]
    # The random model would also sample <|unk|> and <|im_start|>; a trained one does not.
    bias = [(tok.convert_tokens_to_ids(t), -100.0) for t in tok.all_special_tokens if t != tok.eos_token]
    bias += [(tok.eos_token_id, eos_bias)] if eos_bias else []
    return run(gen, tok, envs, exs, SamplingParams(temperature=1.0, max_new_tokens=6, seed=0, logit_bias=bias), **kw)


def test_every_turn_is_sampled_from_the_episode_tokens_and_only_answers_are_the_policys(setup):
    _, tok, task, _ = setup
    outs = _episodes(setup, eos_bias=3.0)
    assert any(o.episode.turns > 1 for o in outs)  # a random tiny model is wrong, so feedback turns happen
    for o in outs:
        ep = o.episode
        verify(ep, tok)
        # Each answer's tokens are the rollout's, and whatever follows an answer is not the policy's.
        for s, e in ep.answers:
            assert set(ep.policy[s:e]) == {1}
        for s, e in ep.feedback:
            assert set(ep.policy[s:e]) == {0} and e > s
        assert sum(ep.policy) == sum(e - s for s, e in ep.answers)
        assert len(ep.rewards) == ep.turns and len(ep.feedback) == ep.turns - 1  # no feedback after the last
        ex = next(x for x in task.examples("test") if x.messages[0] == ep.messages[0])
        for k, (a, _) in enumerate(ep.feedback_at):
            answer = ep.messages[ep.answer_at[k]]["content"]
            assert ep.messages[a]["content"] == oracle.critique(task, ex, answer)


def test_an_episode_decodes_to_its_chat_template_when_every_answer_ended_with_eos(setup):
    _, tok, _, _ = setup
    outs = _episodes(setup, "try_again", eos_bias=3.0)
    stopped = [o.episode for o in outs if set(o.episode.finish) == {"stop"} and o.episode.turns > 1]
    assert stopped
    for ep in stopped:
        # The template closes each turn with "<|im_end|>\n"; the served answer's EOS is that <|im_end|>, and
        # nothing follows the last answer yet.
        assert tok.decode(list(ep.ids)) + "\n" == render(tok, ep.messages, False)
        assert all(ep.messages[a]["content"] == oracle.TRY_AGAIN for a, _ in ep.feedback_at)


def test_the_policy_must_have_sampled_from_the_episode_and_feedback_must_say_something(setup):
    _, tok, task, gen = setup
    ex = task.examples("test")[0]
    ep = start(tok, ex.messages)
    ro = gen.generate([list(ex.messages)], SamplingParams(max_new_tokens=4, seed=0))[0]
    ep2 = add_answer(ep, ro)
    other = dataclasses.replace(ro, prompt_ids=[*ro.prompt_ids[:-1], ro.prompt_ids[-1] + 1])
    with pytest.raises(ValueError, match=r"episode turn 1: the rollout was sampled from other tokens .* token \d+"):
        add_answer(ep, other)
    with pytest.raises(ValueError, match="episode turn 1: the rollout has no exact token ids"):
        add_answer(ep, dataclasses.replace(ro, token_ids_exact=False))
    with pytest.raises(ValueError, match="episode turn 1: the environment returned no feedback"):
        add_feedback(ep2, tok, [{"role": "user", "content": "  "}])
    env = FeedbackEnv(task, lambda *a: None)
    env.reset(ex)
    with pytest.raises(ValueError, match="no feedback for a wrong answer at turn 1"):
        env.step("not a number")
    with pytest.raises(ValueError, match="unknown feedback source 'nope'"):
        FeedbackEnv(task, "nope")


def test_tampered_tokens_are_refused_naming_the_turn(setup):
    _, tok, _, _ = setup
    ep = next(o.episode for o in _episodes(setup) if o.episode.turns >= 2)
    s, e = ep.feedback[0]
    bad = dataclasses.replace(ep, ids=(*ep.ids[:s], *ep.ids[s + 1:e], ep.ids[s], *ep.ids[e:]))
    with pytest.raises(ValueError, match="episode turn 1: the feedback's tokens are not"):
        verify(bad, tok)
    a, b = ep.answers[1]
    msgs = list(ep.messages)
    msgs[ep.answer_at[1]] = {"role": "assistant", "content": "12345"}
    if tok.decode(list(ep.ids[a:b]), skip_special_tokens=True) != "12345":
        with pytest.raises(ValueError, match="episode turn 2: the answer's tokens decode to"):
            verify(dataclasses.replace(ep, messages=tuple(msgs)), tok)
    with pytest.raises(ValueError, match="policy mask"):
        verify(dataclasses.replace(ep, policy=(1,) * len(ep.ids)), tok)


def test_context_stops_an_episode_and_keeps_its_turns(setup):
    _, tok, task, _ = setup
    outs = _episodes(setup, turns=5, context=len(start(tok, task.examples("test")[0].messages).ids) + 40)
    cut = [o for o in outs if o.ended == "context"]
    assert cut and all(o.episode.turns >= 1 and len(o.episode.feedback) == o.episode.turns for o in cut)
    assert all(len(o.episode.ids) + 6 > 40 for o in cut)


def test_a_template_that_rewrites_past_turns_or_answers_is_refused(setup):
    import copy

    tok2 = copy.deepcopy(setup[1])
    tok2.chat_template = resolve_chat_template("reasoning")  # drops <think> text from past answers
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>x</think>12"}]
    with pytest.raises(ValueError, match="changes an answer's text"):
        between(tok2, history, [{"role": "user", "content": "again"}])
    tok2.chat_template = resolve_chat_template("mistral")  # the system text moves to the last user turn
    with pytest.raises(ValueError, match="renders earlier turns differently"):
        between(tok2, [{"role": "system", "content": "Be brief."}, *history[:1], {"role": "assistant", "content": "12"}],
                [{"role": "user", "content": "again"}])
