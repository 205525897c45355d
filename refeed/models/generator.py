"""The one way refeed generates: ``Generator.generate(prompts, sampling, n) -> list[Rollout]``.

Token ids and sampling log-probs come out; text is only decoded for display and is never tokenized
again (``refeed.types.Rollout`` has the token rules). The offline demo's sampling, the online loop,
multi-turn environments and the server all go through a ``Generator``:

- the transformers backend (KV cache, batching), which the server uses too:
  ``refeed.models.hf_generator.TransformersGenerator`` (it also streams steps and can be aborted);
- vLLM when installed on a GPU (untested here: vLLM cannot be installed on these machines);
- any OpenAI-compatible endpoint, for judges and proxies (rows flagged ``token_ids_exact=False``
  where the upstream returns no token ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from refeed.types import Message, Rollout, SamplingParams


@runtime_checkable
class Generator(Protocol):
    """Samples ``n`` completions for each chat prompt.

    Returns ``len(prompts) * n`` rollouts, prompt-major: rollout ``i * n + j`` is the j-th sample of
    prompt ``i`` and has ``group == i``.

    Two optional attributes the online loop reads: ``tracks_policy`` (True when the generator samples the
    policy being trained, so that ``version`` follows the steps: ``name@stepN``) and ``sync(policy, version)``
    (called before every generation after the first, for a generator that holds its own copy of the weights,
    as vLLM does).
    """

    def generate(self, prompts: Sequence[Sequence[Message]], sampling: SamplingParams, n: int = 1) -> list[Rollout]: ...
