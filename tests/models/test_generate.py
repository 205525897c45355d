from refeed.models.generate import sample

PROMPTS = [[{"role": "user", "content": "What is 1+2?"}], [{"role": "user", "content": "Reverse the word: abc"}]]


def test_sampling_is_reproducible_by_seed_and_differs_across_seeds(tiny):
    model, tok = tiny
    a = sample(model, tok, PROMPTS, n=3, seed=7, max_new_tokens=12)
    b = sample(model, tok, PROMPTS, n=3, seed=7, max_new_tokens=12)
    c = sample(model, tok, PROMPTS, n=3, seed=8, max_new_tokens=12)
    assert a == b
    assert a != c
    assert [len(x) for x in a] == [3, 3]


def test_greedy_is_deterministic_and_batched_equals_single(tiny):
    model, tok = tiny
    batched = sample(model, tok, PROMPTS, temperature=0, max_new_tokens=10)
    single = [sample(model, tok, [p], temperature=0, max_new_tokens=10)[0] for p in PROMPTS]
    assert batched == single


def test_generation_stops_at_eos(tiny):
    """Make EOS the most likely token everywhere: greedy output must be empty (EOS is not decoded)."""
    import torch

    model, tok = tiny
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied with the embeddings: all logits 0 ...
        model.model.norm.weight.fill_(1.0)
    bias = torch.zeros(len(tok))
    bias[tok.eos_token_id] = 10.0
    model.lm_head.register_forward_hook(lambda m, i, out: out + bias)
    out = sample(model, tok, PROMPTS, temperature=0, max_new_tokens=10)
    assert out == [[""], [""]]
