"""The feedback prior's rows: each dial sets the rate it names, critiques come from the oracle's grammar."""

import pytest

from refeed.pipelines.prior import TRY_AGAIN, PriorConfig, corrupt, prior_rows
from refeed.tasks import SplitSizes, get_task, oracle
from refeed.types import Example


@pytest.fixture(scope="module", params=["arithmetic", "sort"])
def task(request):
    return get_task(request.param, sizes=SplitSizes(500, 10, 10))


def _kind(row):
    msgs = row["prompt"]
    if msgs[0]["role"] == "system":
        return "rule"
    if len(msgs) == 1:
        return "first"
    return "retry" if msgs[-1]["content"] == TRY_AGAIN else "critique"


def test_each_dial_sets_its_rate(task):
    cfg = PriorConfig(rows=3000, critique_success=0.7, retry_success=0.1, rule_overreach=0.4, max_turns=3,
                      rule_follow=0.8, first_success=0.25, first_share=0.3, critique_share=0.4, retry_share=0.1,
                      rule_share=0.2, turn_decay=1.0)
    rows = prior_rows(task, cfg, seed=0)
    ex_of = {e.messages[-1]["content"]: e for e in task.examples("train")}
    by: dict[str, list] = {}
    for r in rows:
        by.setdefault(_kind(r), []).append(r)
    question = lambda r: ex_of[r["prompt"][1 if _kind(r) == "rule" else 0]["content"]]  # noqa: E731
    right = lambda rs: sum(task.verify(question(r), r["completion"]).correct for r in rs) / len(rs)  # noqa: E731
    assert {k: len(v) / len(rows) for k, v in by.items()} == pytest.approx(
        {"first": 0.3, "critique": 0.4, "retry": 0.1, "rule": 0.2}, abs=0.04)
    assert right(by["first"]) == pytest.approx(0.25, abs=0.05)  # synthetic first answers at the set rate
    assert right(by["critique"]) == pytest.approx(0.7, abs=0.05)
    assert right(by["retry"]) == pytest.approx(0.1, abs=0.06)
    rule = oracle.RULES[task.name]
    inside = [r for r in by["rule"] if rule.in_scope(question(r))]
    outside = [r for r in by["rule"] if not rule.in_scope(question(r))]
    assert sum(rule.follows(r["completion"]) for r in inside) / len(inside) == pytest.approx(0.8, abs=0.08)
    assert sum(rule.follows(r["completion"]) for r in outside) / len(outside) == pytest.approx(0.4, abs=0.08)


def test_episodes_are_wrong_answers_each_followed_by_the_oracles_critique(task):
    rows = prior_rows(task, PriorConfig(rows=300, max_turns=4, first_success=0.3), seed=1)
    episodes = [r for r in rows if _kind(r) == "critique"]
    assert {(len(r["prompt"]) - 1) // 2 for r in episodes} == {1, 2, 3, 4}  # 1..max_turns wrong attempts
    for r in episodes:
        ex = next(e for e in task.examples("train") if e.messages[0]["content"] == r["prompt"][0]["content"])
        answers = [m["content"] for m in r["prompt"][1::2]]
        assert len(set(answers)) == len(answers)  # no attempt repeats an earlier one
        for answer, feedback in zip(answers, r["prompt"][2::2], strict=True):
            assert not task.verify(ex, answer).correct
            assert feedback["content"] == oracle.critique(task, ex, answer) and ex.answer not in feedback["content"]


def test_corruptions_are_near_misses_the_verifier_calls_wrong():
    import random

    task = get_task("sort")
    ex = Example("s", "sort", ({"role": "user", "content": "Sort the letters: dbcat"},), "abcdt")
    rng = random.Random(0)
    wrong = {corrupt(task, ex, rng) for _ in range(200)}
    assert len(wrong) > 20 and not any(task.verify(ex, w).correct for w in wrong)
    assert all(abs(len(w) - 5) <= 1 for w in wrong)
    neg = Example("a", "arithmetic", ({"role": "user", "content": "What is 3-40?"},), "-37")
    assert all(corrupt(get_task("arithmetic"), neg, rng).lstrip("-").isdigit() for _ in range(50))


def test_by_default_first_answers_rule_rows_and_first_mistakes_are_the_bases_own(task):
    """first_success < 0 (the default): the first-answer and rule rows and the episodes' first wrong answers are
    the base's sampled answers, on its pool of prompts; without those answers the rows are refused, not made up."""
    from refeed.pipelines.prior import own_pool

    cfg = PriorConfig(rows=600, own_prompts=50)
    pool = own_pool(task, cfg)
    assert len(pool) == 50 and len({e.id for e in pool}) == 50
    own = {e.id: f"own{i}" for i, e in enumerate(pool)}  # marks no task would produce
    rows = prior_rows(task, cfg, own)
    firsts = [r for r in rows if _kind(r) in ("first", "rule")]
    assert firsts and all(r["completion"].rstrip(".!").startswith("own") for r in firsts)
    ids = {e.messages[-1]["content"]: e.id for e in pool}
    assert all(own[ids[r["prompt"][-1]["content"]]] == r["completion"].rstrip(".!") for r in firsts)
    # Episodes are on the prompts it got wrong (all of them here), opening with its own wrong answer.
    episodes = [r for r in rows if _kind(r) in ("critique", "retry")]
    assert episodes and all(r["prompt"][1]["content"] == own[ids[r["prompt"][0]["content"]]] for r in episodes)
    with pytest.raises(ValueError, match="own answers are needed"):
        prior_rows(task, cfg)
