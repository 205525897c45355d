"""Rows for the reward models of implicit and graded feedback, and the objective-specific columns
other builders add (Curry-DPO stages, NFT's correct rate): hand-made stores with known answers."""

from __future__ import annotations

import pytest

from refeed.datasets import causal_rows, graded_levels, preference_pairs, unpaired
from tests.datasets.conftest import ask, plain


def _by_completion(ds):
    return {r["completion"]: r for r in plain(ds)}


def test_causal_rows_cover_every_logged_answer(store):
    copied, abandoned, both, ignored, silent = ask(store, "q", "copied", "abandoned", "both", "ignored", "silent")
    store.feedback(copied, "signal", signal="copy", propensity=0.25)
    store.feedback(copied, "signal", signal="share", propensity=0.75)
    store.feedback(abandoned, "signal", signal="abandon", propensity=0.5)
    store.feedback(both, "signal", signal="copy", propensity=0.5)
    store.feedback(both, "signal", signal="abandon", propensity=0.5)
    store.feedback(ignored, "signal", signal="dwell", value=3.0, propensity=0.2)  # neither positive nor negative
    rows = _by_completion(causal_rows(store))
    assert set(rows) == {"copied", "abandoned", "both", "ignored", "silent"}
    assert (rows["copied"]["observed"], rows["copied"]["label"], rows["copied"]["propensity"]) == (1, 1, 0.5)
    assert (rows["abandoned"]["observed"], rows["abandoned"]["label"]) == (1, 0)
    assert rows["both"]["observed"] == 0 and rows["ignored"]["observed"] == 0 and rows["ignored"]["propensity"] == 0.2
    assert (rows["silent"]["observed"], rows["silent"]["propensity"], rows["silent"]["source_ids"]) == (0, 1.0, [silent])
    assert len(rows["copied"]["source_ids"]) == 3  # two signals and the answer


def test_causal_rows_drop_a_reaction_without_propensity(store):
    (a,) = ask(store, "q", "a")
    store.feedback(a, "signal", signal="copy")
    ds = causal_rows(store)
    assert len(ds) == 0
    from refeed.datasets import build_report

    assert build_report(ds)["dropped"] == {"reacted to without a logged propensity": 1}
    with pytest.raises(ValueError, match="disjoint signal kinds"):
        causal_rows(store, positive=("copy",), negative=("copy",))


def test_graded_levels_take_the_highest_rung(store):
    none, clicked, copied, loved = ask(store, "q", "none", "clicked", "copied", "loved")
    store.feedback(clicked, "signal", signal="click")
    store.feedback(copied, "signal", signal="click")
    store.feedback(copied, "signal", signal="copy")
    store.feedback(loved, "thumbs", up=True)  # no click logged: the ladder is by the highest rung
    store.feedback(none, "thumbs", up=False)
    levels = {c: r["label"] for c, r in _by_completion(graded_levels(store)).items()}
    assert levels == {"none": 0, "clicked": 1, "copied": 2, "loved": 3}
    with pytest.raises(ValueError, match="distinct rungs"):
        graded_levels(store, ladder=("click", "purchase"))


def test_curriculum_pairs_carry_their_stage_per_prompt(store):
    a, b, c, d = ask(store, "q1", "A", "B", "C", "D")
    store.feedback(None, "ranking", ranking=[a, b, c, d])  # 6 pairs, margins 3 (1), 2 (2), 1 (3)
    x, y = ask(store, "q2", "X", "Y")
    store.feedback(x, "rating", score=5, scale=(1, 5))
    store.feedback(y, "rating", score=1, scale=(1, 5))  # margin 4: the easiest pair overall
    ds = preference_pairs(store, sources=["ranking", "rating"], order="curriculum")
    got = [(r["chosen"], r["rejected"], r["margin"], r["stage"]) for r in plain(ds)]
    assert got[0] == ("X", "Y", 4.0, 0) and got[1] == ("A", "D", 3.0, 0)
    assert [g[3] for g in got[2:]] == [1, 2, 3, 4, 5] and [g[2] for g in got[2:]] == [2.0, 2.0, 1.0, 1.0, 1.0]
    assert "stage" not in preference_pairs(store).column_names


def test_unpaired_rows_carry_the_prompts_correct_rate(store):
    ups, downs = ask(store, "q1", "u1", "u2", "d1"), ask(store, "q2", "u3", "d2")
    for i, good in zip([*ups, *downs], [True, True, False, True, False], strict=True):
        store.feedback(i, "thumbs", up=good)
    rates = {r["completion"]: r["correct_rate"] for r in plain(unpaired(store))}
    assert rates == {"u1": pytest.approx(2 / 3), "u2": pytest.approx(2 / 3), "d1": pytest.approx(2 / 3), "u3": 0.5, "d2": 0.5}
