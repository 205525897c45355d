"""Real ``refeed serve`` processes (uvicorn on a free port), with keys for two projects: one without a model
for the fast tests, one on the tiny model for chat."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from refeed.store import Store
from tests.conftest import fresh_pg_database

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    base: str
    store_url: str
    admin: str
    ingest: str
    feedback: str
    other_admin: str  # admin of another project
    proc: subprocess.Popen

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NO_UPSTREAM = "http://127.0.0.1:9/v1"  # nothing listens there: a server for everything but chat answers


def start_server(
    model_dir, store_url: str, port: int, *extra: str, upstream: str = NO_UPSTREAM, env: dict | None = None
) -> subprocess.Popen:
    """``refeed serve`` on ``port``: the tiny model at ``model_dir``, or (None) no model at all, which starts
    in a second instead of loading torch, in front of ``upstream``; its output goes to a file, so a chatty server never blocks on a
    full pipe."""
    backend = ["--model", str(model_dir)] if model_dir is not None else ["--upstream", upstream]
    cmd = [sys.executable, "-m", "refeed", "serve", *backend, "--store", store_url, "--host", "127.0.0.1",
           "--port", str(port), "--max-tokens", "12", *extra]  # fmt: skip
    log = tempfile.NamedTemporaryFile("w+", prefix="refeed-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})  # fmt: skip
    proc.log_path = log.name
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"refeed serve exited early:\n{Path(log.name).read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("refeed serve did not come up within 90 s")


def make_keys(store_url: str) -> dict[str, str]:
    store = Store(store_url)
    keys = {role: store.create_api_key("default", role) for role in ("admin", "ingest", "feedback")}
    keys["other_admin"] = store.create_api_key("other", "admin")
    store.close()
    return keys


def _serve(tmp_path_factory, model_dir):
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'feedback.db'}"
    keys = make_keys(url)
    port = free_port()
    proc = start_server(model_dir, url, port)
    yield Server(f"http://127.0.0.1:{port}", url, keys["admin"], keys["ingest"], keys["feedback"],
                 keys["other_admin"], proc)  # fmt: skip
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A server without a model (starts in about a second): auth, feedback, reads, everything but answers."""
    yield from _serve(tmp_path_factory, None)


@pytest.fixture(scope="session")
def model_server(tmp_path_factory, tiny_model_dir):
    """A server answering chat with the tiny model (torch; several seconds to start: tests using it are slow)."""
    yield from _serve(tmp_path_factory, tiny_model_dir)


def backend_url(request, tmp_path_factory, name: str = "feedback.db") -> str:
    """A new database on the backend ``request.param`` names: sqlite or postgresql (the session's server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('serve') / name}"
    return fresh_pg_database(request.getfixturevalue("pg_server_url"))


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_server(request, tmp_path_factory):
    """A server without a model, on SQLite and on PostgreSQL (tests using it run on both)."""
    url = backend_url(request, tmp_path_factory)
    keys = make_keys(url)
    port = free_port()
    proc = start_server(None, url, port)
    yield Server(f"http://127.0.0.1:{port}", url, keys["admin"], keys["ingest"], keys["feedback"],
                 keys["other_admin"], proc)  # fmt: skip
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def store(server):
    s = Store(server.store_url)
    yield s
    s.close()


@pytest.fixture
def model_store(model_server):
    s = Store(model_server.store_url)
    yield s
    s.close()
