"""``create_app(settings)``: the FastAPI app that ``refeed serve`` runs (API, OpenAPI spec, web UI)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from refeed.api.group_commit import GroupWriter
from refeed.api.settings import ServeSettings
from refeed.store import IdempotencyConflict, NotFound, Store, StoreError, ValidationFailed


def create_app(settings: ServeSettings, store: Store | None = None, backend=None) -> FastAPI:
    """The app; ``store`` and ``backend`` are built from ``settings`` unless given."""
    settings.check()
    app = FastAPI(title="refeed", version="0.1.0",
                  description="OpenAI-compatible chat that logs every answer, and feedback of every kind on it.")
    app.state.settings = settings
    app.state.store = store or Store(settings.store_url, project=settings.project)
    app.state.backend = backend or _backend(settings)
    app.state.writer = GroupWriter(app.state.store)  # concurrent feedback writes share one commit
    app.state.key_cache = {}  # auth.py: key -> (checked at, result)

    from refeed.api.routes import chat, data, feedback
    from refeed.ui import routes as ui

    for module in (chat, feedback, data, ui):
        app.include_router(module.router)

    @app.exception_handler(StoreError)
    def store_error(request: Request, exc: StoreError):
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, IdempotencyConflict) else (
            422 if isinstance(exc, ValidationFailed) else 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict:
        return {"ok": True}

    return app


def _backend(settings: ServeSettings):
    from refeed.api.backends import LocalBackend, UpstreamBackend

    if settings.model:
        return LocalBackend(settings.model, settings.model_name)
    return UpstreamBackend(settings.upstream, settings.upstream_api_key, settings.model_name)
