"""The transformers backend of ``Generator``: a KV-cache sampling loop that keeps what was sampled.

    gen = TransformersGenerator(model, tok, name="tiny")
    rollouts = gen.generate(prompts, SamplingParams(temperature=0.7, max_new_tokens=32, seed=0), n=4)
    rollouts[0].completion_ids, rollouts[0].logprobs      # the sampled ids and their sampling log-probs

Why a loop of our own instead of ``model.generate``: every sampled token's log-prob under the
distribution it was drawn from (after logit bias, temperature and top-p) comes out of the same
tensor the token was drawn from, so importance ratios against it are exact; stop strings end a row
with the stop tokens kept in ``completion_ids`` and dropped from the text; a row cut at
``max_new_tokens`` ends ``length`` with no EOS appended; a streaming caller gets each step as it
happens (``on_step``) and can stop the run (``abort``), and a stopped run still returns what it
sampled (``aborted``).

The draws follow ``model.generate``'s: prompts are repeated ``n`` times in a row (prompt-major),
padded on the left, and each step makes one ``torch.multinomial`` call over the whole batch's
``softmax(logits / T)``, so the same seed gives the same samples as ``generate`` did before this
loop replaced it (``refeed.models.generate.sample`` is a wrapper over this class).

Greedy rows (``temperature=0``) record the model's own log-probs (``log_softmax(logits)``, T = 1):
the argmax has no sampling distribution of its own, and these are what a trainer recomputes.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from refeed.types import FinishReason, Message, Rollout, SamplingParams


@dataclass(frozen=True, slots=True)
class Delta:
    """One sampled token of one row, handed to ``on_step`` as it happens (for streaming)."""

    index: int  # the row: rollout ``index`` of the call (prompt-major, ``i * n + j``)
    token_id: int
    logprob: float
    top: dict[int, float] | None  # the ``sampling.logprobs`` most likely ids and their log-probs
    text: str  # text newly safe to show: a piece that may start a stop string is held back
    finish: FinishReason | None  # set on the row's last token


@dataclass
class _Row:
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top: list[dict[int, float]] = field(default_factory=list)
    text: str = ""  # the decoded completion so far (stop string cut off once found)
    shown: int = 0  # characters of ``text`` already handed out
    finish: FinishReason | None = None


class TransformersGenerator:
    """Samples from a ``transformers`` causal LM: batched, KV cache, token ids and log-probs out.

    ``name`` is the served model name; ``version`` the weights / adapter version recorded on each
    rollout (default: ``name@`` a digest of the weights, computed once; an online loop that
    updates the weights sets ``gen.version`` after each update, e.g. ``policy@step12``).
    ``batch_size`` is the number of prompts per forward batch (each repeated ``n`` times).
    """

    tracks_policy = True  # it samples the very module the online loop trains

    def __init__(self, model, tokenizer, name: str | None = None, version: str | None = None, batch_size: int = 64):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.name = name or getattr(model.config, "name_or_path", None) or "model"
        self._version = version
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        self.eos = {tokenizer.eos_token_id, *eos} - {None}
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos, default=0)
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        # transformers 5.x names the KV cache argument ``cache``; older models ``past_key_values``
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    @property
    def version(self) -> str:
        if self._version is None:
            adapter = getattr(self.model, "active_adapter", None)  # a peft model: its adapter's name too
            adapter = f":{adapter}" if isinstance(adapter, str) else ""
            self._version = f"{self.name}{adapter}@{weights_digest(self.model)}"
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        self._version = value

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """The chat template's token ids, generation prompt included (a message without content as "")."""
        chat = [{**m, "content": m.get("content") or ""} for m in messages]
        text = self.tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def check(self, prompt_ids: Sequence[Sequence[int]], sampling: SamplingParams) -> None:
        """Refuse, before any work, what the model cannot do: an empty prompt, no room in its context."""
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("a prompt has no tokens")
        if self.context is not None:
            longest = max((len(p) for p in prompt_ids), default=0)
            if sampling.max_new_tokens > self.context or longest + sampling.max_new_tokens > self.context:
                raise ValueError(
                    f"max_new_tokens={sampling.max_new_tokens} with a {longest}-token prompt exceeds the "
                    f"model's context of {self.context} tokens"
                )
        if sampling.logit_bias and any(not 0 <= t < len(self.tok) for t, _ in sampling.logit_bias):
            raise ValueError(f"logit_bias names a token id outside the vocabulary (0..{len(self.tok) - 1})")

    def generate(self, prompts: Sequence[Sequence[Message]], sampling: SamplingParams, n: int = 1, *,
                 on_step: Callable[[list[Delta]], None] | None = None, abort=None) -> list[Rollout]:
        """``len(prompts) * n`` rollouts, prompt-major; ``abort`` (a ``threading.Event``) stops the run."""
        prompt_ids = [self.encode(p) for p in prompts]
        return self.generate_ids(prompt_ids, prompts, sampling, n, on_step=on_step, abort=abort)

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], prompts: Sequence[Sequence[Message]],
                     sampling: SamplingParams, n: int = 1, *, on_step=None, abort=None) -> list[Rollout]:
        """The same from prompt token ids (the exact tokens of a multi-turn prefix, never re-tokenized)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.check(prompt_ids, sampling)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        out: list[Rollout] = []
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [],
                                       enabled=sampling.seed is not None), torch.inference_mode():
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
                for start in range(0, len(prompt_ids), self.batch_size):
                    chunk = [list(p) for p in prompt_ids[start : start + self.batch_size]]
                    rows = self._decode(chunk, sampling, n, device, len(out), on_step, abort)
                    out += self._rollouts(chunk, prompts[start : start + len(chunk)], rows, sampling, n, start)
        finally:
            self.model.train(was_training)
        return out

    def _rollouts(self, chunk, prompts, rows: list[_Row], sampling, n, start) -> list[Rollout]:
        version = self.version
        return [
            Rollout(messages=[dict(m) for m in prompts[r // n]], prompt_ids=chunk[r // n], completion_ids=row.ids,
                    logprobs=row.logprobs, completion=row.text, finish_reason=row.finish or FinishReason.LENGTH,
                    model=self.name, version=version, sampling=sampling,
                    top_logprobs=row.top if sampling.logprobs else None, group=start + r // n)
            for r, row in enumerate(rows)
        ]

    def _decode(self, chunk, sampling, n, device, first_index, on_step, abort) -> list[_Row]:
        """One left-padded batch through the KV-cache loop; rows finish at EOS, a stop string or abort."""
        width = max(len(p) for p in chunk)
        ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in chunk for _ in range(n)], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk for _ in range(n)], device=device)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # (R, width): positions ignore the padding
        bias = _bias(sampling, len(self.tok), device)
        rows = [_Row() for _ in range(ids.shape[0])]
        cache, step_ids, step_pos = {self._cache_arg: DynamicCache(config=self.model.config)}, ids, pos
        for _ in range(sampling.max_new_tokens):
            if abort is not None and abort.is_set():
                break
            out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, use_cache=True,
                             logits_to_keep=1, **cache)  # the cache object is filled in place
            tokens, lps, top = _pick(out.logits[:, -1, :].to(torch.float32), sampling, bias)
            deltas = self._advance(rows, tokens.tolist(), lps.tolist(), top, sampling, first_index, on_step)
            if on_step is not None and deltas:
                on_step(deltas)
            if all(r.finish is not None for r in rows):
                break
            step_ids = torch.where(torch.tensor([r.finish is None for r in rows], device=device), tokens,
                                   torch.full_like(tokens, self.pad))[:, None]
            step_pos = step_pos[:, -1:] + 1
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        for r in rows:
            if r.finish is None:
                r.finish = FinishReason.ABORTED if abort is not None and abort.is_set() else FinishReason.LENGTH
                r.text = self._text(r, sampling, final=True)[0]
        return rows

    def _advance(self, rows, tokens, lps, top, sampling, first_index, on_step) -> list[Delta]:
        """Append each unfinished row's token; decide whether it ended; the text newly safe to show."""
        deltas = []
        for r, row in enumerate(rows):
            if row.finish is not None:
                continue
            tid = tokens[r]
            row.ids.append(tid)
            row.logprobs.append(lps[r])
            alts = {int(i): float(v) for i, v in zip(top[0][r].tolist(), top[1][r].tolist(), strict=True)
                    if v != float("-inf")} if top is not None else None
            if alts is not None:
                row.top.append(alts)
            if tid in self.eos:
                row.finish = FinishReason.STOP
            text, stopped = (self._text(row, sampling, final=row.finish is not None)
                             if on_step is not None or sampling.stop or row.finish is not None else (row.text, False))
            if stopped:
                row.finish = FinishReason.STOP
            row.text = text
            if on_step is not None:
                safe = len(text) if row.finish is not None else len(text) - _held_back(text, sampling.stop)
                deltas.append(Delta(first_index + r, tid, lps[r], alts, text[row.shown : safe], row.finish))
                row.shown = max(row.shown, safe)
        return deltas

    def _text(self, row: _Row, sampling, final: bool) -> tuple[str, bool]:
        """(the completion text, whether a stop string ended it): special tokens dropped, cut at a stop."""
        text = self.tok.decode(row.ids, skip_special_tokens=True)
        hits = [i for s in sampling.stop if (i := text.find(s)) >= 0]
        if hits:
            return text[: min(hits)], True
        if not final and text.endswith("\ufffd"):  # a multi-byte character not complete yet
            text = text[: len(text) - 1]
        return text, False


