"""The simulated user: every feedback kind from the verifier, on both built-in tasks, through the SDK.

Fast (no model): answers are written by hand (right, near-miss, far-off, malformed), go into a real SQLite
store with the oracle's items, and come out of the real builders.
"""

import re

import pytest

from refeed.store.trl import answer_text
from refeed.tasks import get_task, oracle
from refeed.tasks.diagnosis import PHRASES
from refeed.types import Example, Interaction

TASKS = ("arithmetic", "reverse", "sort")


def _answers(task, ex):
    """Right, wrong in one place, wrong in several places, malformed."""
    a = ex.answer
    if task.name == "arithmetic":
        return [a, str(int(a) + 10), str(int(a) + 111), "??"]
    sub = [("q" if c != "q" else "x") for c in a]
    return [a, a[0] + sub[1] + a[2:], a[0] + "".join(sub[1:]), "..."]


def _setup(name):
    task = get_task(name, levels=(3,) if name == "arithmetic" else (5,), sizes={"train": 60, "dev": 5, "test": 5})
    ex = task.examples("train")[0]
    return task, ex, [Interaction(list(ex.messages), t) for t in _answers(task, ex)]


# Every critique sentence matches one template of the closed grammar, with the blanks made of words,
# place names and 1-based positions: no digits of an arithmetic answer, no letters of a reversed word.
_GRAMMAR = re.compile("|".join(
    re.escape(p).replace(r"\{places\}", "[a-z, -]+").replace(r"\{digit_word\}", "digits? (?:is|are)")
    .replace(r"\{what\}", "(?:integer|word)").replace(r"\{got\}", r"\d+").replace(r"\{need\}", r"\d+")
    .replace(r"\{a\}", r"\d+").replace(r"\{b\}", r"\d+").replace(r"\{letters_word\}", "Letters?")
    .replace(r"\{letters\}", r"[\d, and]+").replace(r"\{verb\}", "(?:is|are)")
    .replace(r"\{way\}", "(?:high|low)")
    for p in PHRASES.values()))


@pytest.mark.parametrize("name", TASKS)
def test_critiques_name_the_error_in_the_closed_grammar_and_never_the_answer(name):
    task = get_task(name, sizes={"train": 300, "dev": 5, "test": 5})
    n_critiques = 0
    for ex in task.examples("train")[:300]:
        for completion in _answers(task, ex)[1:]:
            c = oracle.critique(task, ex, completion)
            assert c, (ex, completion)
            sentences = re.findall(r"[^.]+\.", c)
            assert "".join(sentences).replace(". ", ".") == c.replace(". ", ".")
            assert all(_GRAMMAR.fullmatch(s.strip()) for s in sentences), c
            # The answer never appears (as a whole word / number) in the feedback.
            assert not re.search(rf"(?<![\w-]){re.escape(ex.answer)}(?!\w)", c), (ex.answer, c)
            n_critiques += 1
        assert oracle.critique(task, ex, ex.answer) is None
    assert n_critiques == 900


def test_critique_templates_say_where_the_error_is():
    task, ex, _ = _setup("arithmetic")
    assert oracle.critique(task, ex, str(int(ex.answer) + 10)) == "The tens digit is too high."
    # Each wrong digit is said to be too high or too low, grouped by which way: 120 for 213.
    three = Example("a", "arithmetic", ({"role": "user", "content": "What is 200+13?"},), "213")
    assert oracle.critique(task, three, "120") == "The tens digit is too high. The units and hundreds digits are too low."
    rev, rex, _ = _setup("reverse")
    a = rex.answer
    assert oracle.critique(rev, rex, a[:2] + a[3] + a[2] + a[4:]) == "Letters 3-4 are in the wrong order."
    assert oracle.critique(rev, rex, a[::-1]) == "The letters are in the original order, not reversed."
    srt = get_task("sort")
    ex = Example("s", "sort", ({"role": "user", "content": "Sort the letters: dbcat"},), "abcdt")
    assert oracle.critique(srt, ex, "abdct") == "Letters 3-4 are out of order."
    assert oracle.critique(srt, ex, "abcdx") == "Letter 5 is not in the word."
    assert oracle.critique(srt, ex, "abct") == "The answer has 4 letters; it needs 5."
    assert oracle.critique(srt, ex, "tdcba") == ("Letters 1-2 are out of order. Letters 2-3 are out of order. "
                                                 "Letters 3-4 are out of order. Later letters are out of order too.")
    # The span (fine-grained rewards, span feedback) covers the letters out of place and nothing else.
    assert oracle.spans(srt, ex, "abdct") == [{"start": 2, "end": 4, "category": oracle.SPAN_CATEGORY, "severity": 2}]


@pytest.mark.parametrize("name", TASKS)
def test_grades_spans_edits_follow_the_verifier(name):
    task, ex, its = _setup(name)
    grades = [oracle.grade(task, ex, it.completion) for it in its]
    assert grades[0] == 5 and grades[3] == 1 and 5 > grades[1] > grades[2] >= 1, grades
    assert oracle.spans(task, ex, ex.answer) == [] and oracle.edit(task, ex, ex.answer) is None
    for it in its[1:]:
        spans = oracle.spans(task, ex, it.completion)
        quoted = "".join(it.completion[s["start"]:s["end"]] for s in spans)
        assert spans and all(s["end"] <= len(it.completion) for s in spans)
        if it.completion not in ("??", "..."):  # the wrong characters and nothing else
            assert len(quoted) < len(it.completion), (it.completion, quoted)
        assert oracle.edit(task, ex, it.completion) == ex.answer
    assert oracle.followup(task, ex, ex.answer)[1] == "positive"
    assert oracle.followup(task, ex, its[1].completion)[1] == "negative"


