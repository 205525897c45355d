"""``refeed serve``: the OpenAI-compatible endpoint, the feedback API and the web UI in one server."""

from __future__ import annotations

import os

import click

from refeed.cli import main
from refeed.cli._common import model_option


@main.command()
@model_option("a local model directory (written by save_pretrained) or hub id to serve")
@click.option("--upstream", default=None, help="base URL of an OpenAI-compatible server to sit in front of")
@click.option(
    "--upstream-api-key",
    default=lambda: os.environ.get("REFEED_UPSTREAM_API_KEY"),
    show_default="$REFEED_UPSTREAM_API_KEY",
)
@click.option(
    "--store",
    "store_url",
    default=lambda: os.environ.get("REFEED_STORE_URL", "sqlite:///feedback.db"),
    show_default="$REFEED_STORE_URL or sqlite:///feedback.db",
)
@click.option("--project", default="default", show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--local", is_flag=True, help="bind 127.0.0.1 only; every request acts as admin, any key or none")
@click.option(
    "--init-admin-key", is_flag=True, help="create an admin key for --project if it has none, and print it once"
)
@click.option("--model-name", default=None, help="the model id /v1/models reports")
@click.option("--chat-template", default="", help="a named template (chatml, llama3, ...) or a Jinja file, for a "
              "model whose tokenizer has none (as model.chat_template= in train)")
@click.option(
    "--token-secret",
    default=lambda: os.environ.get("REFEED_TOKEN_SECRET"),
    show_default="$REFEED_TOKEN_SECRET",
    help="signs browser feedback tokens; unset: random per process (tokens end at restart)",
)
@click.option("--max-tokens", default=256, show_default=True, type=int, help="default max_tokens per answer")
@click.option("--max-queue", default=64, show_default=True, type=click.IntRange(min=1),
              help="local generations running or waiting; one more is answered 429")
@click.option(
    "--max-body-bytes",
    default=lambda: int(os.environ.get("REFEED_MAX_BODY_BYTES", 8 * 1024 * 1024)),
    show_default="$REFEED_MAX_BODY_BYTES or 8 MiB",
    type=int,
    help="a request body larger than this gets a 413",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    default=lambda: [h for h in os.environ.get("REFEED_ALLOWED_HOSTS", "").split(",") if h.strip()],
    show_default="$REFEED_ALLOWED_HOSTS (comma-separated)",
    help="a Host name to serve besides localhost/127.0.0.1/[::1] (DNS rebinding guard); '*' for any",
)
def serve(
    model_path,
    upstream,
    upstream_api_key,
    store_url,
    project,
    host,
    port,
    local,
    init_admin_key,
    model_name,
    chat_template,
    token_secret,
    max_tokens,
    max_queue,
    max_body_bytes,
    allowed_hosts,
):
    """Serve a model (or proxy one), log every answer, and collect feedback on it.

    \b
    Example:
      refeed serve --model "$(refeed pretrain)" --local   # the built-in model: pretrain prints its directory
      refeed serve --upstream http://127.0.0.1:8000/v1 --init-admin-key --port 8080
    """
    import uvicorn

    from refeed.api import ServeSettings, create_app
    from refeed.store import Store

    settings = ServeSettings(
        store_url=store_url,
        model=model_path,
        upstream=upstream,
        upstream_api_key=upstream_api_key,
        model_name=model_name,
        chat_template=chat_template,
        local=local,
        project=project,
        max_tokens=max_tokens,
        max_queue=max_queue,
        token_secret=token_secret,
        max_body_bytes=max_body_bytes,
        allowed_hosts=tuple(h.strip() for h in allowed_hosts),
    )
    try:
        settings.check()
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    store = Store(store_url, project=project)
    if init_admin_key:
        _init_admin_key(store, project)
    if local:
        host = "127.0.0.1"
    elif not store.has_api_key(project, "admin"):
        raise click.UsageError(
            f"no admin key exists for project '{project}': refeed has no default secret. Run once with "
            "--init-admin-key (or `refeed keys create --role admin`), or use --local for a 127.0.0.1-only server"
        )
    try:
        app = create_app(settings, store=store)
    except (ValueError, OSError) as e:  # a model that cannot serve (no chat template, not a model directory)
        raise click.UsageError(str(e)) from None
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _init_admin_key(store, project: str) -> None:
    """An admin key only for a project that has none: a restart with the same flag makes no new one."""
    if store.has_api_key(project, "admin"):
        click.echo(
            f"project '{project}' already has an admin key; none created (`refeed keys create --role admin` "
            "makes another, `refeed keys revoke` ends one)"
        )
        return
    click.echo(f"admin key for project '{project}' (shown once): {store.create_api_key(project, 'admin')}")
