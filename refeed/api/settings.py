"""Server settings: where the store is, what answers chat requests, and whether keys are required."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    store_url: str = "sqlite:///feedback.db"
    model: str | None = None  # a local model directory (or hub id) served with transformers
    upstream: str | None = (
        None  # or the base URL of any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1
    )
    upstream_api_key: str | None = None
    model_name: str | None = None  # the id /v1/models reports; defaults to the directory or upstream model
    chat_template: str = ""  # a named template (chatml, llama3, ...) or a Jinja file; empty: the tokenizer's own
    local: bool = False  # local mode: bound to 127.0.0.1, every request acts as admin of `project`, key or not
    project: str = "default"
    max_tokens: int = 256
    max_queue: int = 64  # local generations running or waiting; one more is answered 429 (backends.py)
    # Signs the browser-safe feedback tokens (auth.py). Unset: a random secret per process, so tokens
    # stop working when the server restarts; set REFEED_TOKEN_SECRET to share one across processes.
    token_secret: str | None = None
    # Limits on every request (refeed/api/guard.py); defaults documented in docs/api.md.
    max_body_bytes: int = 8 * 1024 * 1024  # a larger body gets a 413 before it is read
    max_json_depth: int = 40  # a body nested deeper gets a 422 before it is parsed
    allowed_hosts: tuple[str, ...] = ()  # Host names served besides the loopback names; "*" for any

    def check(self) -> None:
        if bool(self.model) == bool(self.upstream):
            raise ValueError("serve needs exactly one of --model DIR (a local model) or --upstream URL")
        if self.chat_template and not self.model:
            raise ValueError("--chat-template formats prompts for a local --model; an upstream applies its own")
        if self.max_body_bytes < 1024 or self.max_json_depth < 8:
            raise ValueError("--max-body-bytes must be at least 1024 and the JSON depth limit at least 8")
