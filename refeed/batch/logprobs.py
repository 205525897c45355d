"""Log-probs of completion tokens, computed without full-vocabulary float32 logits for the batch.

The naive way, ``model(ids).logits.float().log_softmax(-1)``, holds a (B, T, V) float32 tensor:
for a 150k vocabulary, batch 8 and 2k tokens that is ~10 GB. Here the decoder runs once, then
only the hidden states of completion positions go through the LM head, ``chunk_size`` rows at a
time, so the peak is (chunk_size, V). Prompt and padding positions never reach the LM head.
"""

from __future__ import annotations

import functools
import inspect

import torch

from refeed.objectives.base import TokenLogps, TokenScores


def _split_lm(model):
    """(decoder, lm_head) of a causal LM, or None when the model does not expose them."""
    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None or getattr(model.config, "final_logit_softcapping", None):
        return None  # softcapped heads (Gemma 2) need the model's own forward
    return decoder, head


def completion_logps(
    model,
    input_ids: torch.Tensor,  # (B, T)
    attention_mask: torch.Tensor,  # (B, T)
    completion_mask: torch.Tensor,  # (B, T) 1 on completion tokens
    chunk_size: int = 1024,
    temperature: float = 1.0,
) -> TokenLogps:
    """``log pi(y_t | x, y_<t)`` for every completion token; values (B, T-1) aligned with ``input_ids[:, 1:]``.

    ``temperature`` divides the logits first, so the log-probs are those of the distribution a
    generator sampled from at that temperature (importance ratios against sampling log-probs)."""
    targets = input_ids[:, 1:]  # (B, T-1): position t predicts token t+1
    mask = completion_mask[:, 1:].bool()  # (B, T-1)
    parts = _split_lm(model)
    if parts is None:
        return naive_completion_logps(model, input_ids, attention_mask, completion_mask, temperature)
    decoder, head = parts
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
    # only the positions that predict a completion token reach the head
    return picked_logps(head, hidden[:, :-1][mask], targets[mask], mask, chunk_size, temperature)


