"""Completion log-probs with each row's prompt and answers packed into ONE sequence: no padding at all.

    lp = packed_prompt_logps(model, prompt_ids, prompt_mask, answer_ids, answer_mask)   # a collate_shared batch

The rows of a micro-batch are laid out one after another in a single sequence of N tokens,
``[prompt_0, answer_0^1, ..., answer_0^K, prompt_1, answer_1^1, ...]``, with positions restarting per row
(prompt 0..P-1, every answer P..P+A-1, as if it followed the prompt alone). Attention runs per row with
the row's tree mask: the prompt and its first answer causally (one square block), each further answer over
the prompt and itself (causal, lower-right aligned), never over another answer or another row. So each
prompt runs once for all its answers (as in ``shared_prompt_logps``) and no position is padding: the
decoder sees sum(P + sum A) tokens, where a padded batch sees K*B*max(P + A) (TRL) and the KV-cache
layout B*max(P) + K*B*max(A).

The per-row attention is a function registered with transformers' ``AttentionInterface`` under
``refeed_tree`` and switched on for the duration of the forward only (``config._attn_implementation``
of the model, restored after); it reads the row layout from a thread-local set for that forward, and
outside one it is plain SDPA. Only the LM head's completion positions are computed, in chunks, as in
``completion_logps``. Values come back (K*B, A) like ``shared_prompt_logps``; ``shared_prompt_logps`` and
``naive_completion_logps`` are the references this is tested against (``tests/batch/test_packed.py``).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from refeed.batch.lean import lean_layers
from refeed.batch.logprobs import SharedPromptLogps
from refeed.objectives.base import TokenLogps

IMPLEMENTATION = "refeed_tree"
# Model types whose decoders take ``position_ids`` for rotary positions and route attention through
# ``ALL_ATTENTION_FUNCTIONS`` (tested in tests/batch/test_packed.py); others use shared_prompt_logps.
PACKED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})

_state = threading.local()


@dataclass
class Layout:
    """Where each row's prompt and answers sit in the packed sequence."""

    rows: list[tuple[int, int, list[tuple[int, int]]]]  # (prompt start, prompt length, [(answer start, length)])
    masks: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)  # (P, A) -> (A, P + A) additive

    @property
    def sizes(self) -> list[int]:
        """Piece lengths along the sequence: per row, prompt + first answer, then each further answer."""
        return [n if j else p + n for _, p, answers in self.rows for j, (_, n) in enumerate(answers)]

    def mask(self, p: int, a: int, like: torch.Tensor) -> torch.Tensor:
        """Answer token i sees the whole prompt and answer tokens 0..i: an additive (A, P + A) mask, made once
        per shape and forward (a boolean mask would be converted on every call)."""
        key = (p, a)
        if key not in self.masks:
            allowed = torch.ones(a, p + a, dtype=torch.bool, device=like.device).tril(p)
            zero = torch.zeros((), dtype=like.dtype, device=like.device)
            self.masks[key] = torch.where(allowed, zero, torch.finfo(like.dtype).min)
        return self.masks[key]


def tree_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The ``refeed_tree`` attention: (1, H, N, D) queries over the packed rows' tree masks, output (1, N, H, D).

    Outside a packed forward (no layout set) it is transformers' SDPA attention."""
    layout: Layout | None = getattr(_state, "layout", None)
    if layout is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = {"enable_gqa": True} if query.shape[1] != key.shape[1] else {}  # no repeated K/V kept for backward
    p_drop = dropout if module.training else 0.0
    # Split once into per-row pieces (split's backward is one cat, where slicing would zero-fill N per use).
    qs, ks, vs = (x.split(layout.sizes, dim=2) for x in (query, key, value))
    outs, i = [], 0
    for _, p, answers in layout.rows:
        # piece i: the prompt and its first answer, contiguous: one causal square block
        outs.append(F.scaled_dot_product_attention(qs[i], ks[i], vs[i], dropout_p=p_drop, is_causal=True,
                                                   scale=scaling, **gqa))
        k_prompt, v_prompt = ks[i][:, :, :p], vs[i][:, :, :p]
        for j, (_, n) in enumerate(answers[1:], start=1):  # piece i + j: answer j over the prompt and itself
            outs.append(F.scaled_dot_product_attention(
                qs[i + j], torch.cat([k_prompt, ks[i + j]], dim=2), torch.cat([v_prompt, vs[i + j]], dim=2),
                dropout_p=p_drop, attn_mask=layout.mask(p, n, query), scale=scaling, **gqa))
        i += len(answers)
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, tree_attention)


