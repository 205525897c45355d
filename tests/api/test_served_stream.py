"""A stream the client stops reading is logged (finish reason ``aborted``) and takes feedback on its id;
local generation waits in its own bounded queue, and a request beyond it is answered 429 at once."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from refeed.models.tiny import IM_END, SPECIAL_TOKENS, TinyConfig, write_tiny_model
from refeed.store import Store
from refeed.store.tokens import rollouts
from tests.api.conftest import free_port, make_keys, start_server

pytestmark = pytest.mark.slow  # a server of its own on a long-context tiny model
CHAT = [{"role": "user", "content": "count: 1 2 3"}]
NO_EOS = {str(SPECIAL_TOKENS.index(IM_END)): -100}  # generation runs to max_tokens


@pytest.fixture(scope="module")
def long_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    model = write_tiny_model(root / "long-model", TinyConfig(max_position_embeddings=4096))
    url = f"sqlite:///{root / 'feedback.db'}"
    keys = make_keys(url)
    port = free_port()
    proc = start_server(model, url, port, "--max-tokens", "3000", "--max-queue", "2")
    yield f"http://127.0.0.1:{port}", url, keys["ingest"]
    proc.terminate()
    proc.wait(timeout=20)


def test_a_stopped_stream_is_logged_as_aborted_and_takes_feedback(long_server):
    base, url, key = long_server
    auth = {"Authorization": f"Bearer {key}"}
    body = {"messages": CHAT, "max_tokens": 3000, "logit_bias": NO_EOS, "stream": True}
    seen = ""
    with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            iid = r.headers["x-refeed-interaction-id"]
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    seen += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                if len(seen) >= 5:
                    break  # the client stops reading and closes the connection
        store, deadline = Store(url), time.time() + 30
        while not (found := rollouts(store, [iid])) and time.time() < deadline:
            time.sleep(0.2)
        r = found[iid]
        assert r.finish_reason == "aborted" and 5 <= len(r.completion_ids) < 3000
        assert r.completion.startswith(seen) and len(r.logprobs) == len(r.completion_ids)
        assert store.get_interaction(iid).metadata["finish_reason"] == "aborted"
        fb = c.post("/v1/feedback", json={"kind": "thumbs", "interaction_id": iid, "up": False})
        assert fb.status_code == 201, fb.text


def test_generation_beyond_the_queue_limit_is_a_429(long_server):
    base, url, key = long_server
    body = {"messages": CHAT, "max_tokens": 300, "logit_bias": NO_EOS}
    results: list[httpx.Response] = []

    def ask():
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            results.append(c.post("/v1/chat/completions", json=body))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 2 and codes.count(429) >= 1 and set(codes) <= {200, 429}, codes
    assert all("busy" in r.json()["detail"] for r in results if r.status_code == 429)
    store = Store(url)
    done = [r.json()["refeed"]["interaction_id"] for r in results if r.status_code == 200]
    assert all(len(t.completion_ids) == 300 for t in rollouts(store, done).values())
