"""A real ``refeed serve`` process (uvicorn on a free port) on the tiny model, with keys for two projects."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from refeed.store import Store

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


def start_server(model_dir, store_url: str, port: int, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "refeed",
        "serve",
        "--model",
        str(model_dir),
        "--store",
        store_url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-tokens",
        "12",
        *extra,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"refeed serve exited early:\n{proc.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("refeed serve did not come up within 90 s")


def make_keys(store_url: str) -> dict[str, str]:
    store = Store(store_url)
    keys = {role: store.create_api_key("default", role) for role in ("admin", "ingest", "feedback")}
    keys["other_admin"] = store.create_api_key("other", "admin")
    store.close()
    return keys


@pytest.fixture(scope="session")
def server(tmp_path_factory, tiny_model_dir):
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'feedback.db'}"
    keys = make_keys(url)
    port = free_port()
    proc = start_server(tiny_model_dir, url, port)
    yield Server(
        f"http://127.0.0.1:{port}",
        url,
        keys["admin"],
        keys["ingest"],
        keys["feedback"],
        keys["other_admin"],
        proc,
    )
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def store(server):
    s = Store(server.store_url)
    yield s
    s.close()
