"""Keys of the caller's project, managed over HTTP by its admins: list, create (the plaintext is shown
once), revoke. ``GET /v1/whoami`` tells any key its project and role. Projects themselves are made
with ``refeed keys create --project NAME`` (a key never reaches beyond its own project)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict

from refeed.api.auth import Principal, require

router = APIRouter(prefix="/v1", tags=["keys"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["feedback", "ingest", "admin"]


class KeyCreated(BaseModel):
    key: str  # shown once; the store keeps only its hash
    prefix: str
    role: str


@router.get("/whoami")
def whoami(who: Principal = require("feedback")) -> dict:
    return {"project": who.project, "role": who.role}


@router.get("/keys")
def list_keys(request: Request, who: Principal = require("admin")) -> list[dict]:
    keys = request.app.state.store.list_api_keys(who.project)
    return [
        {**k, "created_at": str(k["created_at"]), "revoked_at": k["revoked_at"] and str(k["revoked_at"])}
        for k in keys
    ]


@router.post("/keys", status_code=201, response_model=KeyCreated)
def create_key(body: KeyIn, request: Request, who: Principal = require("admin")) -> KeyCreated:
    key = request.app.state.store.create_api_key(who.project, body.role)
    return KeyCreated(key=key, prefix=key.partition(".")[0], role=body.role)


@router.delete("/keys/{prefix}", status_code=204)
def revoke_key(prefix: str, request: Request, who: Principal = require("admin")) -> Response:
    """Revoke a key of this project; other servers' caches drop it within ``auth.KEY_CACHE_SECONDS``."""
    store = request.app.state.store
    if not any(k["prefix"] == prefix and k["revoked_at"] is None for k in store.list_api_keys(who.project)):
        raise HTTPException(404, f"no active key with prefix {prefix!r} in this project")
    store.revoke_api_key(prefix)
    request.app.state.key_cache.clear()  # this server stops accepting it at once
    return Response(status_code=204)
