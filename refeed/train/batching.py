"""Rows (TRL column conventions) -> token ids -> padded tensors for one forward pass.

Row shapes by ``BatchKind`` (``prompt`` is a list of chat messages, or plain text; answers are text
or a one-message assistant list, as in TRL's conversational format):
    sft       {"prompt", "completion"}
    pair      {"prompt", "chosen", "rejected"}
    unpaired  {"prompt", "completion", "label"}
    group     {"prompt", "completions"}   k answers, best first (``refeed build groups``); groups shorter
              than the dataset's largest are padded with invalid answers (``group_valid`` marks them)
Every answer gets the tokenizer's EOS appended, so the model learns to stop.
A row yields one or more *sequences* (prompt + answer); all sequences of a batch go through the
model in ONE forward (chosen and rejected together), laid out sequence-major:
``[row0.chosen, row1.chosen, ..., row0.rejected, row1.rejected, ...]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from refeed.config import ConfigError
from refeed.objectives.base import BatchKind, GroupLogps, PairLogps, TokenLogps

# Which answer columns make a row's sequences, per batch kind, in order.
ANSWER_COLUMNS: dict[BatchKind, tuple[str, ...]] = {
    BatchKind.SFT: ("completion",),
    BatchKind.UNPAIRED: ("completion",),
    BatchKind.PAIR: ("chosen", "rejected"),
    BatchKind.GROUP: ("completions",),  # one list column
}
# Numeric columns passed to the objective as tensors in ``batch`` when present.
EXTRA_COLUMNS = ("label", "weight", "margin", "in_scope")


@dataclass
class EncodedRow:
    prompt: list[int]
    answers: list[list[int]]  # one per ANSWER_COLUMNS entry (group: one per completion, padded)
    extras: dict[str, float]
    valid: list[bool] | None = None  # group rows: False on padding answers


def check_columns(kind: BatchKind, columns: list[str] | set[str], objective: str) -> None:
    if kind not in ANSWER_COLUMNS:
        raise ConfigError(f"objective '{objective}' trains on {kind.value} rows, which the offline loop does not "
                          f"run yet; it runs {', '.join(k.value for k in ANSWER_COLUMNS)} rows")
    need = {"prompt", *ANSWER_COLUMNS[kind]}
    missing = need - set(columns)
    if missing:
        raise ConfigError(
            f"objective '{objective}' trains on {kind.value} rows with columns {sorted(need)}; "
            f"the dataset lacks {sorted(missing)} (it has {sorted(columns)}). Build the right kind "
            f"of dataset (e.g. `refeed build pairs` for pair objectives) or pick a matching objective."
        )


def _text(answer: Any) -> str:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, list) and answer and isinstance(answer[-1], dict):
        return answer[-1]["content"]  # conversational: [{"role": "assistant", "content": ...}]
    raise ConfigError(f"an answer must be text or a list of chat messages, got {type(answer).__name__}")


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


def encode_rows(tokenizer, rows, kind: BatchKind, max_length: int) -> list[EncodedRow]:
    """Tokenize every row; a sequence longer than ``max_length`` loses prompt tokens from the left."""
    out = []
    for row in rows:
        prompt = encode_prompt(tokenizer, row["prompt"])
        answers = [encode_answer(tokenizer, a)[:max_length] for a in _answers(row, kind)]
        keep = max_length - max(len(a) for a in answers)
        prompt = prompt[-keep:] if keep > 0 else []
        extras = {k: float(row[k]) for k in EXTRA_COLUMNS if k in row and row[k] is not None}
        out.append(EncodedRow(prompt, answers, extras))
    if kind is BatchKind.GROUP:  # every row gets the same k, so batches and cached references line up
        k = max(len(r.answers) for r in out)
        for r in out:
            r.valid = [True] * len(r.answers) + [False] * (k - len(r.answers))
            r.answers += [[tokenizer.eos_token_id]] * (k - len(r.answers))
    return out


def collate(rows: list[EncodedRow], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` / ``completion_mask`` for all sequences, sequence-major."""
    seqs = [(r.prompt, r.answers[j]) for j in range(len(rows[0].answers)) for r in rows]
    width = max(len(p) + len(a) for p, a in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    comp = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, a) in enumerate(seqs):
        ids[i, : len(p) + len(a)] = torch.tensor(p + a)
        attn[i, : len(p) + len(a)] = 1
        comp[i, len(p) : len(p) + len(a)] = 1
    batch = {"input_ids": ids, "attention_mask": attn, "completion_mask": comp}
    for key in rows[0].extras:
        batch[key] = torch.tensor([r.extras[key] for r in rows], dtype=torch.float32)
    if rows[0].valid is not None:
        batch["group_valid"] = torch.tensor([r.valid for r in rows], dtype=torch.bool)
    return batch


def shape_for_objective(kind: BatchKind, logps: TokenLogps, n_rows: int, batch: dict | None = None) -> Any:
    """Cut the sequence-major log-probs of one forward into what the objective's ``loss`` takes."""
    if kind is BatchKind.GROUP:  # (K*B, T) sequence-major -> (B, K, T)
        k = logps.values.shape[0] // n_rows
        values = logps.values.view(k, n_rows, -1).transpose(0, 1)
        mask = logps.mask.view(k, n_rows, -1).transpose(0, 1)
        return GroupLogps(values=values, mask=mask, valid=batch["group_valid"].to(values.device))
    if kind is BatchKind.PAIR:
        first = TokenLogps(logps.values[:n_rows], logps.mask[:n_rows])
        second = TokenLogps(logps.values[n_rows:], logps.mask[n_rows:])
        return PairLogps(chosen=first, rejected=second)
    return logps


def scatter_cached(cached: list[torch.Tensor], mask: torch.Tensor) -> TokenLogps:
    """Rebuild (S, T-1) log-probs from per-sequence 1-D caches (completion tokens only) and the batch mask."""
    values = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    values = values.masked_scatter(mask, torch.cat(cached).to(mask.device))
    return TokenLogps(values=values, mask=mask)
