"""The vLLM backend of ``Generator`` — **untested**: vLLM cannot be installed on any machine of this project
(no GPU here; the GPU machine starts bare and cannot download), so this file is written against vLLM's
documented API (``vllm.LLM``, ``vllm.SamplingParams``, ``vllm.lora.request.LoRARequest``) and has never run.
The test suite only checks that importing refeed does not import vllm and that constructing this
class without vllm fails with a clear message.

    gen = VLLMGenerator("Qwen/Qwen2-0.5B-Instruct", gpu_memory_utilization=0.3)
    rollouts = gen.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=256, seed=0), n=8)
    gen.sync_weights(policy)                         # after each optimizer step: full weights, in place
    gen.sync_adapter(peft_policy, run_dir / "adapters")   # or LoRA: a new adapter under a new name

What it keeps to ``refeed.types.Rollout``'s token rules:
- prompts go in as token ids (``{"prompt_token_ids": ...}``, the chat template applied here as in
  ``TransformersGenerator.encode``), and ``completion_ids`` are vLLM's ``CompletionOutput.token_ids``;
  no text is tokenized again;
- ``SamplingParams(logprobs=k)`` returns the sampled token's log-prob (plus k alternatives), and the
  engine is built with ``logprobs_mode="processed_logprobs"`` so that it is the log-prob under the
  distribution sampled from (after temperature and top-p), as the importance ratios need; vLLM's
  default ("raw_logprobs") is the unscaled model's;
- prompt i is seeded ``seed + i`` (``SamplingParams(seed=...)``), like ``OpenAIGenerator``.

Weights from the trainer: ``sync_weights`` streams ``(name, tensor)`` pairs into the engine's model
(``llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights``, the in-process
path TRL's colocate mode uses: run with ``VLLM_ENABLE_V1_MULTIPROCESSING=0``), then resets the prefix
cache, whose blocks were computed with the old weights. LoRA: every ``sync_adapter`` /
``load_adapter`` is a new ``LoRARequest(f"{name}@v{n}", n, path)`` with a fresh id n, never a reload
in place, so a request in flight keeps the adapter it started with and each rollout's ``version``
names the adapter that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from refeed.types import FinishReason, Message, Rollout, SamplingParams


def _vllm():
    try:
        import vllm
    except ImportError:
        raise ImportError("VLLMGenerator needs vLLM, which is not installed (it needs a CUDA GPU: pip install vllm). "
                          "Without it, generate with refeed.models.hf_generator.TransformersGenerator.") from None
    return vllm


class VLLMGenerator:
    """Samples with a ``vllm.LLM`` (built here from ``model`` and ``llm_kwargs``, or given as ``llm``)."""

    tracks_policy = True  # the online loop syncs it before every generation (``sync``)

    def __init__(self, model: str | None = None, *, llm: Any = None, name: str | None = None, enable_lora: bool = False,
                 max_lora_rank: int = 16, adapter_root: str | Path | None = None, **llm_kwargs: Any):
        vllm = _vllm()
        if llm is None:
            if model is None:
                raise ValueError("VLLMGenerator needs a model (a directory or hub id) or an llm")
            lora = {"enable_lora": True, "max_lora_rank": max_lora_rank} if enable_lora else {}
            llm = vllm.LLM(model=model, logprobs_mode="processed_logprobs", **lora, **llm_kwargs)
        self.llm, self.tok = llm, llm.get_tokenizer()
        self.name = name or model or "vllm"
        self.version = f"{self.name}@step0"
        self.lora = None  # the LoRARequest every generate call uses, once an adapter is loaded
        self._adapters = 0
        self._syncs = 0
        self.adapter_root = Path(adapter_root) if adapter_root is not None else None

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """The chat template's token ids, generation prompt included (as ``TransformersGenerator.encode``)."""
        chat = [{**m, "content": m.get("content") or ""} for m in messages]
        text = self.tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def generate(self, prompts: Sequence[Sequence[Message]], sampling: SamplingParams, n: int = 1) -> list[Rollout]:
        """``len(prompts) * n`` rollouts, prompt-major (``group`` = the prompt's index)."""
        return self.generate_ids([self.encode(p) for p in prompts], prompts, sampling, n)

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], prompts: Sequence[Sequence[Message]],
                     sampling: SamplingParams, n: int = 1) -> list[Rollout]:
        vllm = _vllm()
        params = [vllm.SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                                      max_tokens=sampling.max_new_tokens, stop=list(sampling.stop) or None,
                                      seed=None if sampling.seed is None else sampling.seed + i,
                                      logprobs=sampling.logprobs, logit_bias=dict(sampling.logit_bias) or None)
                  for i in range(len(prompt_ids))]
        outputs = self.llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_ids], sampling_params=params,
                                    lora_request=self.lora, use_tqdm=False)
        rollouts = []
        for i, (out, messages) in enumerate(zip(outputs, prompts, strict=True)):
            for c in sorted(out.outputs, key=lambda c: c.index):
                ids = list(c.token_ids)
                steps = list(c.logprobs or [])
                if len(steps) != len(ids):
                    raise RuntimeError(f"vLLM returned {len(steps)} log-prob steps for {len(ids)} tokens (prompt {i})")
                top = ([{t: lp.logprob for t, lp in step.items() if lp.rank is not None and lp.rank <= sampling.logprobs}
                        for step in steps] if sampling.logprobs else None)
                rollouts.append(Rollout(
                    messages=list(messages), prompt_ids=list(out.prompt_token_ids), completion_ids=ids,
                    logprobs=[float(step[t].logprob) for step, t in zip(steps, ids, strict=True)],
                    completion=c.text, finish_reason=FinishReason.LENGTH if c.finish_reason == "length" else FinishReason.STOP,
                    model=self.name, version=self.version, sampling=sampling, top_logprobs=top, group=i))
        return rollouts

    def sync_weights(self, weights: Any, version: str | None = None) -> str:
        """Load the trainer's weights into the engine: a model (its ``state_dict``) or ``(name, tensor)`` pairs."""
        items: Iterable = weights.state_dict().items() if hasattr(weights, "state_dict") else weights
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        model.load_weights(weights=((k, v.detach()) for k, v in items))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        self._syncs += 1
        self.version = version or f"{self.name}@step{self._syncs}"
        return self.version

    def sync(self, policy: Any, version: str) -> str:
        """What the online loop calls before each new generation: the trainer's LoRA adapter (a peft model,
        saved under ``adapter_root``) or its full weights, under ``version``."""
        if hasattr(policy, "peft_config"):
            if self.adapter_root is None:
                raise ValueError("VLLMGenerator.sync of a LoRA policy needs adapter_root (where adapters are saved)")
            self.sync_adapter(policy, self.adapter_root)
        else:
            self.sync_weights(policy)
        self.version = version
        return version

    def load_adapter(self, path: str | Path) -> str:
        """Use the LoRA adapter saved at ``path`` from now on, as a new adapter ``name@vN`` (never in place)."""
        from vllm.lora.request import LoRARequest

        self._adapters += 1
        n = self._adapters
        self.lora = LoRARequest(f"{self.name}@v{n}", n, str(path))
        self.version = self.lora.lora_name
        return self.version

    def sync_adapter(self, peft_model: Any, root: str | Path) -> str:
        """Save ``peft_model``'s adapter under ``root/v{N+1}`` and load it (``load_adapter``)."""
        path = Path(root) / f"v{self._adapters + 1}"
        peft_model.save_pretrained(path)
        return self.load_adapter(path)
