"""OpenAI-compatible ``POST /v1/chat/completions`` (streamed or not) and ``GET /v1/models``.

Every answer is logged as an interaction before the response ends; its id comes back in the body
(``refeed.interaction_id``) and the ``X-Refeed-Interaction-Id`` header, so the app can attach feedback.
"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from refeed.api.auth import Principal, feedback_token, require
from refeed.api.schemas import ChatRequest
from refeed.types import new_id

router = APIRouter(prefix="/v1", tags=["chat"])
HEADER = "X-Refeed-Interaction-Id"


def _log(request: Request, who: Principal, req: ChatRequest, text: str, model: str, iid: str) -> None:
    store = request.app.state.store
    params = {
        k: v
        for k, v in req.model_dump(include={"temperature", "top_p", "max_tokens", "seed"}).items()
        if v is not None
    }
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    items = [
        {
            "type": "interaction",
            "id": iid,
            "messages": messages,
            "completion": text,
            "model": model,
            "params": params,
            "thread_id": req.thread_id,
            "parent_id": req.parent_id,
            "metadata": {"origin": "served", **({"user": req.user} if req.user else {})},
        }
    ]
    if req.retry_of is not None:  # "try again": the earlier answer was rejected in favour of a regeneration
        items.append(
            {
                "type": "feedback",
                "target": req.retry_of,
                "kind": "retry",
                "regeneration_id": iid,
                "source": "implicit",
            }
        )
    store.write_batch(items, project=who.project)


@router.post("/chat/completions")
async def chat_completions(req: ChatRequest, request: Request, who: Principal = require("ingest")):
    backend, settings = request.app.state.backend, request.app.state.settings
    for ref in (req.retry_of, req.parent_id):  # refuse unknown references before generating
        if ref is not None:
            await _run(request.app.state.store.get_interaction, ref, who.project)
    body = req.model_dump(exclude_none=True, exclude={"stream", "thread_id", "parent_id", "retry_of", "user"})
    body["messages"] = [m.model_dump(exclude_none=True) for m in req.messages]
    body["max_tokens_default"] = settings.max_tokens
    iid, created = new_id(), int(time.time())
    extra = _refeed(request, who, iid)
    if not req.stream:
        text, model, usage = await backend.complete(body)
        model = settings.model_name or model or req.model or "refeed"
        await _run(_log, request, who, req, text, model, iid)
        return JSONResponse(_completion(iid, created, model, text, usage, extra), headers={HEADER: iid})
    model = settings.model_name or getattr(backend, "name", None) or req.model or "refeed"

    # Start generating before answering, so a failure to start (a bad request, an unreachable upstream)
    # is a proper error status rather than a stream cut short.
    stream = backend.stream(body).__aiter__()
    try:
        head = [await stream.__anext__()]
    except StopAsyncIteration:
        head = []

    async def rest():
        for piece in head:
            yield piece
        async for piece in stream:
            yield piece

    async def events():
        pieces = []
        first = {"role": "assistant", "content": ""}
        yield _sse(_chunk(iid, created, model, first, None, extra))
        async for piece in rest():
            pieces.append(piece)
            yield _sse(_chunk(iid, created, model, {"content": piece}, None, extra))
        await _run(_log, request, who, req, "".join(pieces), model, iid)  # logged before the stream closes
        yield _sse(_chunk(iid, created, model, {}, "stop", extra))
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={HEADER: iid})


@router.get("/models")
def list_models(request: Request, who: Principal = require("ingest")):
    s, backend = request.app.state.settings, request.app.state.backend
    name = s.model_name or getattr(backend, "name", None) or "refeed"
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "refeed"}]}


async def _run(fn, *args):
    import anyio

    return await anyio.to_thread.run_sync(lambda: fn(*args))


def _refeed(request: Request, who: Principal, iid: str) -> dict:
    """What the app needs to attach feedback later; the token may be handed to a browser (auth.py)."""
    return {
        "interaction_id": iid,
        "feedback_token": feedback_token(request.app.state.token_secret, who.project, iid),
    }


def _completion(iid, created, model, text, usage, extra) -> dict:
    return {
        "id": f"chatcmpl-{iid}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage or None,
        "refeed": extra,
    }


def _chunk(iid, created, model, delta, finish, extra) -> dict:
    return {
        "id": f"chatcmpl-{iid}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "refeed": extra,
    }


def _sse(obj) -> str:
    return f"data: {json.dumps(obj)}\n\n"