@contextlib.contextmanager
def _packed(config, layout: Layout):
    """``config`` routes attention to ``tree_attention`` with ``layout`` for the duration of one forward."""
    _register()
    before = config._attn_implementation_internal
    config._attn_implementation_internal = IMPLEMENTATION
    _state.layout = layout
    try:
        yield
    finally:
        _state.layout = None
        config._attn_implementation_internal = before


def supports_packing(model) -> bool:
    """Whether ``packed_prompt_logps`` runs this model: a Llama-family decoder with a separate LM head,
    SDPA or eager attention, no sliding window (the tree mask is full attention within a row), no
    gradient checkpointing (its recompute in backward would run outside the packed forward)."""
    from refeed.batch.logprobs import _split_lm

    config = getattr(model, "config", None)
    window = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
    return (config is not None and getattr(config, "model_type", None) in PACKED_MODEL_TYPES and not window
            and getattr(config, "_attn_implementation", None) in ("sdpa", "eager")
            and not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
            and _split_lm(model) is not None)


def pack(prompt_ids, prompt_mask, answer_ids, answer_mask):
    """(input_ids (1, N), position_ids (1, N), Layout, the index of the position predicting each answer token
    (sequence-major, token order: the order of ``answer_mask``'s True entries))."""
    b, s = prompt_ids.shape[0], answer_ids.shape[0]
    k = s // b
    p_lens, a_lens = prompt_mask.sum(-1).tolist(), answer_mask.sum(-1).tolist()
    width = prompt_ids.shape[1]
    ids, pos, rows = [], [], []
    starts: list[list[int]] = [[0] * k for _ in range(b)]
    at = 0
    for r in range(b):
        p = p_lens[r]
        ids.append(prompt_ids[r, width - p :])
        pos.append(torch.arange(p))
        answers = []
        for j in range(k):
            n = a_lens[j * b + r]
            ids.append(answer_ids[j * b + r, :n])
            pos.append(torch.arange(p, p + n))
            answers.append((at + p + sum(a for _, a in answers), n))
            starts[r][j] = answers[-1][0]
        rows.append((at, p, answers))
        at += p + sum(n for _, n in answers)
    predict = []
    for j in range(k):  # sequence-major, like answer_mask: answer j of row r is sequence j * B + r
        for r in range(b):
            s0, p, _ = rows[r]
            a, n = rows[r][2][j]
            predict.append(torch.tensor([s0 + p - 1]))  # token 0 is predicted from the prompt's last position
            predict.append(torch.arange(a, a + n - 1))
    device = prompt_ids.device
    return (torch.cat(ids)[None].to(device), torch.cat(pos)[None].to(device), Layout(rows),
            torch.cat(predict).to(device))


def packed_prompt_logps(
    model,
    prompt_ids: torch.Tensor,  # (B, P) left-padded
    prompt_mask: torch.Tensor,  # (B, P)
    answer_ids: torch.Tensor,  # (S, A) right-padded, S = K * B sequence-major: answer j of row r at j * B + r
    answer_mask: torch.Tensor,  # (S, A)
    chunk_size: int = 1024,
    temperature: float = 1.0,
) -> TokenLogps:
    """Per answer token ``log pi(y_t | x, y_<t)``, values (S, A) as ``shared_prompt_logps``; see the module."""
    from refeed.batch.logprobs import _split_lm, picked_logps

    decoder, head = _split_lm(model)
    ids, pos, layout, predict = pack(prompt_ids.cpu(), prompt_mask.cpu(), answer_ids.cpu(), answer_mask.cpu())
    ids, pos, predict = ids.to(prompt_ids.device), pos.to(prompt_ids.device), predict.to(prompt_ids.device)
    with _packed(decoder.config, layout), lean_layers(decoder):  # fewer saved tensors, same values
        hidden = decoder(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state[0]  # (N, H)
    mask = answer_mask.bool()
    return picked_logps(head, hidden[predict], answer_ids[mask], mask, chunk_size, temperature)


class PackedPromptLogps(SharedPromptLogps):
    """``packed_prompt_logps`` as one module for DDP / accelerate; same inputs and outputs as
    ``SharedPromptLogps``, so a ``collate_shared`` batch goes through either."""

    def forward(self, prompt_ids, prompt_mask, answer_ids, answer_mask):
        lp = packed_prompt_logps(self.model, prompt_ids, prompt_mask, answer_ids, answer_mask, self.chunk_size,
                                 self.temperature)
        return lp.values, lp.mask
