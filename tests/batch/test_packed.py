"""The packed forward (refeed.batch.packed) against the naive reference: separate padded prompt + answer
forwards through ``model(...).logits.log_softmax``. Budget: ~4 s."""

import pytest
import torch

from refeed.batch.collate import collate, collate_shared
from refeed.batch.encode import EncodedRow
from refeed.batch.logprobs import naive_completion_logps, shared_prompt_logps
from refeed.batch.packed import IMPLEMENTATION, pack, packed_prompt_logps, supports_packing, tree_attention

ROWS = ((5, (3, 1, 4)), (9, (2, 6, 1)), (1, (4, 4, 2)), (7, (1, 1, 9)))  # (prompt length, answer lengths)


def _rows(seed: int, vocab: int = 60, k: int = 3) -> list[EncodedRow]:
    g = torch.Generator().manual_seed(seed)
    return [EncodedRow(torch.randint(4, vocab, (p,), generator=g).tolist(),
                       [torch.randint(4, vocab, (a,), generator=g).tolist() for a in lens[:k]], {})
            for p, lens in ROWS]


def _small(arch: str):
    import transformers as tf

    shape = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=64, max_position_embeddings=64)
    cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config, "mistral": tf.MistralConfig}[arch]
    extra = {"mistral": {"sliding_window": None}}.get(arch, {})
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(cls(**shape, **extra), attn_implementation="sdpa")
    with torch.no_grad():  # weights of a larger scale, so log-probs are far from uniform
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def _weights(width: int) -> torch.Tensor:
    return torch.linspace(0.5, 2, width)  # weight tokens unevenly, so every position's gradient counts


@pytest.mark.parametrize(("arch", "k"), [("llama", 2), ("llama", 3), ("qwen2", 3), ("mistral", 2)])
def test_packed_equals_separate_naive_forwards_with_their_gradients(arch, k):
    """Rows with prompts and answers of different lengths: each answer token's log-prob and every
    parameter's gradient equal those of K*B separate prompt + answer forwards (naive log_softmax)."""
    model = _small(arch)
    assert supports_packing(model)
    rows = _rows(k, k=k)
    sb = collate_shared(rows, 0)
    packed = packed_prompt_logps(model, sb["prompt_ids"], sb["prompt_mask"], sb["answer_ids"], sb["answer_mask"], 3)
    (packed.values * _weights(packed.values.shape[1])).sum().backward()
    g_packed = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    b = collate(rows, 0)
    naive = naive_completion_logps(model, b["input_ids"], b["attention_mask"], b["completion_mask"])
    per_token = [naive.values[i][naive.mask[i]] for i in range(naive.values.shape[0])]
    w = _weights(packed.values.shape[1])
    sum(((t * w[: len(t)]).sum() for t in per_token), torch.zeros(())).backward()
    assert packed.mask.sum() == sum(len(t) for t in per_token)
    for i, t in enumerate(per_token):
        torch.testing.assert_close(packed.values[i][packed.mask[i]], t, rtol=1e-5, atol=1e-5)
    assert (packed.values[~packed.mask] == 0).all()
    for a, c in zip(g_packed, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5 * (1 + c.abs().max().item()))  # float32 sum order
    assert model.config._attn_implementation == "sdpa"  # switched for the forward only


def test_packed_equals_the_kv_cache_layout_on_the_built_in_model(tiny):
    model, tok = tiny
    rows = _rows(5, vocab=len(tok), k=2)
    sb = collate_shared(rows, tok.pad_token_id)
    args = (sb["prompt_ids"], sb["prompt_mask"], sb["answer_ids"], sb["answer_mask"])
    with torch.no_grad():
        a, c = shared_prompt_logps(model, *args), packed_prompt_logps(model, *args)
    assert torch.equal(a.mask, c.mask)
    torch.testing.assert_close(a.values, c.values, rtol=1e-5, atol=1e-5)


def test_the_layout_has_no_padding_and_restarts_positions():
    rows = _rows(0, k=2)
    sb = collate_shared(rows, 0)
    ids, pos, layout, predict = pack(sb["prompt_ids"], sb["prompt_mask"], sb["answer_ids"], sb["answer_mask"])
    assert ids.shape[1] == sum(len(r.prompt) + sum(map(len, r.answers)) for r in rows)  # no padding position
    first = rows[0]
    p, a0, a1 = len(first.prompt), len(first.answers[0]), len(first.answers[1])
    assert ids[0, : p + a0 + a1].tolist() == first.prompt + first.answers[0] + first.answers[1]
    assert pos[0, : p + a0 + a1].tolist() == [*range(p + a0), *range(p, p + a1)]  # answer 2 restarts after the prompt
    assert layout.sizes[:2] == [p + a0, a1]
    assert predict.shape[0] == int(sb["answer_mask"].sum())
    assert predict[0] == p - 1  # the first answer token is predicted from the prompt's last position


def test_packing_is_refused_where_its_attention_would_differ():
    model = _small("llama")
    model.gradient_checkpointing_enable()  # the recompute in backward would run outside the packed forward
    assert not supports_packing(model)
    import transformers as tf

    windowed = tf.AutoModelForCausalLM.from_config(tf.MistralConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=64, sliding_window=8))
    assert not supports_packing(windowed)  # a sliding window is not the tree mask


def test_outside_a_packed_forward_the_attention_is_sdpa():
    model = _small("llama")
    attn = model.model.layers[0].self_attn
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    out, _ = tree_attention(attn, q, k, v, None, scaling=8 ** -0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                                           is_causal=True, scale=8 ** -0.5)
    torch.testing.assert_close(out, ref.transpose(1, 2))
    assert IMPLEMENTATION != model.config._attn_implementation
