"""Rows (TRL column conventions) -> token ids: the first step of every loop, scorer and eval.

Row shapes by ``BatchKind`` (``prompt`` is a list of chat messages, or plain text; answers are text
or a one-message assistant list, as in TRL's conversational format):
    sft       {"prompt", "completion"}
    pair      {"prompt", "chosen", "rejected"}
    unpaired  {"prompt", "completion", "label"}
    group     {"prompt", "completions"}   k answers, best first (``refeed build groups``); groups shorter
              than the dataset's largest are padded with invalid answers (``group_valid`` marks them)
    graded    {"prompt", "completion", "label"}   label = the level reached, 0..K
    spans     {"prompt", "completion", "segments"}   segments = [{"end", "head", "label"}] (char offsets), or
              {"prompt", "completion", "spans"} as ``refeed build spans`` writes them, turned into
              per-sentence segments by ``refeed.batch.segments`` with the objective's ``categories``
plus every numeric column in the objective's ``extra_columns`` (and ``stage`` for staged objectives).
Every answer gets the tokenizer's EOS appended, so the model learns to stop.
With ``kl_completions`` each unpaired row also carries the previous row's completion (dataset order,
cyclic) as a second sequence under its own prompt: KTO's mismatched pair for the KL reference point.
A row yields one or more *sequences* (prompt + answer), an ``EncodedRow``; ``refeed.batch.collate``
pads them for one forward.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from refeed.batch.segments import segments_from_spans, token_index_of_chars
from refeed.config import ConfigError
from refeed.objectives.base import BatchKind, principle_prompt

# Which answer columns make a row's sequences, per batch kind, in order.
ANSWER_COLUMNS: dict[BatchKind, tuple[str, ...]] = {
    BatchKind.SFT: ("completion",),
    BatchKind.UNPAIRED: ("completion",),
    BatchKind.PAIR: ("chosen", "rejected"),
    BatchKind.GROUP: ("completions",),  # one list column
    BatchKind.GRADED: ("completion",),
    BatchKind.SPANS: ("completion",),
}
LABELLED = (BatchKind.UNPAIRED, BatchKind.GRADED)  # kinds whose rows need a ``label`` column
# Numeric columns passed to the objective as tensors in ``batch`` when present.
EXTRA_COLUMNS = ("label", "weight", "margin")


@dataclass
class EncodedRow:
    prompt: list[int]
    answers: list[list[int]]  # one per ANSWER_COLUMNS entry (group: one per completion, padded)
    extras: dict[str, float]
    valid: list[bool] | None = None  # group rows: False on padding answers
    segments: list[tuple[int, int, float]] | None = None  # spans rows: (token index in answer 0, head, label)


def required_columns(objective) -> set[str]:
    """The columns a dataset needs for ``objective``: prompt, its answer columns, labels, extras."""
    kind = objective.batch_kind
    need = {"prompt", *ANSWER_COLUMNS[kind], *objective.needs.extra_columns}
    if kind in LABELLED:
        need.add("label")
    if objective.needs.staged:
        need.add("stage")
    if objective.needs.principle_conditioned:
        need.add("principle")
    return need


def check_columns(objective, columns: list[str] | set[str]) -> None:
    """Refuse, naming the fix, a dataset whose columns don't fit ``objective``."""
    kind, name = objective.batch_kind, objective.name
    if objective.needs.old_logps or objective.needs.rewards:
        raise ConfigError(f"objective '{name}' learns from answers sampled from the current policy and their rewards; "
                          f"train it with the online loop (refeed.train.online.train_online), not on a fixed dataset")
    if kind not in ANSWER_COLUMNS:
        raise ConfigError(f"objective '{name}' trains on {kind.value} rows, which the offline loop does not run")
    need = required_columns(objective)
    missing = need - set(columns)
    if kind is BatchKind.SPANS and "segments" not in columns:
        if "spans" not in columns:
            missing.add("segments (or spans)")
        elif not getattr(objective.cfg, "categories", ()):
            raise ConfigError(f"objective '{name}' got span annotations without segments; set objective.categories "
                              f"(one category list per head, e.g. [irrelevant|redundant, unverifiable]) to turn them into segments")
    if missing:
        hint = {BatchKind.PAIR: "refeed build pairs", BatchKind.UNPAIRED: "refeed build unpaired",
                BatchKind.SFT: "refeed build sft", BatchKind.GROUP: "refeed build groups",
                BatchKind.SPANS: "refeed build spans"}.get(kind, "a dataset with those columns")
        raise ConfigError(
            f"objective '{name}' trains on {kind.value} rows with columns {sorted(need | ({'segments'} if kind is BatchKind.SPANS else set()))}; "
            f"the dataset lacks {sorted(missing)} (it has {sorted(columns)}). Build the right kind "
            f"of dataset (e.g. `{hint}`) or pick a matching objective."
        )


def answer_text(answer: Any) -> str:
    """The text of an answer column, plain or conversational (an assistant message list)."""
    if isinstance(answer, str):
        return answer
    if isinstance(answer, list) and answer and isinstance(answer[-1], dict):
        return answer[-1]["content"]  # conversational: [{"role": "assistant", "content": ...}]
    raise ConfigError(f"an answer must be text or a list of chat messages, got {type(answer).__name__}")


