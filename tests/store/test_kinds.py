"""Every feedback kind is written, read back and exported identical, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from refeed.store import IdempotencyConflict, NotFound, Store, ValidationFailed
from refeed.store.formats import export_jsonl, import_file
from refeed.types import FeedbackKind, Interaction, Source

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Wie viel ist 2+2? 🤔"}]


def fill(store: Store) -> dict[str, str]:
    """One interaction per answer and one feedback of every kind; returns the ids by name."""
    a = store.log(CHAT, "Das ist 4 — ganz sicher. 👍", model="m-v1", params={"temperature": 0.7})
    b = store.log(CHAT, "5", model="m-v1")
    c = store.log(CHAT, "vier", model="m-v2", thread_id="t1", parent_id=a)
    ids = {"a": a, "b": b, "c": c}
    ids["rating"] = store.feedback(a, "rating", score=4, scale=(1, 5), author="ana", reason_tags=["clear"])
    ids["thumbs"] = store.feedback(b, "thumbs", up=False, author="bo")
    ids["preference"] = store.feedback(a, "preference", rejected=b, strength=0.8, shown_first="rejected")
    ids["tie"] = store.feedback(a, "preference", rejected=c, tie=True)
    ids["ranking"] = store.feedback(None, "ranking", ranking=[a, [c, b]])
    ids["critique"] = store.feedback(b, "critique", text="2+2 is 4, not 5.", aspect="correctness")
    ids["edit"] = store.feedback(b, "edit", text="4")
    # "— ganz" starts at code point 10: offsets count code points, not UTF-8 bytes or UTF-16 units.
    ids["span"] = store.feedback(
        a,
        "span",
        spans=[
            {"start": 10, "end": 16, "category": "style", "severity": 1},
            {"start": 25, "end": 26, "category": "emoji", "comment": "no emoji"},
        ],
    )
    ids["retry"] = store.feedback(b, "retry", regeneration_id=c, reason="wrong")
    ids["followup"] = store.feedback(b, "followup", text="That is wrong.", label="correction")
    ids["principle"] = store.feedback(
        None,
        "principle",
        text="Never use emojis.",
        applies_when="talking to my boss",
        not_when="chatting with friends",
    )
    ids["signal"] = store.feedback(a, "signal", signal="copy", value=1, propensity=0.25, source="implicit")
    ids["outcome"] = store.feedback(a, "outcome", passed=True, verifier="arithmetic", source="rule")
    return ids


def test_every_kind_round_trips(store, tmp_path):
    ids = fill(store)
    got = {name: store.get_feedback(fid) for name, fid in ids.items() if name not in "abc"}
    assert {str(f.kind) for f in got.values()} == {k.value for k in FeedbackKind}
    assert (
        got["rating"].score == 4
        and got["rating"].payload["scale"] == [1, 5]
        and got["rating"].author == "ana"
    )
    assert got["thumbs"].kind == FeedbackKind.RATING and got["thumbs"].label == "down"
    assert [(t["role"], t["position"]) for t in got["preference"].targets] == [("rejected", 0), ("chosen", 1)]
    assert {t["role"] for t in got["tie"].targets} == {"candidate"} and got["tie"].label == "tie"
    assert sorted((t["position"], t["interaction_id"]) for t in got["ranking"].targets) == sorted(
        [(1, ids["a"]), (2, ids["b"]), (2, ids["c"])]
    )
    edited = store.get_interaction(got["edit"].payload["edited_interaction_id"])
    assert edited.completion == "4" and edited.derived_from_id == ids["b"] and edited.messages == CHAT
    spans = got["span"].payload["spans"]
    assert [s["quote"] for s in spans] == ["— ganz", "👍"]
    assert got["signal"].source == Source.IMPLICIT and got["signal"].payload["propensity"] == 0.25
    assert got["outcome"].label == "pass" and got["outcome"].score == 1.0
    assert (
        got["principle"].interaction_id is None
        and got["principle"].payload["not_when"] == "chatting with friends"
    )
    assert store.get_interaction(ids["c"]).parent_id == ids["a"]

    out1, out2 = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    export_jsonl(store, out1)
    other = Store(f"sqlite:///{tmp_path / 'copy.db'}")
    report = import_file(other, out1, "refeed")
    assert report.interactions == 4 and report.feedback == 13
    export_jsonl(other, out2)
    assert out1.read_text() == out2.read_text()  # lossless: ids, timestamps, payloads, spans, targets
    assert import_file(store, out1, "refeed").already_present == 17  # and idempotent


def test_queries_by_kind_time_model_author_and_pages(store):
    ids = fill(store)
    assert [f.id for f in store.iter_feedback(kinds=["rating"])] == [ids["rating"], ids["thumbs"]]
    assert [f.id for f in store.iter_feedback(author="bo")] == [ids["thumbs"]]
    assert {f.id for f in store.iter_feedback(model="m-v2")} == set()  # no single-target feedback on c
    assert [i.id for i in store.iter_interactions(model="m-v2")] == [ids["c"]]
    paged = [f.id for f in store.iter_feedback(page_size=2)]
    assert paged == [f.id for f in store.iter_feedback(page_size=1000)] and len(paged) == 13
    mid = store.get_feedback(ids["critique"]).created_at
    assert [f.id for f in store.iter_feedback(since=mid)][0] == ids["critique"]
    assert store.stats()["feedback_by_kind"]["rating"] == 2


def test_bad_records_name_the_field_and_write_nothing(store):
    a = store.log(CHAT, "4")
    cases = [
        (dict(kind="rating", score=7, scale=(1, 5)), "field 'score'"),
        (dict(kind="rating", score=3, stars=2), "field 'stars'"),
        (dict(kind="span", start=3, end=2), "end (2) must be greater than start (3)"),
        (dict(kind="span", start=0, end=50), "past the end of the completion"),
        (dict(kind="signal", signal="stare"), "field 'signal'"),
        (dict(kind="preference", rejected=a), "two different interactions"),
        (dict(kind="sparkle"), "unknown feedback kind 'sparkle'"),
    ]
    for fields, message in cases:
        with pytest.raises(ValidationFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
            store.feedback(a, **fields)
    with pytest.raises(NotFound, match="unknown interaction id 'nope'"):
        store.feedback("nope", "critique", text="x")
    before = store.stats()
    with pytest.raises(ValidationFailed, match="item 1"):
        store.write_batch(
            [
                {"type": "feedback", "target": a, "kind": "critique", "text": "fine"},
                {"type": "feedback", "target": a, "kind": "rating", "score": 0},
            ]
        )
    with pytest.raises(NotFound):
        store.write_batch(
            [
                {"type": "interaction", "messages": CHAT, "completion": "x"},
                {"type": "feedback", "target": "missing", "kind": "critique", "text": "fine"},
            ]
        )
    assert store.stats() == before  # a failing batch writes nothing


def test_an_edit_may_follow_its_original_in_one_batch(store):
    a = Interaction(CHAT, "5")
    fid = store.write_batch([a, {"type": "feedback", "target": a.id, "kind": "edit", "text": "4"}])[-1]
    edited = store.get_interaction(store.get_feedback(fid).payload["edited_interaction_id"])
    assert (edited.completion, edited.derived_from_id) == ("4", a.id)


def test_idempotency_keys(store):
    a = store.log(CHAT, "4", idempotency_key="i-1")
    assert store.log(CHAT, "4", idempotency_key="i-1") == a
    f = store.feedback(a, "edit", text="four", idempotency_key="e-1")
    assert store.feedback(a, "edit", text="four", idempotency_key="e-1") == f
    with pytest.raises(IdempotencyConflict, match="different body"):
        store.feedback(a, "edit", text="FOUR", idempotency_key="e-1")
    assert store.stats()["interactions"] == 2 and store.stats()["feedback"] == 1


def test_api_keys_are_hashed_scoped_and_revocable(store):
    key = store.create_api_key("shop", "ingest")
    assert store.check_api_key(key) == ("shop", "ingest")
    assert store.check_api_key(key + "x") is None and store.check_api_key("garbage") is None
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT secret_hash FROM api_keys").scalar()
    assert key.split(".", 1)[1] not in stored
    store.revoke_api_key(key)
    assert store.check_api_key(key) is None
    with pytest.raises(ValidationFailed, match="role"):
        store.create_api_key("shop", "root")


def test_projects_do_not_see_each_other(store):
    a = store.log(CHAT, "4", project="default")
    store.create_project("other")
    with pytest.raises(NotFound):
        store.feedback(a, "critique", text="x", project="other")
    assert list(store.iter_interactions(project="other")) == []
    assert json.dumps(store.stats(project="other")["feedback_by_kind"]) == "{}"
