"""Who is calling: API keys, and browser-safe feedback tokens for one interaction each.

Keys: ``Authorization: Bearer <key>`` (or ``X-API-Key``), checked against hashes in the store. In
``--local`` mode (bound to 127.0.0.1) no key is checked: every request acts as the project's admin.
Roles nest: ``feedback`` (browser-safe: write feedback only) < ``ingest`` (also chat and log
interactions) < ``admin`` (also read, review, export and manage keys). A key sees only its own
project; another project's ids answer 404 as if they did not exist.

Feedback tokens (FEEDBACK.md 4.8, the presigned-token pattern): every chat answer carries
``refeed.feedback_token``, an HMAC over (project, interaction id, expiry). An app can hand it to a
browser, which sends it as ``X-Refeed-Feedback-Token`` to write feedback on that interaction only,
for 24 hours, without holding any key. Several tokens may be sent comma-separated, so a preference
between two answers needs the token of each.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

RANK = {"feedback": 0, "ingest": 1, "admin": 2}
KEY_CACHE_SECONDS = 10.0  # a revoked key stops working within this long
TOKEN_SECONDS = 24 * 3600
TOKEN_HEADER = "X-Refeed-Feedback-Token"


@dataclass(frozen=True)
class Principal:
    project: str
    role: str
    interactions: frozenset[str] | None = None  # a token's interactions; None: the whole project


def feedback_token(secret: bytes, project: str, interaction_id: str, now: float | None = None) -> str:
    """A token that lets its bearer write feedback on ``interaction_id`` (in ``project``) for 24 h."""
    expires = int((now or time.time()) + TOKEN_SECONDS)
    body = base64.urlsafe_b64encode(f"{project}\n{interaction_id}\n{expires}".encode()).decode().rstrip("=")
    return f"rft.{body}.{_sign(secret, body)}"


def check_token(secret: bytes, token: str, now: float | None = None) -> tuple[str, str] | None:
    """(project, interaction id) for a valid, unexpired token; None otherwise."""
    tag, _, rest = token.strip().partition(".")
    body, _, sig = rest.partition(".")
    if tag != "rft" or not hmac.compare_digest(sig, _sign(secret, body)):
        return None
    try:
        project, interaction_id, expires = (
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("\n")
        )
        if int(expires) < (now or time.time()):
            return None
    except ValueError:
        return None
    return project, interaction_id


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]


def _key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


async def _check_key(state, key: str):
    """``store.check_api_key`` with a short in-process cache: one hash and one query per key per 10 s,
    not per request; a miss runs in a worker thread so the event loop never waits on the database."""
    cache = state.key_cache
    hit = cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < KEY_CACHE_SECONDS:
        return hit[1]
    found = await asyncio.to_thread(state.store.check_api_key, key)
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (now, found)
    return found


def _from_tokens(state, header: str) -> Principal:
    found = [check_token(state.token_secret, t) for t in header.split(",") if t.strip()]
    if not found or None in found or len({p for p, _ in found}) != 1:
        raise HTTPException(
            401,
            f"invalid or expired {TOKEN_HEADER}: take a fresh one from the answer's refeed.feedback_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Principal(found[0][0], "feedback", frozenset(i for _, i in found))


def require(role: str):
    """A dependency that admits keys of ``role`` or above (and feedback tokens on feedback routes)."""

    async def check(request: Request) -> Principal:
        state = request.app.state
        key, token = _key(request), request.headers.get(TOKEN_HEADER)
        if key is None and token and role == "feedback":
            return _from_tokens(state, token)
        if state.settings.local:
            # 127.0.0.1 only: any key (or none) acts as admin, so an app keeps its OpenAI client, which
            # always sends one (and refuses an empty one).
            return Principal(state.settings.project, "admin")
        if key is None:
            raise HTTPException(
                401,
                "missing API key: send 'Authorization: Bearer <key>' (refeed keys create)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = await _check_key(state, key)
        if found is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        project, got = found
        if RANK[got] < RANK[role]:
            raise HTTPException(
                403, f"this route needs a key with role '{role}' or above; this key is '{got}'"
            )
        return Principal(project, got)

    return Depends(check)
