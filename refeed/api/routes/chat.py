"""OpenAI-compatible ``POST /v1/chat/completions`` (streamed or not) and ``GET /v1/models``.

Every choice is logged as its own interaction (``n`` choices are siblings: one prompt, one context
hash) with its tokens as sampled (``refeed.store.tokens``), before the response ends. The ids come
back in the body (``refeed.interaction_id``, the first; ``refeed.interaction_ids``, all; and
``choices[k].refeed``) and in the ``X-Refeed-Interaction-Id`` header (comma-separated when n > 1),
so the app can attach feedback. Through the openai SDK they read as
``response.model_extra["refeed"]["interaction_id"]``. With vLLM's ``return_token_ids: true`` a
non-streamed response also carries the sampled ids (``choices[k].token_ids``, ``prompt_token_ids``).

A stream the client stops reading is still logged: the generation is stopped, and what was
generated is logged with finish reason ``aborted``, so feedback on the ids it already received works.
"""

from __future__ import annotations

import json
import time

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from refeed.api.auth import Principal, feedback_token, require
from refeed.api.schemas import ChatRequest
from refeed.store import records
from refeed.store.tokens import log_rollouts
from refeed.types import new_id

router = APIRouter(prefix="/v1", tags=["chat"])
HEADER = "X-Refeed-Interaction-Id"
PARAMS = {"temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n", "stop", "logprobs",
          "top_logprobs", "logit_bias"}


def _log(request: Request, who: Principal, req: ChatRequest, served, ids: list[str]) -> None:
    for r, iid in zip(served.rollouts, ids, strict=True):
        r.id = iid
    params = {k: v for k, v in req.model_dump(include=PARAMS).items() if v is not None}
    extra = []
    if req.retry_of is not None:  # "try again": the earlier answer was rejected in favour of a regeneration
        extra.append(records.feedback_record(req.retry_of, "retry", source="implicit", author=None,
                                             idempotency_key=None, fields={"regeneration_id": ids[0]}))
    log_rollouts(request.app.state.store, served.rollouts, params=params, thread_id=req.thread_id,
                 parent_id=req.parent_id, metadata={"user": req.user} if req.user else None, extra=extra,
                 project=who.project)


@router.post("/chat/completions")
async def chat_completions(req: ChatRequest, request: Request, who: Principal = require("ingest")):
    backend, settings = request.app.state.backend, request.app.state.settings
    for ref in (req.retry_of, req.parent_id):  # refuse unknown references before generating
        if ref is not None:
            await _run(request.app.state.store.get_interaction, ref, who.project)
    body = req.model_dump(exclude_none=True, exclude={"stream", "thread_id", "parent_id", "retry_of", "user"})
    body["messages"] = [m.model_dump(exclude_none=True) for m in req.messages]
    body["max_tokens_default"] = settings.max_tokens
    ids, created = [new_id() for _ in range(req.n or 1)], int(time.time())
    extra = _refeed(request, who, ids)
    if not req.stream:
        served = await backend.complete(body)
        model = settings.model_name or served.model or getattr(backend, "name", None) or req.model or "refeed"
        await _run(_log, request, who, req, served, ids)
        return JSONResponse(_completion(request, who, req, ids, created, model, served, extra),
                            headers={HEADER: ",".join(ids)})
    model = settings.model_name or getattr(backend, "name", None) or req.model or "refeed"
    run = await backend.open_stream(body)  # a bad request or a full queue fails here, with its status
    return _stream(request, who, req, run, ids, created, model, extra)


def _stream(request: Request, who: Principal, req: ChatRequest, run, ids, created, model, extra):
    """The SSE response: a role chunk per choice, the pieces as sampled, then (once logged) each choice's
    finish reason, the usage chunk if asked for, and ``[DONE]``."""
    usage_too = bool((req.stream_options or {}).get("include_usage"))
    state = {"logging": False}

    def chunk(choices, usage=None):
        out = {"id": f"chatcmpl-{ids[0]}", "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": choices, "refeed": extra}
        if usage_too:
            out["usage"] = usage
        return f"data: {json.dumps(out)}\n\n"

    async def events():
        for k in range(len(ids)):
            yield chunk([{"index": k, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        async for p in run.events():
            c = {"index": p.index, "delta": {"content": p.text}, "finish_reason": None}
            if req.logprobs:
                c["logprobs"] = {"content": p.logprobs or [], "refusal": None}
            yield chunk([c])
        served = await run.finish()
        state["logging"] = True
        await _run(_log, request, who, req, served, ids)  # logged before the stream closes
        for k, r in enumerate(served.rollouts):
            yield chunk([{"index": k, "delta": {}, "finish_reason": str(r.finish_reason)}])
        if usage_too:
            yield chunk([], served.usage)
        yield "data: [DONE]\n\n"

    async def on_close():
        """However the response ended: a client that went away mid-stream still gets its answer logged."""
        if state["logging"]:
            return
        state["logging"] = True
        try:
            served = await run.finish(abort=True)
        except Exception:  # noqa: BLE001 - the generation itself failed (the stream broke off): nothing to log
            return
        await _run(_log, request, who, req, served, ids)

    return _LoggedStream(events(), on_close, media_type="text/event-stream", headers={HEADER: ",".join(ids)})


class _LoggedStream(StreamingResponse):
    """A streaming response that runs ``on_close`` when it ends, normally or because the client left
    (Starlette then cancels the body, or its ``send`` fails); shielded, so it runs to the end."""

    def __init__(self, content, on_close, **kw):
        super().__init__(content, **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.on_close()


@router.get("/models")
def list_models(request: Request, who: Principal = require("ingest")):
    s, backend = request.app.state.settings, request.app.state.backend
    name = s.model_name or getattr(backend, "name", None) or "refeed"
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "refeed"}]}


async def _run(fn, *args):
    return await anyio.to_thread.run_sync(lambda: fn(*args))


def _token(request: Request, who: Principal, iid: str) -> dict:
    """What the app needs to attach feedback later; the token may be handed to a browser (auth.py)."""
    return {"interaction_id": iid, "feedback_token": feedback_token(request.app.state.token_secret, who.project, iid)}


def _refeed(request: Request, who: Principal, ids: list[str]) -> dict:
    first = _token(request, who, ids[0])
    return {**first, "interaction_ids": ids} if len(ids) > 1 else first


def _completion(request, who: Principal, req: ChatRequest, ids, created, model, served, extra) -> dict:
    backend = request.app.state.backend
    token_ids = bool((req.model_extra or {}).get("return_token_ids"))  # vLLM's extension: the ids as sampled
    choices = []
    for k, (r, iid) in enumerate(zip(served.rollouts, ids, strict=True)):
        c = {"index": k, "message": {"role": "assistant", "content": r.completion},
             "finish_reason": str(r.finish_reason), "logprobs": None}
        if req.logprobs:
            c["logprobs"] = (backend.choice_logprobs(r, req.top_logprobs) if r.token_ids_exact
                             and hasattr(backend, "choice_logprobs") else served.logprobs[k])
        if token_ids:
            c["token_ids"] = list(r.completion_ids) if r.token_ids_exact else None
        if len(ids) > 1:
            c["refeed"] = _token(request, who, iid)
        choices.append(c)
    out = {"id": f"chatcmpl-{ids[0]}", "object": "chat.completion", "created": created, "model": model,
           "choices": choices, "usage": served.usage or None, "refeed": extra}
    if token_ids:
        first = served.rollouts[0]
        out["prompt_token_ids"] = list(first.prompt_ids) if first.token_ids_exact else None
    return out
