"""Import and export: refeed JSONL (lossless), TRL JSONL / Parquet, OpenAI chat logs, qa-feedback.

Every import runs in one transaction: a file with a bad line is refused with its line number and
writes nothing. Records get deterministic idempotency keys derived from the file's content, so
importing the same file twice adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from refeed.store.errors import ValidationFailed
from refeed.store.records import canonical_hash, check_messages
from refeed.store.sdk import Store
from refeed.types import Feedback, FeedbackKind, Interaction, Source

FORMATS = ("refeed", "trl", "openai-chat", "qa-feedback")


@dataclass
class ImportReport:
    path: str
    format: str
    interactions: int = 0
    feedback: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    already_present: int = 0  # records whose idempotency key was there before (re-imports)


def import_file(
    store: Store, path: str | Path, format: str = "refeed", project: str | None = None
) -> ImportReport:
    """Import ``path`` in ``format`` into ``store`` in one transaction."""
    if format not in FORMATS:
        raise ValidationFailed(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    reader = {
        "refeed": _refeed_records,
        "trl": _trl_records,
        "openai-chat": _openai_records,
        "qa-feedback": _qa_records,
    }[format]
    recs = list(reader(path))
    report = ImportReport(str(path), format)
    before = store.stats(project)
    store.write_batch(recs, project)
    after = store.stats(project)
    added = after["interactions"] + after["feedback"] - before["interactions"] - before["feedback"]
    report.already_present = len(recs) - added
    for rec in recs:
        if isinstance(rec, Interaction):
            report.interactions += 1
        else:
            report.feedback += 1
            report.by_kind[str(rec.kind)] = report.by_kind.get(str(rec.kind), 0) + 1
    return report


def export_jsonl(store: Store, path: str | Path, project: str | None = None) -> int:
    """Every interaction, then every feedback (superseded and retracted too), one JSON object a line."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for line in export_lines(store, project):
            f.write(line)
            n += 1
    return n


def export_lines(store: Store, project: str | None = None) -> Iterator[str]:
    """The lines of ``export_jsonl``, one at a time (page by page from the store): what the HTTP
    export streams, with no file in between."""
    for rec in store.iter_interactions(project=project):
        yield json.dumps({"type": "interaction", **_plain(rec)}, ensure_ascii=False) + "\n"
    for rec in store.iter_feedback(include_inactive=True, project=project):
        yield json.dumps({"type": "feedback", **_plain(rec)}, ensure_ascii=False) + "\n"


def _plain(rec) -> dict:
    d = asdict(rec)
    d["created_at"] = rec.created_at.isoformat() if rec.created_at else None
    return {k: (str(v) if isinstance(v, FeedbackKind | Source) else v) for k, v in d.items()}


def _lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-empty line; a line that is not a JSON object is refused."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for n, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield n, row
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValidationFailed(
                    f"{path}:{n}: not valid JSON ({e.msg}); nothing was imported"
                ) from None
            if not isinstance(obj, dict):
                raise ValidationFailed(f"{path}:{n}: expected a JSON object; nothing was imported")
            yield n, obj


def _at(path: Path, n: int, fn, *args):
    try:
        return fn(*args)
    except (ValidationFailed, KeyError, TypeError, ValueError) as e:
        what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise ValidationFailed(f"{path}:{n}: {what}; nothing was imported") from None


def _refeed_records(path: Path):
    for n, obj in _lines(path):
        yield _at(path, n, _refeed_record, obj)


def _refeed_record(obj: dict) -> Interaction | Feedback:
    obj = dict(obj)
    kind = obj.pop("type", None)
    if obj.get("created_at"):
        obj["created_at"] = datetime.fromisoformat(obj["created_at"])
    if kind == "interaction":
        check_messages(obj.get("messages"))
        return Interaction(**obj)
    if kind == "feedback":
        obj["kind"], obj["source"] = FeedbackKind(obj["kind"]), Source(obj.get("source", "human"))
        return Feedback(**obj)
    raise ValueError("field 'type' must be 'interaction' or 'feedback'")


def _I(**kw) -> Interaction:
    """An imported interaction whose id follows from its idempotency key: a re-import names the same ids."""
    return Interaction(id=canonical_hash(kw["idempotency_key"])[:32], **kw)


def _F(**kw) -> Feedback:
    return Feedback(id=canonical_hash(kw["idempotency_key"])[:32], **kw)


def _key(*parts: Any) -> str:
    return "import:" + canonical_hash(parts)[:40]


def _chat(prompt) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else check_messages(list(prompt))


def _answer(x) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict) and isinstance(x[-1].get("content"), str):
        return x[-1]["content"]
    raise ValueError("an answer must be text or a list of chat messages ending with the assistant's")


def _trl_records(path: Path):
    for n, row in _lines(path):
        yield from _at(path, n, _trl_row, row)


