"""Any OpenAI-compatible endpoint: a chat client (retries, cache, concurrency) and the ``Generator`` on it.

    gen = OpenAIGenerator("http://127.0.0.1:8000/v1", model="policy", api_key_env="OPENAI_API_KEY", token_ids=True)
    rollouts = gen.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=64, seed=0), n=4)

``OpenAIClient`` posts chat completion bodies (httpx, async) and is what the AI judge
(``refeed.rewards.judges``) and this generator share:
- retries with exponential backoff (``backoff * 2**attempt`` plus up to ``backoff`` of jitter, or the
  server's ``Retry-After`` when it sends one) on 429, 5xx, timeouts and dropped connections; any
  other 4xx fails at once with the server's message;
- at most ``max_concurrency`` requests in flight;
- with ``cache=True`` (or a JSONL file path, which persists across runs) a response cache keyed by
  the request (URL and body): a repeated request makes no call, and identical requests in one
  batch are sent once. A generator must not cache (each call is a fresh sample); a judge should.

Token ids: ``OpenAIGenerator`` asks, with ``token_ids=True``, for vLLM's extensions
``return_token_ids`` (the response then carries ``prompt_token_ids`` and ``choices[k].token_ids``;
``refeed serve`` honours it too) and ``return_tokens_as_token_ids`` (logprob tokens read
``"token_id:123"``). A rollout is exact (``token_ids_exact=True``) only when ids and one log-prob
per id came back; otherwise it keeps the text and is flagged ``token_ids_exact=False`` with no ids
(``../shared/ACCEPTANCE.md``, "Tokens are stored as sampled"), which the online loss refuses.
The log-probs are what the server reports: ``refeed serve`` reports them after temperature (the
distribution sampled from); vLLM only with ``--logprobs-mode processed_logprobs``. Against OpenAI
itself leave ``token_ids=False`` (it rejects unknown fields). Tested against ``refeed serve``; the
vLLM extensions are written against vLLM's documented fields and were not run against vLLM.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refeed.types import FinishReason, Message, Rollout, SamplingParams

RETRY_STATUS = {408, 409, 425, 429}  # and every 5xx


class EndpointError(RuntimeError):
    """The endpoint refused a request, or kept failing after the retries."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _httpx():
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx ships with refeed[server]
        raise ImportError("an OpenAI-compatible endpoint needs httpx: pip install 'refeed[server]'") from None
    return httpx


def api_key_from_env(name: str | None) -> str | None:
    """The key in environment variable ``name`` (keys never live in recipes); None when no name is given."""
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise ValueError(f"the endpoint's API key is read from ${name}, which is not set")
    return key


class OpenAIClient:
    """POSTs ``/chat/completions`` bodies to ``base_url``; see the module docstring."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0, max_retries: int = 4,
                 backoff: float = 0.5, max_backoff: float = 30.0, max_concurrency: int = 8,
                 cache: bool | str | Path = False):
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError(f"need max_concurrency >= 1 and max_retries >= 0, got {max_concurrency}, {max_retries}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout, self.max_retries, self.backoff, self.max_backoff = timeout, max_retries, backoff, max_backoff
        self.max_concurrency = max_concurrency
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0}
        self._lock = threading.Lock()
        self.cache: dict[str, dict] | None = {} if cache else None
        self.cache_path = Path(cache) if isinstance(cache, (str, Path)) else None
        if self.cache_path is not None and self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.cache[row["key"]] = row["response"]

    def key(self, body: dict) -> str:
        return hashlib.sha256(json.dumps([self.url, body], sort_keys=True).encode()).hexdigest()

    async def chat_many(self, bodies: Sequence[dict]) -> list[dict]:
        """The responses to ``bodies``, in order; cached ones from the cache, each distinct request once."""
        httpx = _httpx()
        keys = [self.key(b) for b in bodies] if self.cache is not None else [str(i) for i in range(len(bodies))]
        todo = {k: b for k, b in zip(keys, bodies, strict=True) if self.cache is None or k not in self.cache}
        with self._lock:
            self.stats["cache_hits"] += len(bodies) - len(todo)  # answered without a request of their own
        if todo:
            sem = asyncio.Semaphore(self.max_concurrency)
            async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as http:
                got = await asyncio.gather(*(self._post(http, sem, b) for b in todo.values()))
            fresh = dict(zip(todo, got, strict=True))
            if self.cache is not None:
                self._store(fresh)
        else:
            fresh = {}
        return [fresh[k] if k in fresh else self.cache[k] for k in keys]

    def chat_many_sync(self, bodies: Sequence[dict]) -> list[dict]:
        """``chat_many`` from synchronous code (in a thread of its own when an event loop is running)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.chat_many(bodies))
        out: list = []
        t = threading.Thread(target=lambda: out.append(_capture(lambda: asyncio.run(self.chat_many(bodies)))))
        t.start()
        t.join()
        ok, value = out[0]
        if not ok:
            raise value
        return value

    def _store(self, fresh: dict[str, dict]) -> None:
        with self._lock:
            self.cache.update(fresh)
            if self.cache_path is not None:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                with self.cache_path.open("a") as f:
                    for k, r in fresh.items():
                        f.write(json.dumps({"key": k, "response": r}) + "\n")

    async def _post(self, http, sem: asyncio.Semaphore, body: dict) -> dict:
        httpx = _httpx()
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            async with sem:
                with self._lock:
                    self.stats["requests"] += 1
                try:
                    r = await http.post(self.url, json=body)
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    if last:
                        raise EndpointError(f"{self.url}: {type(e).__name__} after {attempt + 1} attempts: {e}") from e
                    wait = None
                else:
                    if r.status_code == 200:
                        try:
                            return r.json()
                        except ValueError:
                            raise EndpointError(f"{self.url} answered 200 with a body that is not JSON: "
                                                f"{r.text[:200]!r}", 200) from None
                    if not (r.status_code in RETRY_STATUS or r.status_code >= 500) or last:
                        tries = f" after {attempt + 1} attempts" if attempt else ""
                        raise EndpointError(f"{self.url} answered {r.status_code}{tries}: {r.text[:500]}", r.status_code)
                    wait = _retry_after(r.headers.get("retry-after"))
            with self._lock:
                self.stats["retries"] += 1
            delay = wait if wait is not None else self.backoff * 2**attempt + random.uniform(0, self.backoff)
            await asyncio.sleep(min(delay, self.max_backoff))
        raise AssertionError("unreachable")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _capture(fn):
    try:
        return True, fn()
    except BaseException as e:  # handed back to the calling thread
        return False, e


