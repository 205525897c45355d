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


def _msgs(*turns):
    return [{"role": role, "content": text} for role, text in zip(("user", "assistant") * 4, turns, strict=False)]


A = [{"role": "assistant", "content": "It is blue."}]
B = [{"role": "assistant", "content": "It is green."}]
Q = [{"role": "user", "content": "What color is the sky?"}]
# Every TRL type, standard and conversational, explicit and implicit prompt (TRL's dataset_formats.md),
# and what the store must hold for it: (chat, answer) of each interaction, and the feedback kinds.
TRL_ROWS = [
    ({"text": "The sky is blue."}, [([], "The sky is blue.")], []),
    ({"messages": [*Q, *A]}, [(Q, "It is blue.")], []),
    ({"prompt": "The sky is", "completion": " blue."}, [(_msgs("The sky is"), " blue.")], []),
    ({"prompt": Q, "completion": A}, [(Q, "It is blue.")], []),
    ({"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
     [(_msgs("The sky is"), " blue."), (_msgs("The sky is"), " green.")], ["preference"]),
    ({"prompt": Q, "chosen": A, "rejected": B}, [(Q, "It is blue."), (Q, "It is green.")], ["preference"]),
    ({"chosen": "The sky is blue.", "rejected": "The sky is green."},  # implicit, standard
     [(_msgs("The sky is"), " blue."), (_msgs("The sky is"), " green.")], ["preference"]),
    ({"chosen": [*Q, *A], "rejected": [*Q, *B]}, [(Q, "It is blue."), (Q, "It is green.")], ["preference"]),
    # HH-RLHF as trl-lib ships it: multi-turn conversations that differ in the last answer only
    ({"chosen": _msgs("hi", "hello", "2+2?", "4"), "rejected": _msgs("hi", "hello", "2+2?", "5")},
     [(_msgs("hi", "hello", "2+2?"), "4"), (_msgs("hi", "hello", "2+2?"), "5")], ["preference"]),
    ({"prompt": "What color is the sky?", "chosen": [*Q, *A], "rejected": [*Q, *B]},  # a text prompt added beside
     [(Q, "It is blue."), (Q, "It is green.")], ["preference"]),
    ({"prompt": Q, "chosen": [*Q, *A], "rejected": [*Q, *B]},  # a chat prompt the conversations repeat
     [(Q, "It is blue."), (Q, "It is green.")], ["preference"]),
    ({"prompt": "The sky is", "completion": " blue.", "label": True}, [(_msgs("The sky is"), " blue.")], ["rating"]),
    ({"prompt": Q, "completion": B, "label": False}, [(Q, "It is green.")], ["rating"]),
]


@pytest.mark.parametrize("row, stored, kinds", TRL_ROWS, ids=[str(sorted(r[0])) + str(n) for n, r in enumerate(TRL_ROWS)])
def test_every_trl_type_imports(sqlite_store, tmp_path, row, stored, kinds):
    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps(row) + "\n")
    report = import_file(sqlite_store, f, "trl")
    got = sorted((i.messages, i.completion) for i in sqlite_store.iter_interactions())
    assert got == sorted(stored, key=lambda s: (s[0], s[1]))
    fbs = list(sqlite_store.iter_feedback())
    assert [str(fb.kind) for fb in fbs] == kinds
    if kinds == ["preference"]:
        roles = {t["role"]: sqlite_store.get_interaction(t["interaction_id"]).completion for t in fbs[0].targets}
        assert roles["chosen"] == stored[0][1] and roles["rejected"] == stored[1][1]
    if kinds == ["rating"]:
        assert fbs[0].label == ("up" if row["label"] else "down")
    assert report.interactions == len(stored)


@pytest.mark.parametrize(
    "row, message",
    [
        ({"chosen": _msgs("q", "a"), "rejected": _msgs("q")}, "one conversation is the start of the other"),
        ({"prompt": Q, "chosen": _msgs("a", "b"), "rejected": B}, "one assistant message"),
        ({"chosen": "same", "rejected": [*Q, *A]}, "both be text or both be chat messages"),
        ({"prompt": "only a prompt"}, "prompt-only row"),
        ({"prompt": "q", "completion": "a", "label": "yes"}, "field 'label': must be true or false"),
        ({"messages": _msgs("q")}, "ending with the assistant's answer"),
        ({"question": "q"}, "needs the columns of one of"),
    ],
)
def test_rows_refeed_cannot_store_are_refused_with_the_reason(sqlite_store, tmp_path, row, message):
    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps({"prompt": "fine", "completion": "row"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValidationFailed, match=r"rows.jsonl:2: .*" + message):
        import_file(sqlite_store, f, "trl")
    assert sqlite_store.stats()["interactions"] == 0


def test_openai_fine_tuning_chat_and_preference_formats(sqlite_store, tmp_path):
    system = {"role": "system", "content": "Be brief."}
    chat = {"messages": [system, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey", "weight": 0},
                         {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "weight": 1},
                         {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}],
            "tools": [{"type": "function", "function": {"name": "add"}}]}
    pref = {"input": {"messages": [{"role": "user", "content": "2+2?"}]},
            "preferred_output": [{"role": "assistant", "content": "4"}],
            "non_preferred_output": [{"role": "assistant", "content": "5"}]}
    f = tmp_path / "ft.jsonl"
    f.write_text(json.dumps(chat) + "\n" + json.dumps(pref) + "\n")
    report = import_file(sqlite_store, f, "openai-chat")
    assert (report.interactions, report.by_kind) == (4, {"preference": 1})
    turns = {i.completion: i for i in sqlite_store.iter_interactions() if i.metadata["format"] == "openai fine-tuning"}
    assert sorted(turns) == ["4", "6"]  # the weight-0 answer is context only
    four, six = turns["4"], turns["6"]
    assert [m["content"] for m in six.messages] == ["Be brief.", "hi", "hey", "2+2?", "4", "3+3?"]
    assert all("weight" not in m for m in six.messages) and six.metadata["tools"] == chat["tools"]
    assert six.parent_id == four.id and six.thread_id == four.thread_id is not None
    (fb,) = sqlite_store.iter_feedback()
    roles = {t["role"]: sqlite_store.get_interaction(t["interaction_id"]).completion for t in fb.targets}
    assert roles == {"chosen": "4", "rejected": "5"}


@pytest.mark.parametrize(
    "content, given, named",
    [
        ("qa", "trl", "qa-feedback"),
        ('{"prompt": "q", "chosen": "a", "rejected": "b"}\n', "refeed", "trl"),
        ('{"prompt": "q", "chosen": "a", "rejected": "b"}\n', "qa-feedback", "trl"),
        ('{"type": "interaction", "messages": [], "completion": "a"}\n', "trl", "refeed"),
        ('{"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []}\n', "trl", "openai-chat"),
    ],
)
def test_a_wrong_format_names_the_right_one(sqlite_store, tmp_path, qa_raw, content, given, named):
    f = tmp_path / "data.json"
    f.write_text(json.dumps(qa_raw[:2]) if content == "qa" else content)
    with pytest.raises(ValidationFailed, match=f"looks like --format {named}, not {given}"):
        import_file(sqlite_store, f, given)
    assert sqlite_store.stats()["interactions"] == 0


def test_a_json_array_of_trl_rows_imports(sqlite_store, tmp_path):
    f = tmp_path / "rows.json"
    f.write_text(json.dumps([{"prompt": "q", "completion": "a"}, {"prompt": "q", "completion": "b"}]))
    assert import_file(sqlite_store, f, "trl").interactions == 2
