"""Follow-up likelihood as reward (FLR, Zhang et al. 2024, https://arxiv.org/abs/2409.13948): the
forward pass that ``refeed.objectives.flr`` leaves to the reward layer.

    scores = flr_rewards(model, tok, prompts, answers, positive=["Thanks, that helps!"], negative=["That's wrong."])
    rows = flr_pairs(model, tok, prompts, answers_per_prompt, positive, negative)   # DPO rows for objective "flr"

Each follow-up f is appended as the user's next turn after (x, y) and rendered with the tokenizer's
chat template; s(f) is the mean log-prob of f's own tokens (the characters of f in the rendered
chat, through the tokenizer's offsets), and FLR(x, y) = mean_{F+} s(f) - mean_{F-} s(f)
(``refeed.objectives.flr.flr_score``). Any causal LM can be the scorer; FLR's point is that the
policy itself, or its base, already knows how users react.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from refeed.batch.collate import collate
from refeed.batch.encode import EncodedRow
from refeed.batch.logprobs import completion_logps
from refeed.objectives.base import TokenLogps
from refeed.objectives.flr import mine_pairs


def _messages(prompt: Any) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def encode_followup(tokenizer, prompt: Any, answer: str, followup: str) -> tuple[list[int], list[int]]:
    """Token ids of the chat (prompt, answer, follow-up as the next user turn) and a 0/1 mask on the
    follow-up's tokens."""
    if not followup:
        raise ValueError("a follow-up must be non-empty text")
    chat = [*_messages(prompt), {"role": "assistant", "content": answer}, {"role": "user", "content": followup}]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    start = text.rfind(followup)
    if start < 0:
        raise ValueError("the chat template does not render the follow-up verbatim; FLR needs its characters")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    end = start + len(followup)
    mask = [int(a >= start and b <= end and b > a) for a, b in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def _followup_row(tokenizer, prompt: Any, answer: str, followup: str) -> EncodedRow:
    """The chat up to the follow-up as ``collate``'s prompt and the follow-up as its answer; what the template
    renders after it cannot change the follow-up's log-probs (causal), so it is left out."""
    ids, mask = encode_followup(tokenizer, prompt, answer, followup)
    start, end = mask.index(1), len(mask) - mask[::-1].index(1)
    return EncodedRow(ids[:start], [ids[start:end]], {})


def _logps(model, tokenizer, rows: list[EncodedRow]) -> TokenLogps:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = collate(rows, pad)
    device = next(model.parameters()).device
    return completion_logps(model, *(batch[k].to(device) for k in ("input_ids", "attention_mask", "completion_mask")))


@torch.no_grad()
def flr_rewards(model, tokenizer, prompts: Sequence[Any], answers: Sequence[str],
                positive: Sequence[str], negative: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """(N,) FLR of each (prompt, answer): positive follow-ups' mean token log-prob minus the negatives'.

    Every (answer, follow-up) chat is one sequence; they go through the model ``batch_size`` at a time, sorted
    by length so that a batch pads little (one forward per answer was the slow part of mining a store's
    follow-ups). Each sequence's token-mean log-prob is then averaged per answer, as ``flr_score`` does.
    """
    if not positive or not negative:
        raise ValueError("FLR needs at least one positive and one negative follow-up")
    followups = [*positive, *negative]
    rows = [_followup_row(tokenizer, p, a, f) for p, a in zip(prompts, answers, strict=True) for f in followups]
    means = torch.zeros(len(rows), dtype=torch.float64)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].prompt) + len(rows[i].answers[0]))
    was_training = model.training
    model.eval()
    for at in range(0, len(order), batch_size):
        chunk = order[at:at + batch_size]
        means[chunk] = _logps(model, tokenizer, [rows[i] for i in chunk]).mean().double().cpu()
    model.train(was_training)
    per = means.view(len(prompts), len(followups))
    return (per[:, :len(positive)].mean(-1) - per[:, len(positive):].mean(-1)).float()


def flr_pairs(model, tokenizer, prompts: Sequence[Any], answers: Sequence[Sequence[str]],
              positive: Sequence[str], negative: Sequence[str], min_gap: float = 0.0) -> list[dict]:
    """DPO rows mined by FLR: per prompt, its highest-FLR sampled answer against its lowest."""
    flat = [(p, a) for p, group in zip(prompts, answers, strict=True) for a in group]
    scores = flr_rewards(model, tokenizer, [p for p, _ in flat], [a for _, a in flat], positive, negative).tolist()
    rows, at = [], 0
    for prompt, group in zip(prompts, answers, strict=True):
        row = mine_pairs(prompt, list(group), scores[at:at + len(group)], min_gap)
        at += len(group)
        if row is not None:
            rows.append(row)
    return rows
