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
from refeed.objectives.flr import flr_score, mine_pairs


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


@torch.no_grad()
def followup_logps(model, tokenizer, prompt: Any, answer: str, followups: Sequence[str]) -> TokenLogps:
    """(F, T-1) log-probs of each follow-up's tokens after (prompt, answer); mask on the follow-up only.

    The chat up to the follow-up is the "prompt" of ``collate``'s layout and the follow-up its answer;
    what the template renders after it cannot change the follow-up's log-probs (causal), so it is left out.
    """
    rows = []
    for f in followups:
        ids, mask = encode_followup(tokenizer, prompt, answer, f)
        start, end = mask.index(1), len(mask) - mask[::-1].index(1)
        rows.append(EncodedRow(ids[:start], [ids[start:end]], {}))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = collate(rows, pad)
    device = next(model.parameters()).device
    return completion_logps(model, *(batch[k].to(device) for k in ("input_ids", "attention_mask", "completion_mask")))


def flr_rewards(model, tokenizer, prompts: Sequence[Any], answers: Sequence[str],
                positive: Sequence[str], negative: Sequence[str]) -> torch.Tensor:
    """(N,) FLR of each (prompt, answer): positive follow-ups' mean token log-prob minus the negatives'."""
    if not positive or not negative:
        raise ValueError("FLR needs at least one positive and one negative follow-up")
    was_training = model.training
    model.eval()
    out = [flr_score(followup_logps(model, tokenizer, p, a, positive), followup_logps(model, tokenizer, p, a, negative))
           for p, a in zip(prompts, answers, strict=True)]
    model.train(was_training)
    return torch.stack(out).float().cpu() if out else torch.zeros(0)


def flr_pairs(model, tokenizer, prompts: Sequence[Any], answers: Sequence[Sequence[str]],
              positive: Sequence[str], negative: Sequence[str], min_gap: float = 0.0) -> list[dict]:
    """DPO rows mined by FLR: per prompt, its highest-FLR sampled answer against its lowest."""
    rows = []
    for prompt, group in zip(prompts, answers, strict=True):
        scores = flr_rewards(model, tokenizer, [prompt] * len(group), list(group), positive, negative).tolist()
        row = mine_pairs(prompt, list(group), scores, min_gap)
        if row is not None:
            rows.append(row)
    return rows