_TOKEN_ID = re.compile(r"token_id:(\d+)")


def parse_choice(choice: dict, prompt_ids: list[int] | None) -> dict[str, Any]:
    """A response choice's text, finish reason, and (when the server sent them) exact ids and log-probs."""
    text = (choice.get("message") or {}).get("content") or ""
    try:
        finish = FinishReason(choice.get("finish_reason") or "stop")
    except ValueError:
        finish = FinishReason.ABORTED if choice.get("finish_reason") == "abort" else FinishReason.STOP
    content = (choice.get("logprobs") or {}).get("content") or None
    ids = choice.get("token_ids")
    if ids is None and content:  # vLLM's return_tokens_as_token_ids: the tokens spell their ids
        matches = [_TOKEN_ID.fullmatch(str(e.get("token", ""))) for e in content]
        ids = [int(m.group(1)) for m in matches] if all(matches) else None
    logprobs = [e.get("logprob") for e in content] if content else None
    exact = (ids is not None and logprobs is not None and len(ids) == len(logprobs)
             and all(isinstance(x, (int, float)) for x in logprobs) and prompt_ids is not None)
    top = None
    if exact and any(e.get("top_logprobs") for e in content):
        alts = [[(_TOKEN_ID.fullmatch(str(a.get("token", ""))), a.get("logprob")) for a in e.get("top_logprobs") or []]
                for e in content]
        if all(m for row in alts for m, _ in row):
            top = [{int(m.group(1)): float(lp) for m, lp in row} for row in alts]
    return {"completion": text, "finish_reason": finish, "token_ids_exact": exact,
            "completion_ids": [int(t) for t in ids] if exact else [],
            "logprobs": [float(x) for x in logprobs] if exact else [], "top_logprobs": top}


class OpenAIGenerator:
    """The ``Generator`` protocol over an OpenAI-compatible endpoint (one request per prompt, ``n`` choices).

    ``version`` is recorded on every rollout (default: the model name the server answers with).
    ``extra_body`` is merged into every request (e.g. ``{"top_k": 20}`` for vLLM).
    The online loop does not update the endpoint's model (``tracks_policy`` False): its rollouts keep this version.
    """

    tracks_policy = False

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, api_key_env: str | None = None,
                 token_ids: bool = False, version: str | None = None, extra_body: dict | None = None,
                 timeout: float = 120.0, max_retries: int = 4, backoff: float = 0.5, max_concurrency: int = 8):
        self.model, self.token_ids, self.version, self.extra_body = model, token_ids, version, dict(extra_body or {})
        self.client = OpenAIClient(base_url, api_key or api_key_from_env(api_key_env), timeout=timeout,
                                   max_retries=max_retries, backoff=backoff, max_concurrency=max_concurrency)

    def body(self, messages: Sequence[Message], sampling: SamplingParams, n: int, seed: int | None) -> dict:
        b: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages], "n": n,
                             "temperature": sampling.temperature, "top_p": sampling.top_p,
                             "max_tokens": sampling.max_new_tokens, "logprobs": True}
        if sampling.logprobs:
            b["top_logprobs"] = sampling.logprobs
        if seed is not None:
            b["seed"] = seed
        if sampling.stop:
            b["stop"] = list(sampling.stop)
        if sampling.logit_bias:
            b["logit_bias"] = {str(t): v for t, v in sampling.logit_bias}
        if self.token_ids:
            b |= {"return_token_ids": True, "return_tokens_as_token_ids": True}
        return b | self.extra_body

    def generate(self, prompts: Sequence[Sequence[Message]], sampling: SamplingParams, n: int = 1) -> list[Rollout]:
        """``len(prompts) * n`` rollouts, prompt-major (``group`` = the prompt's index); prompt i is seeded
        ``sampling.seed + i`` so that equal prompts in one call are not sampled alike."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        seeds = [None if sampling.seed is None else sampling.seed + i for i in range(len(prompts))]
        responses = self.client.chat_many_sync([self.body(p, sampling, n, s) for p, s in zip(prompts, seeds, strict=True)])
        out = []
        for i, (messages, resp) in enumerate(zip(prompts, responses, strict=True)):
            choices = sorted(resp.get("choices") or [], key=lambda c: c.get("index", 0))
            if len(choices) != n:
                raise EndpointError(f"{self.client.url} returned {len(choices)} choices for n={n} (prompt {i})")
            prompt_ids = resp.get("prompt_token_ids")
            for c in choices:
                p = parse_choice(c, prompt_ids)
                out.append(Rollout(messages=list(messages), prompt_ids=list(prompt_ids or []) if p["token_ids_exact"] else [],
                                   model=resp.get("model") or self.model, version=self.version or resp.get("model"),
                                   sampling=sampling, group=i, **p))
        return out
