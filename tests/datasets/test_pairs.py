"""preference_pairs on hand-made stores whose answers are known."""

from __future__ import annotations

import pytest

from refeed.datasets import build_report, preference_pairs, split_by_prompt
from tests.datasets.conftest import ask, plain


def test_a_ranking_of_four_gives_six_pairs_easy_to_hard(store):
    a, b, c, d = ask(store, "rank us", "A", "B", "C", "D")
    fid = store.feedback(None, "ranking", ranking=[a, b, c, d])
    ds = preference_pairs(store, order="curriculum")
    got = [(r["chosen"], r["rejected"], r["margin"]) for r in plain(ds)]
    # Curry-DPO order: the widest rank gap (easiest) first; equal gaps keep ranking order.
    assert got == [
        ("A", "D", 3.0),
        ("A", "C", 2.0),
        ("B", "D", 2.0),
        ("A", "B", 1.0),
        ("B", "C", 1.0),
        ("C", "D", 1.0),
    ]
    adjacent = preference_pairs(store, ranking_pairs="adjacent")
    assert [(r["chosen"], r["rejected"]) for r in plain(adjacent)] == [("A", "B"), ("B", "C"), ("C", "D")]
    texts = dict(zip("ABCD", (a, b, c, d), strict=True))
    assert all(set(r["source_ids"]) == {fid, texts[r["chosen"]], texts[r["rejected"]]} for r in plain(ds))


def test_ties_in_a_ranking_are_never_paired(store):
    a, b, c = ask(store, "q", "A", "B", "C")
    store.feedback(None, "ranking", ranking=[a, [b, c]])
    assert sorted((r["chosen"], r["rejected"]) for r in plain(preference_pairs(store))) == [("A", "B"), ("A", "C")]


def test_contradictions_are_reported_and_majority_wins(store):
    a, b = ask(store, "q1", "yes", "no")
    store.feedback(a, "preference", rejected=b, author="ana")
    store.feedback(b, "preference", rejected=a, author="bo")  # A ≻ B and B ≻ A: an even vote
    c, d = ask(store, "q2", "good", "bad")
    for who in ("ana", "bo"):
        store.feedback(c, "preference", rejected=d, author=who)
    store.feedback(d, "preference", rejected=c, author="cy")  # outvoted 2 : 1
    ds = preference_pairs(store, sources=["preference"])
    report = build_report(ds)
    assert [(r["chosen"], r["rejected"]) for r in plain(ds)] == [("good", "bad")]
    assert len(report["contradictions"]) == 2
    assert report["dropped"]["contradiction with an even vote"] == 1
    assert report["agreement"] == 0.0


def test_duplicates_collapse_and_ties_drop(store):
    a, b = ask(store, "q", "x", "y")
    a2, b2 = ask(store, "q", "x", "y")  # the same texts logged again
    store.feedback(a, "preference", rejected=b)
    store.feedback(a2, "preference", rejected=b2)
    store.feedback(a, "preference", rejected=b2, tie=True)
    ds = preference_pairs(store)
    assert ds.num_rows == 1 and build_report(ds)["dropped"]["preference tie"] == 1
    assert build_report(ds)["agreement"] == 1.0


def test_rating_gaps_edits_and_outcomes(store):
    a, b, c = ask(store, "q", "great", "ok", "meh")
    for i, score in ((a, 5), (b, 4), (c, 2)):
        store.feedback(i, "rating", score=score)
    store.feedback(c, "rating", score=3, author="second rater")  # c's mean is 2.5
    got = {
        (r["chosen"], r["rejected"]): r["margin"]
        for r in plain(preference_pairs(store, sources=["rating"], min_gap=1.5))
    }
    assert got == {("great", "meh"): 2.5, ("ok", "meh"): 1.5}
    store.feedback(b, "edit", text="okay!")
    (r,) = plain(preference_pairs(store, sources=["edit"]))
    assert (r["chosen"], r["rejected"], r["source"]) == ("okay!", "ok", "edit")
    p, f = ask(store, "2+2", "4", "5")
    store.feedback(p, "outcome", passed=True, source="rule")
    store.feedback(f, "outcome", passed=False, source="rule")
    assert [(r["chosen"], r["rejected"]) for r in plain(preference_pairs(store, sources=["outcome"]))] == [
        ("4", "5")
    ]


def test_no_prompt_lands_in_both_splits(store):
    for n in range(60):
        a, b = ask(store, f"question {n}", "good", "bad")
        store.feedback(a, "preference", rejected=b)
        c = ask(store, f"question {n}", "also good")[0]
        store.feedback(c, "preference", rejected=b)
    parts = split_by_prompt(preference_pairs(store), eval_fraction=0.2, seed=1)
    train = {str(p) for p in parts["train"]["prompt"]}
    held = {str(p) for p in parts["eval"]["prompt"]}
    assert train and held and not train & held
    assert parts["train"].num_rows + parts["eval"].num_rows == 120


def test_bad_arguments_are_refused(store):
    with pytest.raises(ValueError, match="sources must be from"):
        preference_pairs(store, sources=["vibes"])
    with pytest.raises(ValueError, match="eval_fraction"):
        split_by_prompt(preference_pairs(store), eval_fraction=1.5)
