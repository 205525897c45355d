"""Errors as HTTP answers. Store errors: 404 for an id not in the caller's project (another project's
data looks absent), 409 for an idempotency key reused with another body, 422 for a rule broken (the
message names the field and the rule), 503 (with ``Retry-After``) when the database is down, 400 for
anything else the store refuses. Request validation:
422 listing each field and rule. Nothing is written in any case: every store write is one transaction.

Error bodies are ASCII JSON: they echo the caller's input, which may hold text that UTF-8 cannot
encode (a lone surrogate escaped in the request's JSON); the default renderer would fail on it with
a 500 instead of the 422.
"""

from __future__ import annotations

import json
import math

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

from refeed.store import IdempotencyConflict, NotFound, StoreError, ValidationFailed
from refeed.store.errors import Unavailable


class UpstreamError(Exception):
    """The model server behind ``--upstream`` failed or refused: 502, or its own 400/404/422 passed on."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


STATUS = ((NotFound, 404), (IdempotencyConflict, 409), (ValidationFailed, 422), (Unavailable, 503))
RETRY_AFTER = {"Retry-After": "1"}  # with a 503: the database is down; retry with the same idempotency key


class AsciiJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        except ValueError:  # an echoed input held inf or NaN, which JSON cannot carry: as strings
            text = json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":"))
        return text.encode("ascii")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def install(app: FastAPI) -> None:
    @app.exception_handler(StoreError)
    def store_error(request: Request, exc: StoreError):
        status = next((code for cls, code in STATUS if isinstance(exc, cls)), 400)
        headers = RETRY_AFTER if status == 503 else None
        return AsciiJSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(DBAPIError)
    def database_error(request: Request, exc: DBAPIError):
        """A read that met the database down answers 503, like a write (``Unavailable``)."""
        if isinstance(exc, DataError):
            return AsciiJSONResponse({"detail": f"the database refused a value: {exc.orig}"}, status_code=422)
        if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
            return AsciiJSONResponse(
                {"detail": "the database is unavailable; retry"}, status_code=503, headers=RETRY_AFTER
            )
        raise exc

    @app.exception_handler(UpstreamError)
    def upstream_error(request: Request, exc: UpstreamError):
        return AsciiJSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError):
        return AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
