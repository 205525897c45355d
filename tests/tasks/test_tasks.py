import re

import pytest

from refeed.tasks import SplitSizes, get_task
from refeed.types import Example


@pytest.mark.parametrize("name", ["arithmetic", "reverse"])
def test_splits_are_fixed_by_seed_disjoint_and_sized(name):
    sizes = SplitSizes(train=300, dev=50, test=80)
    a, b = get_task(name, seed=1, sizes=sizes), get_task(name, seed=1, sizes=sizes)
    c = get_task(name, seed=2, sizes=sizes)
    ids = {s: [e.id for e in a.examples(s)] for s in ("train", "dev", "test")}
    assert [len(ids[s]) for s in ("train", "dev", "test")] == [300, 50, 80]
    assert ids["test"] == [e.id for e in b.examples("test")]  # same seed, same split
    assert ids["test"] != [e.id for e in c.examples("test")]  # another seed, another split
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["dev"]) & set(ids["test"])
    ex = a.examples("train")[0]
    assert ex.messages[0]["role"] == "user" and ex.messages[0]["content"]


def test_arithmetic_verifier_and_difficulty():
    task = get_task("arithmetic", levels=(1, 2, 3), sizes=SplitSizes(300, 20, 20))
    for ex in task.examples("train")[:50]:
        a, op, b = re.fullmatch(r"What is (\d+)([+-])(\d+)\?", ex.messages[0]["content"]).groups()
        assert int(ex.answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert len(a) == ex.difficulty and len(b) <= ex.difficulty  # level d: d-digit first operand
    ex = Example("x", "arithmetic", ({"role": "user", "content": "What is 40-45?"},), "-5")
    assert task.verify(ex, "-5").correct
    assert task.verify(ex, "The answer is -5.").correct
    v = task.verify(ex, "5")
    assert not v.correct and v.expected == "-5" and v.extracted == "5"
    assert task.verify(ex, "no idea").extracted is None


def test_reverse_verifier_gives_partial_credit():
    task = get_task("reverse")
    ex = Example("r", "reverse", ({"role": "user", "content": "Reverse the word: table"},), "elbat")
    assert task.verify(ex, "elbat").correct and task.verify(ex, " elbat.").score == 1.0
    v = task.verify(ex, "elbxx")
    assert not v.correct and v.score == pytest.approx(3 / 5)


def test_bad_task_input_is_refused():
    with pytest.raises(ValueError, match="unknown task 'chess'. Built-in tasks: arithmetic, reverse"):
        get_task("chess")
    with pytest.raises(ValueError, match="levels"):
        get_task("arithmetic", levels=(0,))
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        get_task("reverse").examples("validation")
    with pytest.raises(ValueError, match="fewer than"):
        get_task("arithmetic", levels=(1,), sizes=SplitSizes(1000, 10, 10)).examples("train")
