"""Import and export: refeed JSONL (lossless), TRL JSONL / JSON / Parquet (every TRL type, standard or
conversational, explicit or implicit prompt: ``refeed.store.trl``), OpenAI chat logs and fine-tuning files
(chat and preference), qa-feedback.

Every import runs in one transaction: a file with a bad line is refused with its line number and
writes nothing. Records get deterministic idempotency keys derived from the file's content, so
importing the same file twice adds nothing. A file that fails in the given format but looks like
another is refused with the format it looks like (``sniff``).
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
from refeed.store.trl import answer_text, explicit, trl_type
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
    try:
        recs = list(reader(path))
    except ValidationFailed as e:
        guess = sniff(path)
        if guess not in (None, format):
            raise ValidationFailed(f"{path} looks like --format {guess}, not {format}: {e}") from None
        raise
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


def sniff(path: str | Path) -> str | None:
    """The format the file's first record looks like (None: none of ``FORMATS``), to name the right
    ``--format`` when the given one fails."""
    try:
        first = next((obj for _, obj in _lines(Path(path))), None)
    except (ValidationFailed, OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(first, dict):
        return None
    if first.get("type") in ("interaction", "feedback"):
        return "refeed"
    if {"question", "prediction 1", "feedback"} <= set(first):
        return "qa-feedback"
    if "request" in first and "response" in first or "preferred_output" in first:
        return "openai-chat"
    if trl_type(first) is not None:
        return "trl"
    return None


def _lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-empty line of JSONL, or (position, object) for a JSON array
    file or Parquet; anything that is not a JSON object is refused."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for n, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield n, row
        return
    with open(path, encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        yield from _array(path)
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


def _array(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValidationFailed(f"{path}:{e.lineno}: not valid JSON ({e.msg}); nothing was imported") from None
    if not isinstance(data, list):
        raise ValidationFailed(f"{path}: expected a JSON array of objects; nothing was imported")
    for n, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            raise ValidationFailed(f"{path}: item {n} of the JSON array is not an object; nothing was imported")
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
    """A TRL prompt as the store's chat: text is the user's turn (an empty text, as a language-modelling
    row has, is no turn at all); messages are checked as they are."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}] if prompt else []
    return check_messages(list(prompt))


def _trl_records(path: Path):
    for n, row in _lines(path):
        yield from _at(path, n, _trl_row, row)


def _trl_row(row: dict) -> list:
    """Every TRL type (``refeed.store.trl``), standard or conversational, explicit or implicit prompt:
    preference -> two answers and a preference; unpaired preference -> an answer and a thumbs; prompt-completion
    and language modelling -> an answer marked ``metadata.demonstration`` (an answer to imitate, which
    ``refeed build sft`` takes), as are OpenAI fine-tuning turns."""
    if trl_type(row) is None and "prompt" in row:
        raise ValueError("a prompt-only row (no completion) has no answer to store; refeed imports "
                         "preference, unpaired preference, prompt-completion and language-modelling rows")
    r = explicit(row)
    prompt, meta = _chat(r["prompt"]), {"origin": "imported", "format": f"trl {trl_type(row)}"}
    if "chosen" in r:
        a = _I(messages=prompt, completion=answer_text(r["chosen"], "chosen"), metadata=meta,
               idempotency_key=_key("trl", row, "c"))
        b = _I(messages=prompt, completion=answer_text(r["rejected"], "rejected"), metadata=meta,
               idempotency_key=_key("trl", row, "r"))
        return [a, b, _preference(a, b, _key("trl", row, "p"))]
    if "label" not in r:  # prompt-completion and language modelling: an answer to learn from
        meta = {**meta, "demonstration": True}
    i = _I(messages=prompt, completion=answer_text(r["completion"], "completion"), metadata=meta,
           idempotency_key=_key("trl", row, "i"))
    if "label" not in r:
        return [i]
    if not isinstance(r["label"], bool | int) or r["label"] not in (0, 1):
        raise ValueError(f"field 'label': must be true or false, got {r['label']!r}")
    up = bool(r["label"])
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


def _preference(a: Interaction, b: Interaction, key: str) -> Feedback:
    """``a`` preferred to ``b``, as a human judgement."""
    return _F(
        kind=FeedbackKind.PREFERENCE,
        interaction_id=a.id,
        idempotency_key=key,
        targets=[
            {"interaction_id": a.id, "role": "chosen", "position": 0},
            {"interaction_id": b.id, "role": "rejected", "position": 1},
        ],
        payload={"strength": None, "aspect": None},
        source=Source.HUMAN,
    )


def _openai_records(path: Path):
    for n, row in _lines(path):
        yield from _at(path, n, _openai_row, row)


def _openai_row(row: dict) -> list:
    """OpenAI's formats: a chat log ``{"request", "response"}``; fine-tuning ``{"messages", "tools"?}`` (every
    assistant turn with ``weight`` 1, the default, is an answer in the context before it); preference
    fine-tuning ``{"input": {"messages"}, "preferred_output", "non_preferred_output"}``."""
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
    if "preferred_output" in row:
        prompt = _plain_messages(row["input"]["messages"])
        meta = {"origin": "imported", "format": "openai preference", **_tools(row["input"])}
        a, b = (
            _I(messages=prompt, completion=answer_text(row[k], k), metadata=meta, idempotency_key=_key("openai", row, k))
            for k in ("preferred_output", "non_preferred_output")
        )
        return [a, b, _preference(a, b, _key("openai", row, "p"))]
    return _fine_tuning_turns(row)


def _plain_messages(messages) -> list[dict]:
    """Chat messages without OpenAI's training ``weight`` (it says what to learn, not what was said)."""
    return check_messages([{k: v for k, v in m.items() if k != "weight"} for m in check_messages(list(messages))])


def _tools(row: dict) -> dict:
    return {k: row[k] for k in ("tools", "functions", "parallel_tool_calls") if k in row}


def _fine_tuning_turns(row: dict) -> list:
    """One answer per assistant text turn that OpenAI would train on (``weight`` not 0), each in the context
    before it and linked to the previous one (``parent_id``, one ``thread_id`` per conversation)."""
    msgs = check_messages(list(row["messages"]))
    plain = _plain_messages(msgs)
    meta = {"origin": "imported", "format": "openai fine-tuning", "demonstration": True, **_tools(row)}
    out, thread, parent = [], "import:" + canonical_hash(["openai", row])[:24], None
    for n, m in enumerate(msgs):
        if m["role"] != "assistant" or m.get("weight", 1) == 0 or not isinstance(m.get("content"), str):
            continue
        if m.get("weight", 1) != 1:
            raise ValueError(f"field 'messages.{n}.weight': must be 0 or 1, got {m['weight']!r}")
        i = _I(messages=plain[:n], completion=m["content"], metadata=meta, thread_id=thread, parent_id=parent,
               idempotency_key=_key("openai", row, n))
        out.append(i)
        parent = i.id
    if not out:
        raise ValueError("field 'messages': no assistant message with text and weight 1 to learn from")
    return out


def _qa_records(path: Path):
    """qa-feedback (Fine-Grained RLHF): per question, 4 answers; spans, missing info and an edit on
    answer 1; 6 pairwise judgements (1v2, 1v3, 1v4, 2v3, 2v4, 3v4: 1 = first better, 2 = second, 0 = tie)."""
    for n, q in _array(path):
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
