import pytest
import torch

from refeed.batch.logprobs import completion_logps, naive_completion_logps


def _random_batch(vocab: int, seed: int):
    """Rows of different lengths, right-padded, prompts of different lengths (the completion starts
    at a different position in each row)."""
    g = torch.Generator().manual_seed(seed)
    lengths, prompt_lens = [12, 7, 19, 3], [5, 2, 11, 1]
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    attn = torch.zeros_like(ids)
    comp = torch.zeros_like(ids)
    for i, (n, p) in enumerate(zip(lengths, prompt_lens, strict=True)):
        ids[i, :n] = torch.randint(4, vocab, (n,), generator=g)
        attn[i, :n] = 1
        comp[i, p:n] = 1
    return ids, attn, comp


@pytest.mark.parametrize("chunk", [1, 3, 1024])
@pytest.mark.parametrize("seed", [0, 1])
def test_chunked_equals_naive_with_padding(tiny, chunk, seed):
    model, tok = tiny
    torch.manual_seed(seed)
    with torch.no_grad():  # random weights of a larger scale, so log-probs are far from uniform
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    ids, attn, comp = _random_batch(len(tok), seed)
    with torch.no_grad():
        fast = completion_logps(model, ids, attn, comp, chunk_size=chunk)
        slow = naive_completion_logps(model, ids, attn, comp)
    assert torch.equal(fast.mask, slow.mask)
    assert fast.mask.sum() == (comp[:, 1:] == 1).sum()
    torch.testing.assert_close(fast.values, slow.values, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.sum(), slow.sum(), rtol=1e-5, atol=1e-6)
    assert (fast.values[~fast.mask] == 0).all()  # prompt and padding positions contribute nothing


def test_prompt_logits_do_not_change_completion_logps(tiny):
    """Masking: changing a prompt token's *target* log-prob is invisible; only completion tokens count."""
    model, tok = tiny
    ids, attn, comp = _random_batch(len(tok), 3)
    with torch.no_grad():
        a = completion_logps(model, ids, attn, comp)
    ids2 = ids.clone()
    ids2[:, 0] = (ids2[:, 0] + 1) % len(tok)  # change the first prompt token of every row
    ids2[:, 0] = ids2[:, 0].clamp(min=4)
    with torch.no_grad():
        b = completion_logps(model, ids2, attn, comp)
    # Different context changes the completion log-probs (causal attention sees it) ...
    assert not torch.allclose(a.values, b.values)
    # ... but the masks, and hence which tokens count, stay the same.
    assert torch.equal(a.mask, b.mask)


def test_gradients_match_the_naive_computation(tiny):
    model, tok = tiny
    ids, attn, comp = _random_batch(len(tok), 5)
    completion_logps(model, ids, attn, comp, chunk_size=2).sum().sum().backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    naive_completion_logps(model, ids, attn, comp).sum().sum().backward()
    for g_fast, p in zip(fast, model.parameters(), strict=True):
        torch.testing.assert_close(g_fast, p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_shared_prompt_equals_separate_forwards_with_their_gradients(tiny, seed):
    """Rows of 3 answers each, prompts of different lengths (left-padded once) and answers of different
    lengths (right-padded): the per-token log-probs and every parameter's gradient equal those of
    K separate prompt + answer forwards through the naive computation (1e-5)."""
    from refeed.batch.collate import collate, collate_shared
    from refeed.batch.encode import EncodedRow
    from refeed.batch.logprobs import shared_prompt_logps

    model, _ = tiny
    g = torch.Generator().manual_seed(seed)
    rows = [EncodedRow(torch.randint(4, 60, (p,), generator=g).tolist(),
                       [torch.randint(4, 60, (a,), generator=g).tolist() for a in lens], {})
            for p, lens in ((5, (3, 1, 4)), (9, (2, 6, 1)), (1, (4, 4, 2)))]
    sb = collate_shared(rows, 0)
    shared = shared_prompt_logps(model, sb["prompt_ids"], sb["prompt_mask"], sb["answer_ids"], sb["answer_mask"], 2)
    (shared.values * torch.linspace(0.5, 2, shared.values.shape[1])).sum().backward()  # weight tokens unevenly
    g_shared = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    b = collate(rows, 0)
    naive = naive_completion_logps(model, b["input_ids"], b["attention_mask"], b["completion_mask"])
    per_token = [naive.values[i][naive.mask[i]] for i in range(naive.values.shape[0])]
    weights = torch.linspace(0.5, 2, shared.values.shape[1])
    sum(((t * weights[: len(t)]).sum() for t in per_token), torch.zeros(())).backward()
    for i, t in enumerate(per_token):
        assert torch.allclose(shared.values[i][shared.mask[i]], t, rtol=1e-5, atol=1e-5)
    for a, c in zip(g_shared, (p.grad for p in model.parameters()), strict=True):
        assert torch.allclose(a, c, rtol=1e-4, atol=1e-6)
