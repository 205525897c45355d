"""What answers chat requests: a local ``transformers`` model, or an upstream OpenAI-compatible server.

Both turn an OpenAI request body into ``Served``: one ``Rollout`` per choice (``n`` of them), the
model name and the usage. The local model generates through ``TransformersGenerator`` (the one
generation path of refeed: the online loop samples the same way), so every served answer carries
its sampled token ids and sampling log-probs; an upstream returns text only, and its rollouts are
flagged ``token_ids_exact=False``.

``complete(body)`` answers at once; ``open_stream(body)`` returns a ``StreamRun`` whose ``events()``
yield pieces as they are sampled and whose ``finish(abort)`` returns the rollouts, also when the
client went away mid-stream (then unfinished choices end ``aborted``). Bad requests and a full
generation queue raise before anything is generated or streamed.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refeed.api.errors import UpstreamError
from refeed.types import FinishReason, Rollout, SamplingParams


class ModelError(UpstreamError):
    """The local model refused a request (400: no room in its context, say) or is busy (429)."""


@dataclass
class Served:
    rollouts: list[Rollout]  # one per choice, in choice order
    model: str
    usage: dict[str, int]
    logprobs: list[dict | None] = field(default_factory=list)  # an upstream's OpenAI logprobs, per choice


@dataclass(frozen=True)
class Piece:
    """A streamed piece of one choice: new text and, when asked for, the OpenAI logprobs entries."""

    index: int
    text: str
    logprobs: list[dict] | None = None


class GenerationQueue:
    """Local generation runs here: one request at a time, in a thread of its own.

    A generation holds the model for its whole length; in the shared thread pool it also held a
    worker that store writes need (the group commit's ``to_thread``), so with 24 chats waiting a
    feedback write waited seconds. Here the model's work queues in front of its own single thread,
    and at most ``limit`` requests run or wait; one more is answered 429 at once (the openai client
    retries 429 with backoff) instead of holding a connection for minutes.
    """

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError(f"the generation queue limit must be >= 1, got {limit}")
        self.limit, self.active, self._lock = limit, 0, threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refeed-generate")

    def submit(self, fn, *args) -> asyncio.Future:
        with self._lock:
            if self.active >= self.limit:
                raise ModelError(429, f"the model is busy: {self.active} requests are generating or "
                                      f"queued (the limit, --max-queue, is {self.limit}); retry shortly")
            self.active += 1
        job = self.pool.submit(fn, *args)
        job.add_done_callback(lambda _: self._release())  # when the work ends, not when a waiter leaves
        return asyncio.wrap_future(job)

    def _release(self) -> None:
        with self._lock:
            self.active -= 1


def served_name(path: str) -> str:
    """The model id clients see for a local directory: its name, never the path (a hub id as is)."""
    p = Path(path).expanduser()
    if not p.exists():
        return path
    p = p.resolve()
    generic = {"model", "final", "latest", "merged", "checkpoint"}
    return f"{p.parent.name}-{p.name}" if p.name.lower() in generic and p.parent.name else p.name


class LocalBackend:
    """Serves a model directory through ``from_pretrained`` and ``TransformersGenerator``."""

    def __init__(self, path: str, name: str | None = None, queue_limit: int = 64, chat_template: str = ""):
        from refeed.models import load
        from refeed.models.hf_generator import TransformersGenerator

        model, tok = load(path, chat_template=chat_template)
        if not getattr(tok, "chat_template", None):
            raise ValueError(
                f"the model at {path} has no chat template, so chat requests cannot be formatted: pass "
                "--chat-template chatml (or another named template, or a Jinja file)"
            )
        model.eval()
        self.name = name or served_name(path)
        self.gen = TransformersGenerator(model, tok, name=self.name)
        self.version = self.gen.version  # the weights digest, computed once at start, not per request
        self.queue = GenerationQueue(queue_limit)

    def prepare(self, req: dict[str, Any]) -> tuple[list[int], list[dict], SamplingParams, int]:
        """(prompt ids, messages, sampling, n) of a request; refused with a 400 before any work."""
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in req["messages"]]
        prompt = self.gen.encode(messages)
        room = (self.gen.context or 10**9) - len(prompt)
        asked = req.get("max_completion_tokens") or req.get("max_tokens")
        if room < 1 or (asked is not None and int(asked) > room):
            raise ModelError(400, f"the prompt has {len(prompt)} tokens and max_tokens is {asked}: this "
                                  f"model's context is {self.gen.context} tokens")
        cap = min(req["max_tokens_default"], room)  # the server's --max-tokens bounds every request
        try:
            sampling = sampling_params(req, cap, self.gen.tok)
            self.gen.check([prompt], sampling)
        except ValueError as e:
            raise ModelError(400, str(e)) from None
        return prompt, messages, sampling, int(req.get("n") or 1)

    def _served(self, rollouts: list[Rollout]) -> Served:
        usage = {"prompt_tokens": len(rollouts[0].prompt_ids),
                 "completion_tokens": sum(len(r.completion_ids) for r in rollouts)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return Served(rollouts, self.name, usage)

    async def complete(self, req: dict[str, Any]) -> Served:
        prompt, messages, sampling, n = self.prepare(req)
        rollouts = await self.queue.submit(self.gen.generate_ids, [prompt], [messages], sampling, n)
        return self._served(rollouts)

    async def open_stream(self, req: dict[str, Any]) -> StreamRun:
        prompt, messages, sampling, n = self.prepare(req)
        loop, pieces, abort = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        want = sampling.logprobs if req.get("logprobs") else None

        def on_step(deltas):
            out = [Piece(d.index, d.text, [self.logprob_entry(d.token_id, d.logprob, d.top, want)]
                         if want is not None else None) for d in deltas]
            loop.call_soon_threadsafe(pieces.put_nowait, out)

        def run():
            try:
                return self.gen.generate_ids([prompt], [messages], sampling, n, on_step=on_step, abort=abort)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, None)  # the end of the pieces

        return StreamRun(self.queue.submit(run), pieces, abort, self._served)

    def logprob_entry(self, tid: int, logprob: float, top: dict[int, float] | None, k: int | None) -> dict:
        """One token in OpenAI's ``logprobs.content`` shape (special tokens shown, e.g. the EOS)."""
        def entry(t, lp):
            text = self.gen.tok.decode([t])
            return {"token": text, "logprob": lp, "bytes": list(text.encode())}

        alts = [entry(t, lp) for t, lp in list((top or {}).items())[: k or 0]]
        return {**entry(tid, logprob), "top_logprobs": alts}

    def choice_logprobs(self, r: Rollout, k: int | None) -> dict:
        tops = r.top_logprobs or [None] * len(r.completion_ids)
        return {"content": [self.logprob_entry(t, lp, top, k)
                            for t, lp, top in zip(r.completion_ids, r.logprobs, tops, strict=True)], "refusal": None}


def sampling_params(req: dict[str, Any], cap: int, tok=None) -> SamplingParams:
    """The request's OpenAI sampling fields as ``SamplingParams`` (temperature 1 unless given)."""
    stop = req.get("stop")
    stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
    asked = req.get("max_completion_tokens") or req.get("max_tokens")
    bias = tuple((int(t), float(b)) for t, b in (req.get("logit_bias") or {}).items())
    if tok is not None and any(not 0 <= t < len(tok) for t, _ in bias):
        raise ValueError(f"logit_bias: token ids must be in 0..{len(tok) - 1}")
    return SamplingParams(
        temperature=1.0 if req.get("temperature") is None else float(req["temperature"]),
        top_p=1.0 if req.get("top_p") is None else float(req["top_p"]),
        max_new_tokens=min(int(asked or cap), cap),
        stop=stop,
        seed=req.get("seed"),
        logprobs=int(req.get("top_logprobs") or 0) if req.get("logprobs") else 0,
        logit_bias=bias,
    )


class StreamRun:
    """A streaming generation in progress: ``events()`` yields pieces; ``finish()`` the rollouts."""

    def __init__(self, job: asyncio.Future, pieces: asyncio.Queue, abort, served):
        self.job, self.pieces, self.abort, self.served = job, pieces, abort, served

    async def events(self) -> AsyncIterator[Piece]:
        while (batch := await self.pieces.get()) is not None:
            for piece in batch:
                yield piece

    async def finish(self, abort: bool = False) -> Served:
        """The rollouts; ``abort`` stops the generation first (unfinished choices end ``aborted``)."""
        if abort:
            self.abort.set()
        return self.served(await asyncio.shield(self.job))


class UpstreamBackend:
    """Forwards to ``{base}/chat/completions`` of any OpenAI-compatible server (text only: rollouts
    are flagged ``token_ids_exact=False``)."""

    def __init__(self, base_url: str, api_key: str | None = None, name: str | None = None):
        import httpx

        self.base = base_url.rstrip("/")
        self.name = name
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=self.base, headers=headers, timeout=120)

    def _body(self, req: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in req.items() if k != "max_tokens_default" and v is not None}
        if self.name and not body.get("model"):
            body["model"] = self.name
        return body

    def _served(self, req, texts: list[str], finishes: list, model: str, usage: dict, logprobs=None) -> Served:
        sampling = sampling_params(req, req["max_tokens_default"])
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in req["messages"]]
        rollouts = [
            Rollout(messages=messages, prompt_ids=[], completion_ids=[], logprobs=[], completion=t,
                    finish_reason=_finish(f), model=model, version=model or None, sampling=sampling,
                    token_ids_exact=False)
            for t, f in zip(texts, finishes, strict=True)
        ]
        return Served(rollouts, model, usage or {}, logprobs or [None] * len(rollouts))

    async def complete(self, req: dict[str, Any]) -> Served:
        import httpx

        try:
            r = await self.client.post("/chat/completions", json={**self._body(req), "stream": False})
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"upstream {self.base} failed: {e!r}") from None
        self._check(r.status_code, r.text)
        data = r.json()
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != int(req.get("n") or 1):
            raise UpstreamError(502, f"upstream {self.base} returned {len(choices)} choices for n={req.get('n') or 1}")
        return self._served(req, [c["message"].get("content") or "" for c in choices],
                            [c.get("finish_reason") for c in choices], data.get("model", ""),
                            data.get("usage") or {}, [c.get("logprobs") for c in choices])

    async def open_stream(self, req: dict[str, Any]) -> StreamRun:
        """Opens the upstream stream first, so an unreachable or refusing upstream is an error status."""
        import httpx

        n = int(req.get("n") or 1)
        state = {"texts": [""] * n, "finish": [None] * n, "model": self.name or "", "usage": {}}
        try:
            cm = self.client.stream("POST", "/chat/completions", json={**self._body(req), "stream": True})
            r = await cm.__aenter__()
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"upstream {self.base} failed: {e!r}") from None
        if r.status_code >= 400:
            text = (await r.aread()).decode(errors="replace")
            await cm.__aexit__(None, None, None)
            self._check(r.status_code, text)
        return _UpstreamRun(self, req, cm, r, state)

    def _check(self, status: int, text: str) -> None:
        """The upstream's own verdict on a bad request is passed on; anything else is a bad gateway."""
        if status >= 400:
            raise UpstreamError(status if status in (400, 404, 413, 422, 429) else 502,
                                f"upstream {self.base} answered {status}: {text[:500]}")  # fmt: skip