def with_principle(prompt: Any, principle: str) -> Any:
    """``prompt`` (text or chat) with ``principle`` appended to its last user turn (RLBFF)."""
    if not isinstance(principle, str) or not principle.strip():
        raise ConfigError(f"a principle must be non-empty text, got {principle!r}")
    if isinstance(prompt, str):
        return principle_prompt(prompt, principle)
    messages = [dict(m) for m in prompt]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        raise ConfigError("a principle-conditioned prompt needs a user turn to append the principle to")
    messages[last]["content"] = principle_prompt(messages[last]["content"], principle)
    return messages


def encode_prompt(tokenizer, prompt: Any) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def encode_answer(tokenizer, answer: Any) -> list[int]:
    return tokenizer(answer_text(answer), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def _answers(row, kind: BatchKind) -> list:
    if kind is BatchKind.GROUP:
        answers = list(row["completions"])
        if len(answers) < 2:
            raise ConfigError(f"a group row needs at least 2 completions, got {len(answers)}")
        return answers
    return [row[c] for c in ANSWER_COLUMNS[kind]]


def encode_rows(
    tokenizer,
    rows,
    kind: BatchKind,
    max_length: int,
    *,
    required: tuple[str, ...] = (),
    kl_completions: bool = False,
    categories: tuple[str, ...] = (),
    principle: bool = False,
) -> list[EncodedRow]:
    """Tokenize every row; a sequence longer than ``max_length`` loses prompt tokens from the left.

    Args:
        required: numeric columns every row must carry (the objective's extras, ``label``, ``stage``).
        kl_completions: add the previous row's completion as a second answer (KTO's KL sequence).
        categories: per head, the span categories that make a segment wrong (spans rows without ``segments``).
        principle: append each row's ``principle`` to its prompt (``with_principle``).
    """
    rows = list(rows)
    optional = [k for k in EXTRA_COLUMNS if k not in required and rows and all(r.get(k) is not None for r in rows)]
    out = []
    for n, row in enumerate(rows):
        prompt = encode_prompt(tokenizer, with_principle(row["prompt"], row.get("principle")) if principle else row["prompt"])
        answers = [encode_answer(tokenizer, a)[:max_length] for a in _answers(row, kind)]
        if kl_completions:
            answers.append(encode_answer(tokenizer, rows[n - 1]["completion"])[:max_length])
        keep = max_length - max(len(a) for a in answers)
        prompt = prompt[-keep:] if keep > 0 else []
        extras = {k: _number(row, k, n) for k in (*required, *optional)}
        segments = _segments(tokenizer, row, n, categories, len(answers[0])) if kind is BatchKind.SPANS else None
        out.append(EncodedRow(prompt, answers, extras, segments=segments))
    if kind is BatchKind.GROUP:  # every row gets the same k, so batches and cached references line up
        k = max(len(r.answers) for r in out)
        for r in out:
            r.valid = [True] * len(r.answers) + [False] * (k - len(r.answers))
            r.answers += [[tokenizer.eos_token_id]] * (k - len(r.answers))
    return out


def encode_for(tokenizer, rows, objective, max_length: int) -> list[EncodedRow]:
    """``encode_rows`` with everything the objective's capabilities ask for."""
    text_columns = {"prompt", "principle", *ANSWER_COLUMNS[objective.batch_kind]}
    required = tuple(sorted(required_columns(objective) - text_columns))
    return encode_rows(tokenizer, rows, objective.batch_kind, max_length, required=required,
                       kl_completions=objective.needs.kl_completions,
                       principle=objective.needs.principle_conditioned,
                       categories=tuple(getattr(getattr(objective, "cfg", None), "categories", ()) or ()))


def _number(row: dict, key: str, n: int) -> float:
    """``row[key]`` as a float; bools count (thumbs), numpy scalars too; missing or NaN is refused."""
    value = row.get(key)
    if not isinstance(value, numbers.Real) or math.isnan(value):
        raise ConfigError(f"row {n}: column '{key}' must be a number, got {value!r}")
    return float(value)


def _segments(tokenizer, row: dict, n: int, categories: tuple[str, ...], answer_len: int) -> list[tuple[int, int, float]]:
    """(token index in the answer, head, label) for each labelled segment end that survived truncation."""
    text = answer_text(row["completion"])
    segs = row.get("segments")
    if segs is None:
        segs = segments_from_spans(text, row.get("spans") or [], categories)
    try:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except NotImplementedError:  # slow tokenizers have no offsets
        raise ConfigError("span rows need a fast tokenizer (character offsets per token)") from None
    out = []
    for seg in segs:
        end, head, label = int(seg["end"]), int(seg["head"]), float(seg["label"])
        if not 0 < end <= len(text):
            raise ConfigError(f"row {n}: segment end {end} is outside the completion (length {len(text)})")
        (idx,) = token_index_of_chars(offsets, [end])
        if idx is not None and idx < answer_len:
            out.append((idx, head, label))
    return out
