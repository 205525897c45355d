"""Errors as HTTP answers. Store errors: 404 for an id not in the caller's project (another project's
data looks absent), 409 for an idempotency key reused with another body, 422 for a rule broken (the
message names the field and the rule), 400 for anything else the store refuses. Request validation:
422 listing each field and rule. Nothing is written in any case: every store write is one transaction.

Error bodies are ASCII JSON: they echo the caller's input, which may hold text that UTF-8 cannot
encode (a lone surrogate escaped in the request's JSON); the default renderer would fail on it with
a 500 instead of the 422.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from refeed.store import IdempotencyConflict, NotFound, StoreError, ValidationFailed


class UpstreamError(Exception):
    """The model server behind ``--upstream`` failed or refused: 502, or its own 400/404/422 passed on."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


STATUS = ((NotFound, 404), (IdempotencyConflict, 409), (ValidationFailed, 422))


class AsciiJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def install(app: FastAPI) -> None:
    @app.exception_handler(StoreError)
    def store_error(request: Request, exc: StoreError):
        status = next((code for cls, code in STATUS if isinstance(exc, cls)), 400)
        return AsciiJSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(UpstreamError)
    def upstream_error(request: Request, exc: UpstreamError):
        return AsciiJSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError):
        return AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
