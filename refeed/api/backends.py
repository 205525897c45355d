"""What answers chat requests: a local ``transformers`` model, or an upstream OpenAI-compatible server.

Both expose ``complete(request) -> (text, model, usage)`` and ``stream(request)`` yielding text pieces.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from refeed.api.errors import UpstreamError


class LocalBackend:
    """Serves a model directory through ``from_pretrained``; one generation at a time (a lock)."""

    def __init__(self, path: str, name: str | None = None):
        from refeed.models import load

        self.model, self.tok = load(path)
        self.model.eval()
        self.name = name or path
        self.lock = threading.Lock()

    def _inputs(self, req: dict[str, Any]):
        import torch

        # The chat template needs text: a message without content (a tool call, say) renders as "".
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in req["messages"]]
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = self.tok(text, return_tensors="pt", add_special_tokens=False)
        temperature = float(req.get("temperature", 1.0) if req.get("temperature") is not None else 1.0)
        cap = req["max_tokens_default"]  # the server's --max-tokens bounds every request
        kw = dict(
            max_new_tokens=min(int(req.get("max_tokens") or cap), cap),
            eos_token_id=self.tok.eos_token_id,
            pad_token_id=self.tok.pad_token_id,
        )
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_p=float(req.get("top_p") or 1.0), top_k=0)
        else:
            kw.update(do_sample=False)
        if req.get("seed") is not None:
            torch.manual_seed(int(req["seed"]))
        return enc, kw

    def _generate(self, req) -> tuple[str, dict]:
        import torch

        with self.lock, torch.inference_mode():
            enc, kw = self._inputs(req)
            out = self.model.generate(**enc, **kw)
        new = out[0, enc["input_ids"].shape[1] :]
        usage = {"prompt_tokens": int(enc["input_ids"].shape[1]), "completion_tokens": int(new.shape[0])}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return self.tok.decode(new, skip_special_tokens=True), usage

    async def complete(self, req: dict[str, Any]) -> tuple[str, str, dict]:
        text, usage = await asyncio.to_thread(self._generate, req)
        return text, self.name, usage

    async def stream(self, req: dict[str, Any]) -> AsyncIterator[str]:
        """Token by token through transformers' TextIteratorStreamer, generation in a worker thread."""
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True, timeout=120)
        enc, kw = self._inputs(req)  # a bad request fails here, before any thread starts
        failure: list[BaseException] = []

        def run():
            try:
                with self.lock, torch.inference_mode():
                    self.model.generate(**enc, **kw, streamer=streamer)
            except BaseException as e:  # hand the error to the consumer instead of leaving it waiting
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        it = iter(streamer)
        while True:
            piece = await asyncio.to_thread(next, it, None)
            if piece is None:
                break
            if piece:
                yield piece
        worker.join()
        if failure:
            raise failure[0]


class UpstreamBackend:
    """Forwards to ``{base}/chat/completions`` of any OpenAI-compatible server."""

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

    async def complete(self, req: dict[str, Any]) -> tuple[str, str, dict]:
        import httpx

        try:
            r = await self.client.post("/chat/completions", json={**self._body(req), "stream": False})
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"upstream {self.base} failed: {e!r}") from None
        self._check(r.status_code, r.text)
        data = r.json()
        return (
            data["choices"][0]["message"].get("content") or "",
            data.get("model", ""),
            data.get("usage") or {},
        )

    async def stream(self, req: dict[str, Any]) -> AsyncIterator[str]:
        """Passes the upstream's content deltas through as they arrive."""
        import httpx

        try:
            async with self.client.stream(
                "POST", "/chat/completions", json={**self._body(req), "stream": True}
            ) as r:
                if r.status_code >= 400:
                    self._check(r.status_code, (await r.aread()).decode(errors="replace"))
                async for line in r.aiter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    delta = json.loads(line[5:])["choices"][0].get("delta", {})
                    if delta.get("content"):
                        yield delta["content"]
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"upstream {self.base} failed: {e!r}") from None

    def _check(self, status: int, text: str) -> None:
        """The upstream's own verdict on a bad request is passed on; anything else is a bad gateway."""
        if status >= 400:
            raise UpstreamError(status if status in (400, 404, 413, 422) else 502,
                                f"upstream {self.base} answered {status}: {text[:500]}")  # fmt: skip
