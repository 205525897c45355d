"""Batched sampling from a causal LM: KV cache, temperature / top-p, stop at EOS, reproducible by seed.

    texts = sample(model, tok, [ex.messages for ex in examples], n=4, temperature=1.0, seed=0)
    # texts[i] holds the n completions of prompt i, decoded without special tokens

This wraps ``transformers``' ``generate`` (which keeps a KV cache and stops rows at EOS); the
vLLM backend of later issues plugs in behind the same signature.
"""

from __future__ import annotations

from collections.abc import Sequence

from refeed.types import Message


def sample(
    model,
    tokenizer,
    prompts: Sequence[Sequence[Message]],
    n: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 32,
    seed: int = 0,
    batch_size: int = 64,
    progress=None,
) -> list[list[str]]:
    """Sample ``n`` completions for each chat prompt; ``temperature=0`` decodes greedily.

    Returns a list (one entry per prompt) of ``n`` strings. The same ``seed`` gives the same texts
    for the same model, prompts and batch size. ``progress`` is an optional callable
    ``progress(done_prompts)`` for progress bars.
    """
    import torch

    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    greedy = temperature == 0
    if greedy and n > 1:
        raise ValueError("greedy decoding (temperature=0) gives one completion per prompt; use n=1")
    texts = [tokenizer.apply_chat_template(list(p), tokenize=False, add_generation_prompt=True) for p in prompts]
    out: list[list[str]] = []
    was_training = model.training
    model.eval()
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # so every row's last prompt token sits at the same position
    device = next(model.parameters()).device
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
            torch.manual_seed(seed)
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=n,
                    eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id,
                    use_cache=True,
                    **kwargs,
                )
                new = gen[:, enc["input_ids"].shape[1] :]
                decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
                out.extend(decoded[i * n : (i + 1) * n] for i in range(len(chunk)))
                if progress:
                    progress(len(chunk))
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    return out