def picked_logps(head, picked: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, chunk_size: int,
                 temperature: float) -> TokenLogps:
    """The head on the hidden states ``picked`` (N, H) that predict ``targets`` (N,), ``chunk_size`` rows
    at a time, scattered back to ``mask``'s (B, T) True positions (row-major, as boolean selection takes them).

    log_softmax(x)[y] = x[y] - logsumexp(x): no (n, V) log-prob tensor is made beyond the chunk's logits."""
    out = []
    for start in range(0, picked.shape[0], chunk_size):
        logits = head(picked[start : start + chunk_size]).float() / temperature  # (n, V)
        tgt = targets[start : start + chunk_size]
        out.append(logits.gather(-1, tgt[:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1))
    values = torch.zeros(mask.shape, dtype=torch.float32, device=targets.device)
    values = values.masked_scatter(mask, torch.cat(out) if out else values.new_zeros(0))
    return TokenLogps(values=values, mask=mask)


def naive_completion_logps(model, input_ids, attention_mask, completion_mask, temperature: float = 1.0) -> TokenLogps:
    """The textbook computation, kept as the reference the chunked version is tested against."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float() / temperature  # (B, T, V)
    logp = logits[:, :-1].log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    mask = completion_mask[:, 1:].bool()
    return TokenLogps(values=logp * mask, mask=mask)


class CompletionLogps(torch.nn.Module):
    """``completion_logps`` as a module, so a DDP / accelerate wrapper sees one forward that uses
    every parameter (calling the decoder and head of a wrapped model directly would bypass DDP's
    gradient synchronisation). Returns plain tensors ``(values, mask)`` for the wrapper to trace."""

    def __init__(self, model, chunk_size: int = 1024, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size
        self.temperature = temperature

    def forward(self, input_ids, attention_mask, completion_mask):
        lp = completion_logps(self.model, input_ids, attention_mask, completion_mask, self.chunk_size, self.temperature)
        return lp.values, lp.mask


def shared_prompt_logps(
    model,
    prompt_ids: torch.Tensor,  # (B, P) left-padded
    prompt_mask: torch.Tensor,  # (B, P)
    answer_ids: torch.Tensor,  # (S, A) right-padded, S = K * B sequence-major: answer j of row r at j * B + r
    answer_mask: torch.Tensor,  # (S, A)
    chunk_size: int = 1024,
    temperature: float = 1.0,
) -> TokenLogps | None:
    """Completion log-probs with each prompt run ONCE for all its K answers (chosen and rejected).

    The decoder reads the B prompts with a KV cache, the cache is tiled to the S answers, and the
    answers run on top of it: P + K*A positions per row instead of K*(P + A). Gradients flow into the
    prompt's positions from every answer, exactly as in K separate forwards. Values are (S, A), one
    column per answer token (not aligned with a prompt + answer layout); None when the model has no
    separate decoder and LM head (the caller then uses ``completion_logps``).
    """
    parts = _split_lm(model)
    if parts is None:
        return None
    decoder, head = parts
    b, s = prompt_ids.shape[0], answer_ids.shape[0]
    positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P): left padding starts at 0
    out = decoder(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True)
    tile = torch.arange(b, device=prompt_ids.device).repeat(s // b)  # (S,): the row of each answer
    cache = getattr(out, "cache", None) or out.past_key_values
    cache.reorder_cache(tile)  # (B, ...) -> (S, ...) along the batch, keeping the autograd graph
    lengths = prompt_mask.long().sum(-1)[tile]  # (S,)
    answer_pos = lengths[:, None] + torch.arange(answer_ids.shape[1], device=answer_ids.device)  # (S, A)
    hidden = decoder(input_ids=answer_ids, attention_mask=torch.cat([prompt_mask[tile], answer_mask], dim=1),
                     position_ids=answer_pos, use_cache=True, **_cache_kwarg(decoder, cache)).last_hidden_state  # (S, A, H)
    # Answer token j is predicted from the position before it: the prompt's last one for j = 0.
    before = torch.cat([out.last_hidden_state[:, -1][tile][:, None], hidden[:, :-1]], dim=1)  # (S, A, H)
    mask = answer_mask.bool()
    return picked_logps(head, before[mask], answer_ids[mask], mask, chunk_size, temperature)


def _cache_kwarg(decoder, cache) -> dict:
    """transformers >= 5.2x names the KV-cache argument ``cache``; earlier releases ``past_key_values``."""
    return {_cache_name(type(decoder)): cache}


@functools.cache
def _cache_name(cls) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


class SharedPromptLogps(torch.nn.Module):
    """``shared_prompt_logps`` as one module for DDP / accelerate (see ``CompletionLogps``)."""

    def __init__(self, model, chunk_size: int = 1024, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size
        self.temperature = temperature

    def forward(self, prompt_ids, prompt_mask, answer_ids, answer_mask):
        lp = shared_prompt_logps(self.model, prompt_ids, prompt_mask, answer_ids, answer_mask, self.chunk_size,
                                 self.temperature)
        return lp.values, lp.mask


def supports_shared_prompt(model) -> bool:
    return _split_lm(model) is not None


def forward_logps(module, batch: dict[str, torch.Tensor], device: torch.device, scores: bool = False):
    """One forward of all the batch's sequences through ``module``: TokenLogps (LM head) or TokenScores (score head).

    A ``collate_shared`` batch (prompt once, answers apart) goes through a ``SharedPromptLogps`` or
    ``refeed.batch.packed.PackedPromptLogps`` module; a ``collate`` batch through ``CompletionLogps`` or a
    score model.
    """
    if "prompt_ids" in batch:
        keys = ("prompt_ids", "prompt_mask", "answer_ids", "answer_mask")
    else:
        keys = ("input_ids", "attention_mask", "completion_mask")
    values, mask = module(*(batch[k].to(device) for k in keys))
    return TokenScores(values=values, mask=mask) if scores else TokenLogps(values=values, mask=mask)
