"""Encoded rows -> padded tensors for ONE forward, and the forward's output -> what ``loss`` takes.

All sequences of a batch go through the model together (chosen and rejected in one forward), laid
out sequence-major: ``[row0.chosen, row1.chosen, ..., row0.rejected, row1.rejected, ...]``.
``collate`` right-pads prompt + answer; ``collate_shared`` keeps each prompt once (left-padded) and
its answers apart, for ``refeed.batch.logprobs.shared_prompt_logps``.
"""

from __future__ import annotations

from typing import Any

import torch

from refeed.batch.encode import EncodedRow
from refeed.config import ConfigError
from refeed.objectives.base import (
    BatchKind,
    GroupLogps,
    PairLogps,
    PairScores,
    TokenLogps,
    TokenScores,
    UnpairedLogps,
)


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
    ``refeed.batch.logprobs.shared_prompt_logps``; the extras as in ``collate``."""
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