def _trl_row(row: dict) -> list:
    """TRL's standard or conversational rows: preference, unpaired preference, prompt-completion, language modeling."""
    if "messages" in row and "prompt" not in row:
        msgs = check_messages(list(row["messages"]))
        if not msgs or msgs[-1]["role"] != "assistant":
            raise ValueError("field 'messages': the last message must be the assistant's answer")
        return [
            _I(
                messages=msgs[:-1],
                completion=msgs[-1]["content"],
                idempotency_key=_key("trl", row),
                metadata={"origin": "imported"},
            )
        ]
    prompt = _chat(row["prompt"])
    if "chosen" in row:
        a = _I(messages=prompt, completion=_answer(row["chosen"]), idempotency_key=_key("trl", row, "c"))
        b = _I(messages=prompt, completion=_answer(row["rejected"]), idempotency_key=_key("trl", row, "r"))
        fb = _F(
            kind=FeedbackKind.PREFERENCE,
            interaction_id=a.id,
            idempotency_key=_key("trl", row, "p"),
            targets=[
                {"interaction_id": a.id, "role": "chosen", "position": 0},
                {"interaction_id": b.id, "role": "rejected", "position": 1},
            ],
            payload={"strength": None, "aspect": None},
            source=Source.HUMAN,
        )
        return [a, b, fb]
    i = _I(messages=prompt, completion=_answer(row["completion"]), idempotency_key=_key("trl", row, "i"))
    if "label" not in row:
        return [i]
    up = bool(row["label"])
    return [
        i,
        _F(
            kind=FeedbackKind.RATING,
            interaction_id=i.id,
            score=float(up),
            label="up" if up else "down",
            payload={"scale": [0.0, 1.0], "reason_tags": []},
            idempotency_key=_key("trl", row, "f"),
        ),
    ]


def _openai_records(path: Path):
    for n, row in _lines(path):
        yield from _at(path, n, _openai_row, row)


def _openai_row(row: dict) -> list:
    """One chat log: ``{"messages": [..., assistant]}``, or ``{"request": {...}, "response": {...}}``."""
    if "request" in row:
        msgs = check_messages(list(row["request"]["messages"]))
        choice = row["response"]["choices"][0]["message"]
        model = row["response"].get("model") or row["request"].get("model")
        params = {
            k: row["request"][k]
            for k in ("temperature", "top_p", "max_tokens", "seed")
            if k in row["request"]
        }
        return [
            _I(
                messages=msgs,
                completion=choice.get("content") or "",
                model=model,
                params=params,
                idempotency_key=_key("openai", row),
                metadata={"origin": "imported"},
            )
        ]
    return _trl_row({"messages": row["messages"]})


def _qa_records(path: Path):
    """qa-feedback (Fine-Grained RLHF): per question, 4 answers; spans, missing info and an edit on
    answer 1; 6 pairwise judgements (1v2, 1v3, 1v4, 2v3, 2v4, 3v4: 1 = first better, 2 = second, 0 = tie)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValidationFailed(f"{path}:{e.lineno}: not valid JSON ({e.msg}); nothing was imported") from None
    for n, q in enumerate(data):
        yield from _at(path, n, _qa_question, q)


PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def _qa_question(q: dict) -> list:
    prompt = [{"role": "user", "content": q["question"]}]
    key = canonical_hash([q["question"], q["prediction 1"]])[:24]
    meta = {"origin": "imported", "dataset": "qa-feedback", "passages": q["passages"], "gold": q["gold"]}
    answers = [
        _I(
            messages=prompt,
            completion=q[f"prediction {k}"],
            metadata={**meta, "prediction": k},
            idempotency_key=f"qa:{key}:{k}",
        )
        for k in range(1, 5)
    ]
    out: list = list(answers)
    fb = q["feedback"]
    spans = [
        {
            "start": e["start"],
            "end": e["end"],
            "category": e["error type"],
            "severity": None,
            "comment": e.get("explanation") or None,
        }
        for e in fb["errors"]
    ]
    if spans or fb["missing-info"]:
        out.append(
            _F(
                kind=FeedbackKind.SPAN,
                interaction_id=answers[0].id,
                idempotency_key=f"qa:{key}:spans",
                label=spans[0]["category"] if spans else None,
                payload={"spans": spans, "missing_info": fb["missing-info"]},
            )
        )
    if fb.get("corrected-prediction"):
        edited = _I(
            messages=prompt,
            completion=fb["corrected-prediction"],
            derived_from_id=answers[0].id,
            metadata={"origin": "human_edit"},
            idempotency_key=f"qa:{key}:edited",
        )
        out += [
            edited,
            _F(
                kind=FeedbackKind.EDIT,
                interaction_id=answers[0].id,
                text=edited.completion,
                payload={"edited_interaction_id": edited.id},
                idempotency_key=f"qa:{key}:edit",
                targets=[{"interaction_id": edited.id, "role": "result", "position": 0}],
            ),
        ]
    if len(q["preference"]) != len(PAIRS):
        raise ValueError(f"field 'preference': expected 6 judgements, got {len(q['preference'])}")
    for (a, b), verdict in zip(PAIRS, q["preference"], strict=True):
        if verdict not in (0, 1, 2):
            raise ValueError(f"field 'preference': judgements are 0, 1 or 2, got {verdict!r}")
        first, second = answers[a].id, answers[b].id
        if verdict == 0:
            roles = {first: "candidate", second: "candidate"}
        else:
            roles = (
                {first: "chosen", second: "rejected"}
                if verdict == 1
                else {first: "rejected", second: "chosen"}
            )
        out.append(
            _F(
                kind=FeedbackKind.PREFERENCE,
                interaction_id=first if verdict != 2 else second,
                label="tie" if verdict == 0 else None,
                payload={"strength": None, "aspect": None, "pair": [a + 1, b + 1]},
                targets=[
                    {"interaction_id": first, "role": roles[first], "position": 0},
                    {"interaction_id": second, "role": roles[second], "position": 1},
                ],
                idempotency_key=f"qa:{key}:pref:{a + 1}v{b + 1}",
            )
        )
    return out
