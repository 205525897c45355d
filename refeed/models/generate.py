"""Batched sampling from a causal LM as text: a thin wrapper over ``TransformersGenerator``.

    texts = sample(model, tok, [ex.messages for ex in examples], n=4, temperature=1.0, seed=0)
    # texts[i] holds the n completions of prompt i, decoded without special tokens

For callers that only want text (the demo's simulated feedback, greedy evaluation). Anything that
learns from the samples takes the ``Rollout``s of ``refeed.models.hf_generator`` instead: their
token ids and sampling log-probs are what was sampled, never this text tokenized again.
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
    for the same model, prompts and batch size (the RNG is seeded once, then each batch of
    ``batch_size`` prompts draws in turn). ``progress`` is an optional callable
    ``progress(done_prompts)`` for progress bars.
    """
    import torch

    from refeed.models.hf_generator import TransformersGenerator
    from refeed.types import SamplingParams

    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    if temperature == 0 and n > 1:
        raise ValueError("greedy decoding (temperature=0) gives one completion per prompt; use n=1")
    gen = TransformersGenerator(model, tokenizer, version="unversioned", batch_size=batch_size)
    sampling = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    device = next(model.parameters()).device
    out: list[list[str]] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            texts = [r.completion for r in gen.generate(chunk, sampling, n)]
            out.extend(texts[i * n : (i + 1) * n] for i in range(len(chunk)))
            if progress:
                progress(len(chunk))
    return out
