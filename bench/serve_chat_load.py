"""Feedback latency while the model is busy: ``POST /v1/feedback`` with 24 chats in flight.

    .venv/bin/python bench/serve_chat_load.py                    # this tree's server, SQLite, loopback only
    .venv/bin/python bench/serve_chat_load.py --server-root /path/to/other/checkout --label before

Starts a real ``refeed serve`` (uvicorn, the built-in tiny model, SQLite) and keeps ``--chats`` (24)
non-streamed chat completions in flight all the time (``max_tokens`` 64, EOS suppressed with
``logit_bias`` so each runs its full length), then sends feedback writes one at a time (a thumbs each,
its own idempotency key) for ``--requests`` writes or ``--seconds``, and reports their p50 / p99 / max
latency, next to the same writes with no chat running. The goal (issue 11, hardening 6) is a
feedback p99 under 50 ms with 24 chats in flight. Also reports the chats answered, 429s (the
generation queue's limit, ``--max-queue``) and completion tokens/s. Every 2xx feedback is checked to
be a stored row. Writes bench/results/serve_chat_load.json (one entry per ``--label``).

``--server-root`` runs the server from another checkout (its ``refeed`` package), for a before /
after comparison on the same machine; ``--max-queue`` is passed only to a server that has it.
The client is a minimal HTTP/1.1 client on asyncio streams, so little of the shared CPU is the
client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETUP = """import json, sys
from refeed.store import Store
store = Store(sys.argv[1])
keys = {role: store.create_api_key("default", role) for role in ("feedback", "ingest", "admin")}
print(json.dumps([keys, [store.log([{"role": "user", "content": f"q{i}"}], f"a{i}") for i in range(100)]]))
"""


async def _post(reader, writer, path: str, key: str, body: dict) -> tuple[int, bytes]:
    """One request on a keep-alive connection: (status, body)."""
    data = json.dumps(body).encode()
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


async def _chatter(port: int, key: str, body: dict, stats: dict, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            status, answer = await _post(reader, writer, "/v1/chat/completions", key, body)
            stats["codes"][status] = stats["codes"].get(status, 0) + 1
            if status == 200:
                stats["tokens"] += json.loads(answer)["usage"]["completion_tokens"]
            else:
                await asyncio.sleep(0.05)
    finally:
        writer.close()


async def _feedback(port: int, key: str, targets: list[str], n: int, seconds: float, tag: str) -> tuple[list, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lat, codes, deadline = [], {}, time.perf_counter() + seconds
    try:
        for i in range(n):
            if time.perf_counter() > deadline:
                break
            body = {"kind": "thumbs", "interaction_id": targets[i % len(targets)], "up": i % 2 == 0,
                    "idempotency_key": f"{tag}-{i}"}
            t = time.perf_counter()
            status, _ = await _post(reader, writer, "/v1/feedback", key, body)
            lat.append(time.perf_counter() - t)
            codes[status] = codes.get(status, 0) + 1
            await asyncio.sleep(0.01)  # a steady stream of writes, not a tight loop competing for the GIL
    finally:
        writer.close()
    return lat, codes


def _summary(lat: list[float], codes: dict) -> dict:
    lat = sorted(lat)
    return {"requests": len(lat), "status_codes": {str(k): v for k, v in codes.items()},
            "p50_ms": round(1000 * statistics.median(lat), 2), "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2),
            "max_ms": round(1000 * lat[-1], 2)}


async def _measure(port, keys, targets, args) -> dict:
    idle = _summary(*await _feedback(port, keys["feedback"], targets, args.idle_requests, args.seconds, "idle"))
    stats, stop = {"codes": {}, "tokens": 0}, asyncio.Event()
    body = {"messages": [{"role": "user", "content": "count to ten: 1 2 3"}], "max_tokens": 64,
            "temperature": 1.0, "logit_bias": {"3": -100}}  # 3: the tiny tokenizer's <|im_end|>
    chats = [asyncio.create_task(_chatter(port, keys["ingest"], body, stats, stop)) for _ in range(args.chats)]
    await asyncio.sleep(args.warmup)  # every chat is queued or generating by now
    t0 = time.perf_counter()
    busy = _summary(*await _feedback(port, keys["feedback"], targets, args.requests, args.seconds, "busy"))
    wall = time.perf_counter() - t0
    done_before = dict(stats["codes"])
    stop.set()
    await asyncio.gather(*chats)
    return {"idle": idle, "with_chats": busy, "chats_in_flight": args.chats, "feedback_seconds": round(wall, 2),
            "chat_status_codes": {str(k): v for k, v in stats["codes"].items()},
            "chats_answered_during_feedback": done_before.get(200, 0),
            "completion_tokens_per_s": round(stats["tokens"] / (time.perf_counter() - t0), 1)}


def run(args) -> dict:
    from refeed.models.tiny import write_tiny_model
    from tests.api.conftest import free_port

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/feedback.db"
        port, root = free_port(), Path(args.server_root or ROOT)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root)}
        # keys and targets written by the server's own checkout, whose migrations the database then has
        keys, targets = json.loads(subprocess.run([sys.executable, "-c", SETUP, url], cwd=root, env=env,
                                                  capture_output=True, text=True, check=True).stdout)
        extra = ["--max-queue", str(args.max_queue)] if "--max-queue" in (root / "refeed/cli/serve.py").read_text() else []
        cmd = [sys.executable, "-m", "refeed", "serve", "--model", str(write_tiny_model(Path(tmp) / "tiny")),
               "--store", url, "--host", "127.0.0.1", "--port", str(port), "--max-tokens", "64", *extra]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            _wait(port, proc)
            result = asyncio.run(_measure(port, keys, targets, args))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        ok = sum(v for k, v in {**result["idle"]["status_codes"]}.items() if k.startswith("2")) + sum(
            v for k, v in result["with_chats"]["status_codes"].items() if k.startswith("2"))
        with sqlite3.connect(f"{tmp}/feedback.db") as db:
            stored = db.execute("SELECT count(*) FROM feedback").fetchone()[0]
    assert stored == ok, f"{ok} feedback requests got a 2xx but {stored} rows are stored"
    return {**result, "server_root": str(root), "max_queue": args.max_queue if extra else None,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, client and server on the same cores, "
                       "shared with other agents' work",
            "load_average_1m_before": args.load_before, "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _wait(port: int, proc) -> None:
    import httpx

    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("refeed serve exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("refeed serve did not come up within 120 s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chats", type=int, default=24)
    p.add_argument("--requests", type=int, default=400, help="feedback writes with the chats in flight")
    p.add_argument("--idle-requests", type=int, default=100, help="feedback writes with no chat running")
    p.add_argument("--seconds", type=float, default=30.0, help="bound on each feedback phase")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--server-root", default=None, help="run the server from this checkout")
    p.add_argument("--label", default="after")
    args = p.parse_args()
    args.load_before = round(os.getloadavg()[0], 2)
    result = run(args)
    print(json.dumps(result, indent=1))
    out = ROOT / "bench/results/serve_chat_load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved[args.label] = result
    out.write_text(json.dumps(saved, indent=1) + "\n")


if __name__ == "__main__":
    main()
