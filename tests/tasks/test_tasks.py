import re

import pytest

from refeed.tasks import SplitSizes, get_task
from refeed.types import Example


@pytest.mark.parametrize("name", ["arithmetic", "reverse", "sort"])
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
    with pytest.raises(ValueError, match="unknown task 'chess'. Built-in tasks: arithmetic, reverse, sort"):
        get_task("chess")
    with pytest.raises(ValueError, match="levels"):
        get_task("arithmetic", levels=(0,))
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        get_task("reverse").examples("validation")
    with pytest.raises(ValueError, match=r"^arithmetic \(levels \[1\]\) has 200 distinct prompts, fewer than the 1020 "
                       r"the splits ask for \(train 1000 \+ dev 10 \+ test 10\); lower the sizes"):
        get_task("arithmetic", levels=(1,), sizes=SplitSizes(1000, 10, 10)).examples("train")
    with pytest.raises(ValueError, match="^sort .* distinct prompts, fewer than"):
        get_task("sort", levels=(2,), sizes=SplitSizes(1000, 10, 10)).examples("test")
    with pytest.raises(ValueError, match="sort levels"):
        get_task("sort", levels=(1,))


def test_sort_has_a_thousand_test_prompts_and_a_verifier_that_says_where_it_goes_wrong():
    task = get_task("sort")
    test = task.examples("test")
    assert len(test) >= 1000 and {e.difficulty for e in test} == {4, 5, 6, 7}
    for ex in test[:50]:
        word = re.fullmatch(r"Sort the letters: ([a-z]+)", ex.messages[0]["content"]).group(1)
        assert ex.answer == "".join(sorted(word)) and len(word) == ex.difficulty
    ex = Example("s", "sort", ({"role": "user", "content": "Sort the letters: dbcat"},), "abcdt")
    assert task.verify(ex, "abcdt").correct and task.verify(ex, " abcdt.").where is None
    v = task.verify(ex, "abdct")  # letters 3-4 swapped: 3 of 5 in place, wrong from letter 3 on
    assert not v.correct and v.score == pytest.approx(3 / 5) and v.where == (2, 4) and v.extracted == "abdct"
    assert task.verify(ex, "The abdct").where == (0, 3)  # the first word is the answer, and it is wrong
    v = task.verify(ex, "abcd")  # one letter short: it goes wrong where it stops
    assert v.score == pytest.approx(4 / 5) and v.where == (3, 4)
    assert task.verify(ex, "").extracted is None and task.verify(ex, "").score == 0.0