def _bias(sampling: SamplingParams, vocab: int, device) -> torch.Tensor | None:
    if not sampling.logit_bias:
        return None
    bias = torch.zeros(vocab, device=device)
    for tid, value in sampling.logit_bias:
        bias[tid] = value
    return bias


def _pick(logits: torch.Tensor, sampling: SamplingParams, bias):
    """(tokens (R,), their log-probs (R,), (top ids, top log-probs) (R, k) or None) for one step.

    The log-probs come from the distribution the token was drawn from: logits + bias, divided by T,
    top-p filtered (filtered ids get -inf) and renormalised; greedy: the model's own (T = 1).
    """
    if bias is not None:
        logits = logits + bias
    if sampling.temperature == 0:
        logp = torch.log_softmax(logits, dim=-1)  # (R, V)
        tokens = logits.argmax(dim=-1)
    else:
        scores = logits / sampling.temperature if sampling.temperature != 1.0 else logits
        if sampling.top_p < 1.0:
            scores = _top_p(scores, sampling.top_p)
        logp = torch.log_softmax(scores, dim=-1)
        tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
    lps = logp.gather(1, tokens[:, None]).squeeze(1)
    top = None
    if sampling.logprobs:
        values, idx = logp.topk(min(sampling.logprobs, logp.shape[-1]), dim=-1)
        top = (idx, values)
    return tokens, lps, top


def _top_p(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely ids whose probability reaches ``top_p`` (at least one)."""
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    mass_before = sorted_scores.softmax(dim=-1).cumsum(dim=-1) - sorted_scores.softmax(dim=-1)
    drop_sorted = mass_before >= top_p
    drop_sorted[..., 0] = False  # the most likely id is always kept (a top_p below float32's range is 0)
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string (not shown yet)."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


def weights_digest(model) -> str:
    """A short digest of the weights (names, shapes and sums), so a version names what produced a row."""
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            h.update(f"{name}:{tuple(p.shape)}:{p.detach().double().sum().item():.10e}".encode())
    return h.hexdigest()[:12]