class _UpstreamRun(StreamRun):
    def __init__(self, backend: UpstreamBackend, req, cm, response, state):
        self.backend, self.req, self.cm, self.response, self.state, self.closed = backend, req, cm, response, state, False

    async def events(self) -> AsyncIterator[Piece]:
        import httpx

        s = self.state
        try:
            async for line in self.response.aiter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                chunk = json.loads(line[5:])
                s["model"] = chunk.get("model") or s["model"]
                s["usage"] = chunk.get("usage") or s["usage"]
                for c in chunk.get("choices") or []:
                    k, text = c.get("index", 0), (c.get("delta") or {}).get("content") or ""
                    if not 0 <= k < len(s["texts"]):
                        raise UpstreamError(502, f"upstream {self.backend.base} streamed choice {k} of {len(s['texts'])}")
                    s["texts"][k] += text
                    s["finish"][k] = c.get("finish_reason") or s["finish"][k]
                    lp = (c.get("logprobs") or {}).get("content")
                    if text or lp:
                        yield Piece(k, text, lp)
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"upstream {self.backend.base} failed: {e!r}") from None
        finally:
            await self._close()

    async def _close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.cm.__aexit__(None, None, None)

    async def finish(self, abort: bool = False) -> Served:
        await self._close()
        s = self.state
        finishes = [f or (FinishReason.ABORTED if abort else FinishReason.STOP) for f in s["finish"]]
        return self.backend._served(self.req, s["texts"], finishes, s["model"], s["usage"])


def _finish(value) -> FinishReason:
    """An upstream's finish reason; an unknown or missing one reads as ``stop`` (it ended on its own)."""
    try:
        return FinishReason(value)
    except ValueError:
        return FinishReason.STOP
