"""The friction protocol (METHODS.md section 12, tests (5)) with scripted solvers of known behaviour, and end to
end on the tiny model through the multi-turn core."""

import random

import pytest

from refeed.envs.episode import encode, render
from refeed.eval.friction import friction, schedule
from refeed.models.hf_generator import TransformersGenerator
from refeed.tasks import get_task, oracle
from refeed.types import FinishReason, Rollout


class Scripted:
    """A solver whose answer is ``fn(messages, sampling)``, served as real tokens of the tiny tokenizer: the
    harness sees exactly what a model's generator gives it."""

    context = None

    def __init__(self, tok, fn):
        self.tok, self.fn = tok, fn

    def generate(self, prompts, sampling, n=1):
        return self.generate_ids([encode(self.tok, render(self.tok, p, True)) for p in prompts], prompts, sampling, n)

    def generate_ids(self, prompt_ids, prompts, sampling, n=1):
        out = []
        for g, (ids, msgs) in enumerate(zip(prompt_ids, prompts, strict=True)):
            for _ in range(n):
                text = self.fn(list(msgs), sampling)
                cids = [*encode(self.tok, text), self.tok.eos_token_id]
                out.append(Rollout(list(msgs), list(ids), cids, [0.0] * len(cids), text, FinishReason.STOP,
                                   "scripted", sampling=sampling, group=g))
        return out


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    from refeed.models import load

    model, tok = load(tiny_model_dir)
    task = get_task("arithmetic", levels=(2,), sizes={"train": 40, "dev": 5, "test": 60})
    return model, tok, task, task.examples("test")


def _gold(task, msgs):
    q = msgs[0]["content"]
    return next(e.answer for e in task.examples("test") if e.messages[0]["content"] == q)


def test_a_solver_that_ignores_feedback_stays_flat_with_zero_uptake_and_friction(setup):
    _, tok, task, exs = setup
    # Always the same answer for a question: right on some, wrong on the rest, whatever it is told.
    fn = lambda msgs, s: _gold(task, msgs) if int(_gold(task, msgs)) % 3 == 0 else "7777"  # noqa: E731
    res = friction(Scripted(tok, fn), tok, task, exs, turns=4)
    first = res["cumulative_accuracy"][0]
    assert 0 < first < 1 and res["cumulative_accuracy"] == [first] * 4
    assert res["uptake"]["value"] == 0 and res["friction"]["value"] == 0 and res["target"] == first


def test_a_solver_that_only_resamples_scores_no_uptake(setup):
    _, tok, task, exs = setup
    rng = random.Random(0)
    fn = lambda msgs, s: _gold(task, msgs) if rng.random() < 0.3 else "7777"  # noqa: E731
    res = friction(Scripted(tok, fn), tok, task, exs * 5, turns=3)
    lo, hi = res["uptake"]["ci"]
    assert lo <= 0 <= hi
    lo, hi = res["friction"]["ci"]
    assert lo <= 0 <= hi  # fresh samples and ignored feedback are the same draws


def test_a_solver_that_uses_critiques_shows_uptake_and_beats_the_target(setup):
    _, tok, task, exs = setup

    def fn(msgs, s):  # wrong first; right once told where it went wrong; a bare "try again" teaches it nothing
        told = len(msgs) > 1 and msgs[-1]["content"] != oracle.TRY_AGAIN
        return _gold(task, msgs) if told else "7777"
    res = friction(Scripted(tok, fn), tok, task, exs, turns=3)
    assert res["cumulative_accuracy"] == [0.0, 1.0, 1.0] and res["cumulative_accuracy_try_again"] == [0.0] * 3
    assert res["uptake"]["value"] == 1.0 and res["uptake"]["ci"][0] > 0
    assert [u["value"] for u in res["uptake_by_turn"]] == [0.0, 1.0, 1.0]
    assert res["target"] == 0.0 and res["friction"]["value"] == -1.0


def test_rejection_lists_the_answers_already_tried_and_the_schedule_is_the_papers(setup):
    _, tok, task, exs = setup
    seen = []

    def fn(msgs, s):
        seen.append((msgs[-1]["content"], s.temperature))
        return str(len(msgs))  # a new wrong answer each turn
    friction(Scripted(tok, fn), tok, task, exs[:2], turns=3, reject=True, progressive=True)
    told = [m for m, _ in seen if "You have already tried" in m]
    assert told and any("1, 3" in m for m in told)
    assert {t for _, t in seen} == {0.0, 0.15, 0.3}
    assert schedule(11, 0.7, True)[0] == 0.0 and schedule(11, 0.7, True)[4] == pytest.approx(0.6)
    assert schedule(11, 0.7, True)[10] == 1.5 and schedule(3, 0.7, False) == [0.7] * 3
    seen.clear()  # a schedule given outright: a greedy first answer, sampled revisions
    friction(Scripted(tok, fn), tok, task, exs[:2], turns=3, temperatures=[0.0, 0.5, 0.5])
    assert {t for _, t in seen} == {0.0, 0.5}
    with pytest.raises(ValueError, match="2 temperatures for 3 turns"):
        friction(Scripted(tok, fn), tok, task, exs[:2], turns=3, temperatures=[0.0, 0.5])


def test_the_tiny_model_runs_the_protocol_on_its_own_tokens_and_a_short_context_ends_episodes(setup):
    model, tok, task, exs = setup
    gen = TransformersGenerator(model, tok, batch_size=32)
    res = friction(gen, tok, task, exs[:20], turns=3, max_new_tokens=4)
    assert len(res["cumulative_accuracy"]) == 3 and 0 <= res["target"] <= 1
    assert res["cumulative_accuracy"] == sorted(res["cumulative_accuracy"])
    gen.context = 60  # about two turns of this task's episodes
    res = friction(gen, tok, task, exs[:20], turns=5, max_new_tokens=4)
    assert res["ended"]["context"] > 0
    with pytest.raises(ValueError, match="turns must be >= 1"):
        friction(gen, tok, task, exs, turns=0)
