"""``create_app(settings)``: the FastAPI app that ``refeed serve`` runs (API, OpenAPI spec, web UI)."""

from __future__ import annotations

import secrets

from fastapi import FastAPI

from refeed.api import errors
from refeed.api.group_commit import GroupWriter
from refeed.api.guard import Guard
from refeed.api.settings import ServeSettings
from refeed.store import Store


def create_app(settings: ServeSettings, store: Store | None = None, backend=None) -> FastAPI:
    """The app; ``store`` and ``backend`` are built from ``settings`` unless given."""
    settings.check()
    app = FastAPI(
        title="refeed",
        version="0.1.0",
        description="OpenAI-compatible chat that logs every answer, and feedback of every kind on it.",
    )
    app.state.settings = settings
    app.state.store = store or Store(settings.store_url, project=settings.project)
    app.state.backend = backend or _backend(settings)
    app.state.writer = GroupWriter(app.state.store)  # concurrent feedback writes share one commit
    app.state.key_cache = {}  # auth.py: key -> (checked at, result)
    app.state.token_secret = (settings.token_secret or secrets.token_hex(32)).encode()

    from refeed.api.routes import annotation, chat, data, feedback, keys, overview
    from refeed.ui import routes as ui

    for module in (chat, feedback, data, keys, annotation, overview, ui):
        app.include_router(module.router)

    errors.install(app)
    app.add_middleware(Guard, settings=settings)  # Host, body size and nesting, before any route

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict:
        return {"ok": True}

    return app


def _backend(settings: ServeSettings):
    from refeed.api.backends import LocalBackend, UpstreamBackend

    if settings.model:
        return LocalBackend(settings.model, settings.model_name, settings.max_queue, settings.chat_template)
    return UpstreamBackend(settings.upstream, settings.upstream_api_key, settings.model_name)
