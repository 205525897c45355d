"""Imports: qa-feedback with nothing lost, re-imports add nothing, a bad line writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refeed.store import ValidationFailed
from refeed.store.formats import export_jsonl, import_file

QA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "qa-feedback" / "dev_feedback.json"
QA = QA.resolve() if QA.exists() else Path("/work/shared/data/qa-feedback/dev_feedback.json")


@pytest.fixture(scope="module")
def qa_raw():
    if not QA.exists():
        pytest.fail(f"the qa-feedback sample is missing at {QA}")
    return json.loads(QA.read_text())


def test_qa_feedback_imports_with_nothing_lost(store, qa_raw):
    report = import_file(store, QA, "qa-feedback")
    n_edits = sum(1 for q in qa_raw if q["feedback"].get("corrected-prediction"))
    assert report.interactions == 4 * len(qa_raw) + n_edits
    assert report.by_kind["preference"] == 6 * len(qa_raw)
    assert report.by_kind["edit"] == n_edits

    by_question = {}
    for i in store.iter_interactions():
        if i.derived_from_id is None:
            by_question[(i.messages[0]["content"], i.metadata["prediction"])] = i
    span_fbs = {f.interaction_id: f for f in store.iter_feedback(kinds=["span"])}
    edits = {f.interaction_id: f for f in store.iter_feedback(kinds=["edit"])}
    prefs = {}
    for f in store.iter_feedback(kinds=["preference"]):
        prefs[(f.targets[0]["interaction_id"], f.targets[1]["interaction_id"])] = f
    n_spans = 0
    for q in qa_raw:
        answers = [by_question[(q["question"], k)] for k in range(1, 5)]
        assert [a.completion for a in answers] == [q[f"prediction {k}"] for k in range(1, 5)]
        first = answers[0]
        errors = q["feedback"]["errors"]
        stored = span_fbs[first.id].payload["spans"] if first.id in span_fbs else []
        assert [(s["start"], s["end"], s["category"]) for s in stored] == [
            (e["start"], e["end"], e["error type"]) for e in errors
        ]
        for s in stored:  # the span lands on the right characters of the right answer
            assert s["quote"] == q["prediction 1"][s["start"] : s["end"]]
        n_spans += len(stored)
        if q["feedback"]["missing-info"]:
            assert span_fbs[first.id].payload["missing_info"] == q["feedback"]["missing-info"]
        if q["feedback"].get("corrected-prediction"):
            assert edits[first.id].text == q["feedback"]["corrected-prediction"]
        pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
        for (a, b), verdict in zip(pairs, q["preference"], strict=True):
            f = prefs[(answers[a].id, answers[b].id)]
            roles = [t["role"] for t in f.targets]
            assert (
                roles == {0: ["candidate"] * 2, 1: ["chosen", "rejected"], 2: ["rejected", "chosen"]}[verdict]
            )
    assert n_spans == sum(len(q["feedback"]["errors"]) for q in qa_raw)

    again = import_file(store, QA, "qa-feedback")  # idempotent
    assert again.already_present == report.interactions + report.feedback
    assert store.stats()["interactions"] == report.interactions


def test_a_bad_line_is_refused_with_its_number_and_nothing_is_written(sqlite_store, tmp_path):
    good = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    f = tmp_path / "pairs.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps(good),
                json.dumps({**good, "chosen": "four"}),
                '{"prompt": "x", "chosen": 1}',
                json.dumps(good),
            ]
        )
        + "\n"
    )
    with pytest.raises(ValidationFailed, match=r"pairs.jsonl:3: .*nothing was imported"):
        import_file(sqlite_store, f, "trl")
    f.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(ValidationFailed, match=r"pairs.jsonl:2: not valid JSON"):
        import_file(sqlite_store, f, "trl")
    assert sqlite_store.stats()["interactions"] == 0 and sqlite_store.stats()["feedback"] == 0


def test_trl_and_openai_formats(sqlite_store, tmp_path):
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {
            "prompt": [{"role": "user", "content": "3+3?"}],
            "chosen": [{"role": "assistant", "content": "6"}],
            "rejected": [{"role": "assistant", "content": "7"}],
        },
        {"prompt": "1+1?", "completion": "2", "label": True},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    ]
    f = tmp_path / "trl.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = import_file(sqlite_store, f, "trl")
    assert (r.interactions, r.by_kind) == (6, {"preference": 2, "rating": 1})
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows[:1]), tmp_path / "trl.parquet")
    assert (
        import_file(sqlite_store, tmp_path / "trl.parquet", "trl").already_present == 3
    )  # same row, same keys

    log = tmp_path / "chat.jsonl"
    log.write_text(
        json.dumps(
            {
                "request": {"model": "m", "temperature": 0.2, "messages": [{"role": "user", "content": "q"}]},
                "response": {"model": "m-1", "choices": [{"message": {"role": "assistant", "content": "a"}}]},
            }
        )
        + "\n"
    )
    assert import_file(sqlite_store, log, "openai-chat").interactions == 1
    i = [x for x in sqlite_store.iter_interactions() if x.completion == "a"][0]
    assert (i.model, i.params, i.messages[-1]["content"]) == ("m-1", {"temperature": 0.2}, "q")
    assert export_jsonl(sqlite_store, tmp_path / "out.jsonl") == 7 + 3


def test_unknown_format_and_missing_file(sqlite_store, tmp_path):
    with pytest.raises(ValidationFailed, match="unknown format 'csv'"):
        import_file(sqlite_store, tmp_path / "x", "csv")
    with pytest.raises(FileNotFoundError, match="no such file"):
        import_file(sqlite_store, tmp_path / "x.jsonl", "refeed")
