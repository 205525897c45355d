"""API keys: ``Authorization: Bearer <key>`` (or ``X-API-Key``), checked against hashes in the store.

Roles nest: ``feedback`` (browser-safe: write feedback only) < ``ingest`` (also chat and log
interactions) < ``admin`` (also read, review and export). A key sees only its own project; another
project's ids answer 404 as if they did not exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

RANK = {"feedback": 0, "ingest": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    project: str
    role: str


def _key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


KEY_CACHE_SECONDS = 10.0  # a revoked key stops working within this long


def _check(state, key: str):
    """``store.check_api_key`` with a short in-process cache: one hash and one query per key per 10 s,
    not per request."""
    cache = state.key_cache
    hit = cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < KEY_CACHE_SECONDS:
        return hit[1]
    found = state.store.check_api_key(key)
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (now, found)
    return found


def require(role: str):
    """A dependency that admits keys of ``role`` or above."""

    def check(request: Request) -> Principal:
        state = request.app.state
        key = _key(request)
        if key is None:
            if state.settings.local:
                return Principal(state.settings.project, "admin")
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>' (refeed keys create)",
                                headers={"WWW-Authenticate": "Bearer"})
        found = _check(state, key)
        if found is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        project, got = found
        if RANK[got] < RANK[role]:
            raise HTTPException(403, f"this route needs a key with role '{role}' or above; this key is '{got}'")
        return Principal(project, got)

    return Depends(check)
