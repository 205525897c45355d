"""The builders' fast path (set-wise read, one-vote shortcut) returns exactly what the record-by-record
path returned, on a store with every kind of feedback, several annotators, contradictions and duplicates."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from refeed.datasets import BUILDERS, build_report, groups, pairs, pointwise
from refeed.datasets.common import text_hash
from refeed.types import Interaction


def _load_before(store, kinds, project=None):
    """The reader builders used before ``Store.builder_input``: full records page by page, answers by id."""
    fbs = list(store.iter_feedback(kinds=list(kinds), project=project, page_size=50))
    ids = set()
    for fb in fbs:
        if fb.interaction_id:
            ids.add(fb.interaction_id)
        ids.update(t["interaction_id"] for t in fb.targets)
    return fbs, store.answers(ids, project=project)


def _resolve_before(votes, inter, report):
    """``pairs._resolve`` as it was before the one-vote shortcut (the reference)."""
    rows, multi, agreeing = [], 0, 0
    for (_, _texts), vs in votes.items():
        tally = defaultdict(list)
        for v in vs:
            tally[inter[v[0]].completion].append(v)
        if len(vs) > 1:
            multi += 1
            agreeing += len(tally) == 1
        if len(tally) > 1:
            counts = sorted((len(v), text_hash(t)) for t, v in tally.items())
            report.contradictions.append(
                {
                    "prompt": inter[vs[0][0]].messages,
                    "votes": [c for c, _ in counts],
                    "feedback_ids": sorted({x for v in vs for x in v[4].split(",")}),
                }
            )
            if counts[0][0] == counts[1][0]:
                report.dropped["contradiction with an even vote"] += 1
                continue
        winner_votes = max(tally.values(), key=len)
        if len(vs) > len(winner_votes) or len(vs) > 1:
            report.dropped["duplicate or outvoted"] += len(vs) - 1
        win, lose, margin, source, _ = winner_votes[0]
        margins = [v[2] for v in winner_votes if v[2] is not None]
        report.by_source[source] += 1
        rows.append(
            {
                "prompt": inter[win].messages,
                "chosen": inter[win].completion,
                "rejected": inter[lose].completion,
                "margin": sum(margins) / len(margins) if margins else 0.0,
                "source": source,
                "source_ids": sorted({x for v in vs for x in v[4].split(",")} | {win, lose}),
            }
        )
    report.agreement = agreeing / multi if multi else None
    return rows


@pytest.fixture
def busy_store(store):
    """120 prompts, 3 to 5 answers each (some texts repeated), and every kind of feedback from 4 annotators."""
    rng = random.Random(7)
    texts = ["yes", "no", "maybe", "42", "forty-two", "it depends", "I don't know"]
    items, answers = [], []
    for q in range(120):
        chat = [{"role": "system", "content": "Be brief."}] * (q % 2) + [{"role": "user", "content": f"q{q}"}]
        group = [Interaction(chat, rng.choice(texts)) for _ in range(rng.randint(3, 5))]
        items += group
        answers.append(group)
    store.write_batch(items)
    feedback = []
    for group in answers:
        ids = [i.id for i in group]
        for who in ("ana", "bo", "cy", "di"):
            a, b = rng.sample(ids, 2)
            flag = rng.choice([{}, {}, {}, {"tie": True}, {"both_bad": True}, {"strength": rng.random()}])
            feedback.append({"target": a, "kind": "preference", "rejected": b, "author": who, **flag})
            if rng.random() < 0.5:
                feedback.append(
                    {"target": rng.choice(ids), "kind": "rating", "author": who, "score": rng.randint(1, 5)}
                )
            if rng.random() < 0.3:
                feedback.append(
                    {"target": rng.choice(ids), "kind": "thumbs", "author": who, "up": rng.random() < 0.5}
                )
        order = rng.sample(ids, len(ids))
        feedback.append({"target": None, "kind": "ranking", "ranking": [order[0], order[1:3], *order[3:]]})
        feedback.append({"target": ids[0], "kind": "outcome", "passed": rng.random() < 0.5, "source": "rule"})
        feedback.append({"target": ids[1], "kind": "outcome", "passed": rng.random() < 0.5, "source": "rule"})
        if rng.random() < 0.3:
            feedback.append({"target": ids[-1], "kind": "edit", "text": rng.choice(texts)})
        if rng.random() < 0.3:
            feedback.append(
                {"target": ids[0], "kind": "span", "spans": [{"start": 0, "end": 1, "severity": 2}]}
            )
        for kind, extra in (
            ("critique", {"text": "shorter"}),
            ("followup", {"text": "why?", "label": "question"}),
            ("signal", {"signal": "copy", "propensity": 0.5, "source": "implicit"}),
            ("principle", {"text": "No emojis.", "applies_when": "work"}),
        ):
            if rng.random() < 0.2:
                feedback.append({"target": ids[0], "kind": kind, **extra})
    store.write_batch([{"type": "feedback", **f} for f in feedback])
    return store


CALLS = [(name, {}) for name in BUILDERS] + [
    ("pairs", {"sources": ["preference"]}),
    ("pairs", {"ranking_pairs": "adjacent", "order": "curriculum"}),
    ("pairs", {"sources": ["rating", "outcome"], "min_gap": 0.5}),
]


@pytest.mark.parametrize(("name", "kwargs"), CALLS, ids=[f"{n}-{k}" for n, k in CALLS])
def test_every_builder_returns_what_the_record_path_returned(busy_store, monkeypatch, name, kwargs):
    fast = BUILDERS[name](busy_store, **kwargs)
    for module in (pairs, pointwise, groups):
        monkeypatch.setattr(module, "load", _load_before)
    monkeypatch.setattr(pairs, "_resolve", _resolve_before)
    before = BUILDERS[name](busy_store, **kwargs)
    assert fast.num_rows > 0
    assert fast.features == before.features
    assert fast.to_list() == before.to_list()
    assert fast.info.description == before.info.description  # the report, key order included
    if name == "pairs" and not kwargs:
        report = build_report(fast)
        assert report["contradictions"] and report["dropped"]["duplicate or outvoted"] > 0
