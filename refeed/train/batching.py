"""Rows (TRL column conventions) -> token ids -> padded tensors for one forward pass.

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
              per-sentence segments by ``refeed.train.segments`` with the objective's ``categories``
plus every numeric column in the objective's ``extra_columns`` (and ``stage`` for staged objectives).
Every answer gets the tokenizer's EOS appended, so the model learns to stop.
With ``kl_completions`` each unpaired row also carries the previous row's completion (dataset order,
cyclic) as a second sequence under its own prompt: KTO's mismatched pair for the KL reference point.
A row yields one or more *sequences* (prompt + answer); all sequences of a batch go through the
model in ONE forward (chosen and rejected together), laid out sequence-major:
``[row0.chosen, row1.chosen, ..., row0.rejected, row1.rejected, ...]``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch

from refeed.config import ConfigError
from refeed.objectives.base import (
    BatchKind,
    GroupLogps,
    PairLogps,
    PairScores,
    TokenLogps,
    TokenScores,
    UnpairedLogps,
    capability,
    principle_prompt,
)
from refeed.train.segments import segments_from_spans, token_index_of_chars

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
    need = {"prompt", *ANSWER_COLUMNS[kind], *capability(objective, "extra_columns")}
    if kind in LABELLED:
        need.add("label")
    if capability(objective, "staged"):
        need.add("stage")
    if capability(objective, "principle_conditioned"):
        need.add("principle")
    return need


def check_columns(objective, columns: list[str] | set[str]) -> None:
    """Refuse, naming the fix, a dataset whose columns don't fit ``objective``."""
    kind, name = objective.batch_kind, objective.name
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


def _text(answer: Any) -> str:
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
    return tokenizer(_text(answer), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


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
                       kl_completions=bool(capability(objective, "kl_completions")),
                       principle=bool(capability(objective, "principle_conditioned")),
                       categories=tuple(getattr(getattr(objective, "cfg", None), "categories", ()) or ()))


def _number(row: dict, key: str, n: int) -> float:
    """``row[key]`` as a float; bools count (thumbs), numpy scalars too; missing or NaN is refused."""
    value = row.get(key)
    if not isinstance(value, numbers.Real) or math.isnan(value):
        raise ConfigError(f"row {n}: column '{key}' must be a number, got {value!r}")
    return float(value)


def _segments(tokenizer, row: dict, n: int, categories: tuple[str, ...], answer_len: int) -> list[tuple[int, int, float]]:
    """(token index in the answer, head, label) for each labelled segment end that survived truncation."""
    text = _text(row["completion"])
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


def collate(rows: list[EncodedRow], pad_id: int, num_heads: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` / ``completion_mask`` for all sequences, sequence-major.

    Spans rows also get ``segment_labels`` / ``segment_mask`` (B, T, num_heads) at the absolute
    position of each segment's last token, aligned with ``input_ids``.
    """
    seqs = [(r.prompt, r.answers[j]) for j in range(len(rows[0].answers)) for r in rows]
    width = max(len(p) + len(a) for p, a in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    comp = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, a) in enumerate(seqs):
        ids[i, : len(p) + len(a)] = torch.tensor(p + a)
        attn[i, : len(p) + len(a)] = 1
        comp[i, len(p) : len(p) + len(a)] = 1
    batch = {"input_ids": ids, "attention_mask": attn, "completion_mask": comp, **_row_tensors(rows)}
    if rows[0].segments is not None:
        labels = torch.zeros((len(rows), width, num_heads), dtype=torch.float32)
        mask = torch.zeros((len(rows), width, num_heads), dtype=torch.bool)
        for i, r in enumerate(rows):
            for idx, head, label in r.segments:
                if head >= num_heads:
                    raise ConfigError(f"a segment names head {head}, but the objective has {num_heads} heads")
                labels[i, len(r.prompt) + idx, head] = label
                mask[i, len(r.prompt) + idx, head] = True
        batch["segment_labels"], batch["segment_mask"] = labels, mask
    return batch


def collate_shared(rows: list[EncodedRow], pad_id: int) -> dict[str, torch.Tensor]:
    """Each row's prompt once, LEFT-padded (``prompt_ids`` / ``prompt_mask`` (B, P)), and its answers
    right-padded (``answer_ids`` / ``answer_mask`` (K*B, A), sequence-major as in ``collate``), for
    ``refeed.train.logprobs.shared_prompt_logps``; the extras as in ``collate``."""
    width = max(len(r.prompt) for r in rows)
    prompt_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r.prompt:
            prompt_ids[i, width - len(r.prompt) :] = torch.tensor(r.prompt)
            prompt_mask[i, width - len(r.prompt) :] = 1
    if not prompt_mask[:, -1].all():
        raise ConfigError("every row needs a non-empty prompt to share it across its answers; set train.share_prompt=false")
    answers = [r.answers[j] for j in range(len(rows[0].answers)) for r in rows]
    a_width = max(len(a) for a in answers)
    answer_ids = torch.full((len(answers), a_width), pad_id, dtype=torch.long)
    answer_mask = torch.zeros((len(answers), a_width), dtype=torch.long)
    for i, a in enumerate(answers):
        answer_ids[i, : len(a)] = torch.tensor(a)
        answer_mask[i, : len(a)] = 1
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "answer_ids": answer_ids, "answer_mask": answer_mask,
            **_row_tensors(rows)}


def _row_tensors(rows: list[EncodedRow]) -> dict[str, torch.Tensor]:
    """The rows' numeric columns as (B,) float tensors, and ``group_valid`` (B, K) for group rows."""
    out = {key: torch.tensor([r.extras[key] for r in rows], dtype=torch.float32) for key in rows[0].extras}
    if rows[0].valid is not None:
        out["group_valid"] = torch.tensor([r.valid for r in rows], dtype=torch.bool)
    return out


def shape_for_objective(kind: BatchKind, logps, n_rows: int, batch: dict | None = None) -> Any:
    """Cut the sequence-major outputs of one forward (TokenLogps or TokenScores) into what ``loss`` takes.

    Unpaired rows with two sequences each are KTO's (completion, mismatched KL completion).
    """
    cls = type(logps)
    if kind is BatchKind.GROUP:  # (K*B, T) sequence-major -> (B, K, T)
        k = logps.values.shape[0] // n_rows
        values = logps.values.view(k, n_rows, -1).transpose(0, 1)
        mask = logps.mask.view(k, n_rows, -1).transpose(0, 1)
        return GroupLogps(values=values, mask=mask, valid=batch["group_valid"].to(values.device))
    if logps.values.shape[0] == n_rows:
        return logps
    first = cls(logps.values[:n_rows], logps.mask[:n_rows])
    second = cls(logps.values[n_rows:], logps.mask[n_rows:])
    if kind is BatchKind.PAIR:
        return PairScores(first, second) if cls is TokenScores else PairLogps(chosen=first, rejected=second)
    if kind is BatchKind.UNPAIRED and cls is TokenLogps:
        return UnpairedLogps(completion=first, kl=second)
    raise ValueError(f"{logps.values.shape[0]} sequences for {n_rows} {kind.value} rows")


def scatter_cached(cached: list[torch.Tensor], mask: torch.Tensor) -> TokenLogps:
    """Rebuild (S, T-1) log-probs from per-sequence 1-D caches (completion tokens only) and the batch mask."""
    values = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    values = values.masked_scatter(mask, torch.cat(cached).to(mask.device))
    return TokenLogps(values=values, mask=mask)
