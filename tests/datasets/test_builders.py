"""The other builders: columns, provenance and known answers; and qa-feedback end to end."""

from __future__ import annotations

import json
from pathlib import Path

from refeed.datasets import (
    critique_triplets,
    followups,
    observational,
    preference_pairs,
    principle_jobs,
    ranked_groups,
    sft_rows,
    span_labels,
    unpaired,
)
from refeed.store.formats import import_file
from tests.datasets.conftest import ask, plain

QA = Path("/work/shared/data/qa-feedback/dev_feedback.json")
QA = next(
    (
        p
        for p in (Path(__file__).resolve().parents[3] / "shared/data/qa-feedback/dev_feedback.json", QA)
        if p.exists()
    ),
    QA,
)


def test_unpaired_and_sft(store):
    up, down, mid, edited = ask(store, "q", "good", "bad", "so-so", "typo")
    store.feedback(up, "thumbs", up=True)
    store.feedback(down, "thumbs", up=False)
    store.feedback(mid, "rating", score=3, scale=(1, 5))
    store.feedback(edited, "edit", text="fixed")
    ds = unpaired(store)
    assert sorted((r["completion"], r["label"]) for r in plain(ds)) == [
        ("bad", False),
        ("fixed", True),
        ("good", True),
    ]
    assert all(len(s) >= 2 for s in ds["source_ids"])
    assert sorted(r["completion"] for r in plain(sft_rows(store))) == ["fixed", "good"]


def test_groups_critiques_spans_followups_signals_principles(store):
    a, b, c = ask(store, "q", "A", "B", "C")
    store.feedback(None, "ranking", ranking=[b, [a, c]])
    (g,) = plain(ranked_groups(store))
    assert g["completions"][0] == "B" and g["ranks"] == [1, 2, 2]
    store.feedback(a, "critique", text="too short", aspect="length")
    assert critique_triplets(store)[0]["critique"] == "too short"
    store.feedback(b, "span", start=0, end=1, category="wrong", severity=2)
    assert span_labels(store)[0]["spans"] == [{"start": 0, "end": 1, "category": "wrong", "severity": 2}]
    store.feedback(c, "followup", text="no, that's wrong", label="negative")
    assert followups(store)[0]["label"] == "negative"
    store.feedback(a, "signal", signal="copy", propensity=0.5, source="implicit")
    assert observational(store)[0]["propensity"] == 0.5
    store.feedback(None, "principle", text="No emojis.", applies_when="work email")
    assert principle_jobs(store)[0]["applies_when"] == "work email"


def test_qa_feedback_pairs_and_spans(store):
    raw = json.loads(QA.read_text())
    import_file(store, QA, "qa-feedback")
    ds = preference_pairs(store, sources=["preference"])
    non_tie = sum(1 for q in raw for v in q["preference"] if v)
    identical = sum(
        1
        for q in raw
        for (a, b), v in zip([(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)], q["preference"], strict=True)
        if v and q[f"prediction {a}"] == q[f"prediction {b}"]
    )
    assert ds.num_rows == non_tie - identical  # one pair per non-tie judgement (none on identical texts)
    spans = span_labels(store)
    by_answer = {r["completion"]: r["spans"] for r in plain(spans)}
    for q in raw:
        if q["feedback"]["errors"]:
            got = by_answer[q["prediction 1"]]
            want = sorted((e["start"], e["end"], e["error type"]) for e in q["feedback"]["errors"])
            assert sorted((s["start"], s["end"], s["category"]) for s in got) == want


def test_sft_takes_imported_demonstrations(store, tmp_path):
    """TRL prompt-completion / language-modelling rows and OpenAI fine-tuning turns are answers to imitate."""
    f = tmp_path / "sft.jsonl"
    q = [{"role": "user", "content": "2+2?"}]
    f.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": q, "completion": [{"role": "assistant", "content": "4"}]},
        {"text": "The sky is blue."},
        {"prompt": "3+3?", "completion": "6", "label": False},  # unpaired: a judged answer, not a demonstration
    ]) + "\n")
    import_file(store, f, "trl")
    f.write_text(json.dumps({"messages": [*q, {"role": "assistant", "content": "four"}]}) + "\n")
    import_file(store, f, "openai-chat")
    got = sorted((r["prompt"], r["completion"]) for r in plain(sft_rows(store)))
    assert got == [([], "The sky is blue."), (q, "4"), (q, "four")]
    assert sft_rows(store, demonstrations=False).num_rows == 0
