"""A client keeps sending feedback while the server is SIGKILLed and restarted: every feedback that got a
2xx is in the store, and none twice (the client retries with the same idempotency key)."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from refeed.store import Store
from tests.api.conftest import free_port, make_keys, start_server

N = 150


@pytest.mark.slow
def test_feedback_survives_sigkill(tmp_path, tiny_model_dir):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    keys = make_keys(url)
    store = Store(url)
    iid = store.log([{"role": "user", "content": "q"}], "a")
    port = free_port()
    proc = start_server(tiny_model_dir, url, port)
    acked, attempts = {}, [0]

    def client():
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {keys['feedback']}"},
            timeout=5,
        ) as c:
            for n in range(N):
                key = f"crash-{n}"
                while True:  # retry until acknowledged, same key every time
                    attempts[0] += 1
                    try:
                        r = c.post(
                            "/v1/feedback",
                            json={
                                "kind": "critique",
                                "interaction_id": iid,
                                "text": f"note {n}",
                                "idempotency_key": key,
                            },
                        )
                    except httpx.TransportError:
                        time.sleep(0.05)
                        continue
                    if r.status_code == 201:
                        acked[key] = r.json()["id"]
                        break
                    raise AssertionError(f"unexpected {r.status_code}: {r.text}")

    t = threading.Thread(target=client)
    t.start()
    for _ in range(2):  # kill twice mid-stream, restart on the same port
        while len(acked) < 40 * (_ + 1) and t.is_alive():
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start_server(tiny_model_dir, url, port)
    t.join(timeout=300)
    proc.terminate()
    proc.wait(timeout=20)
    assert len(acked) == N and attempts[0] > N  # some requests did fail and were retried
    rows = [f for f in Store(url).iter_feedback(kinds=["critique"])]
    assert sorted(f.idempotency_key for f in rows) == sorted(acked)  # every ack stored, none twice
    assert {f.idempotency_key: f.id for f in rows} == acked
