"""Store errors as HTTP answers: 404 for an id not in the caller's project (another project's data looks
absent), 409 for an idempotency key reused with another body, 422 for a rule broken (the message names
the field and the rule), 400 for anything else the store refuses. Nothing is written in any case:
every store write is one transaction."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from refeed.store import IdempotencyConflict, NotFound, StoreError, ValidationFailed

STATUS = ((NotFound, 404), (IdempotencyConflict, 409), (ValidationFailed, 422))


def install(app: FastAPI) -> None:
    @app.exception_handler(StoreError)
    def store_error(request: Request, exc: StoreError):
        status = next((code for cls, code in STATUS if isinstance(exc, cls)), 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)