def test_preferences_put_correct_over_incorrect_and_drop_ties():
    task, ex, its = _setup("arithmetic")
    its = [its[0], its[1], Interaction(list(ex.messages), " " + ex.answer), its[3]]  # 2 right, 2 wrong
    by_id = {it.id: it for it in its}
    all_pairs = oracle.preferences(task, ex, its, max_pairs=None)
    assert len(all_pairs) == 4  # 2 correct x 2 incorrect; the ties (both right, both wrong) are dropped
    for fb in all_pairs:
        assert task.verify(ex, by_id[fb["target"]].completion).correct
        assert not task.verify(ex, by_id[fb["rejected"]].completion).correct
    assert len(oracle.preferences(task, ex, its, max_pairs=1)) == 1
    graded = oracle.preferences(task, ex, its, max_pairs=None, by="grade")
    assert len(graded) == 5  # and the closer wrong answer beats the malformed one


@pytest.mark.parametrize("name", TASKS)
def test_signals_are_biased_noisy_and_log_their_propensity(name):
    task = get_task(name, sizes={"train": 400, "dev": 5, "test": 5})
    model = oracle.SignalModel()
    seen = {True: [0, 0], False: [0, 0]}  # truth -> [observed, observed positive]
    for ex in task.examples("train"):
        its = [Interaction(list(ex.messages), t) for t in _answers(task, ex)[:2]]
        items = oracle.signals(task, ex, its, seed=0)
        for it in its:
            mine = [s for s in items if s["target"] == it.id]
            truth = task.verify(ex, it.completion).correct
            if mine:
                assert [s["signal"] for s in mine][0] == "click"
                assert mine[0]["propensity"] == model.propensity(oracle.grade(task, ex, it.completion))
                seen[truth][0] += 1
                seen[truth][1] += mine[1]["signal"] == "copy"
    # Right answers (grade 5) are reacted to at p_max, near misses less; polarity is flipped at e10 / e01.
    assert seen[True][0] / 400 == pytest.approx(model.p_max, abs=0.08)
    assert 1 - seen[True][1] / seen[True][0] == pytest.approx(model.e10, abs=0.07)
    assert seen[False][1] / seen[False][0] == pytest.approx(model.e01, abs=0.12)


@pytest.mark.parametrize("name", TASKS)
def test_every_kind_goes_through_the_sdk_and_out_of_the_builders(name, tmp_path):
    from refeed import datasets as ds
    from refeed.store import Store

    task, ex, its = _setup(name)
    store = Store(f"sqlite:///{tmp_path / 'fb.db'}")
    items = oracle.judge(task, ex, its, seed=0) + oracle.principle_items(task)
    store.write_batch([*its, *items])
    kinds = store.stats()["feedback_by_kind"]
    assert set(kinds) == set(oracle.KINDS) - {"thumbs"} | {"principle"}  # thumbs are stored as ratings
    assert ds.preference_pairs(store, sources=["preference"]).num_rows == 2
    groups = ds.ranked_groups(store).to_list()
    assert len(groups) == 1 and answer_text(groups[0]["completions"][0]) == ex.answer and groups[0]["ranks"] == [1, 2, 3, 4]
    crit = ds.critique_triplets(store).to_list()
    assert len(crit) == 3 and all(answer_text(r["completion"]) != ex.answer for r in crit)
    assert {answer_text(r["completion"]) for r in ds.sft_rows(store).to_list()} == {ex.answer}  # edits and the top-rated answer
    spans = ds.span_labels(store).to_list()
    assert len(spans) == 3 and all(s["category"] == oracle.SPAN_CATEGORY for r in spans for s in r["spans"])
    assert {r["label"] for r in ds.followups(store).to_list()} == {"positive", "negative"}
    causal = ds.causal_rows(store).to_list()
    assert len(causal) == 4 + 3  # every logged answer, the three edits' corrected answers included
    (principle,) = ds.principle_jobs(store).to_list()
    assert principle["applies_when"] and principle["not_when"] and oracle.rule_for(principle["principle"])


@pytest.mark.parametrize("name", TASKS)
def test_rules_split_prompts_by_scope_and_c3po_rows_revise_only_in_scope(name):
    task = get_task(name, sizes={"train": 200, "dev": 5, "test": 5})
    rule = oracle.RULES[name]
    inside, near = oracle.scope_examples(rule, task)
    assert inside and near and not set(e.id for e in inside) & set(e.id for e in near)
    samples = [[(e, e.answer) for e in exs[:5]] for exs in (inside, near, near[5:])]
    rows = oracle.c3po_rows(rule, *samples)
    assert [r["scope"] for r in rows] == [0, 1, 2] * 5
    for r in rows:
        assert rule.follows(r["chosen"]) == (r["scope"] == 0) and not rule.follows(r["rejected"])
        assert task.verify(task.examples("train")[0], r["chosen"]) is not None
    assert all(task.verify(e, rule.revise(e.answer)).correct for e in inside[:20])  # following it costs nothing
