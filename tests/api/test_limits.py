"""Limits (issue 11, hardening 2): nesting depth, body size (413, before the body is read: the server's
memory stays flat under a 50 MB critique), per-field text length, and non-finite numbers (422)."""

# ruff: noqa: UP031  (raw JSON bodies: %s keeps their braces readable; json.dumps cannot write 1e999)

from __future__ import annotations

import socket
import time
from pathlib import Path

from refeed.store.checks import MAX_TEXT


def _interaction(server) -> str:
    with server.client(server.ingest) as c:
        r = c.post("/v1/interactions", json={"messages": [{"role": "user", "content": "q"}], "completion": "a"})
    return r.json()["id"]


def _raw(server, body: str, path: str = "/v1/feedback", key: str | None = None):
    with server.client(key or server.admin) as c:
        return c.post(path, content=body.encode(), headers={"content-type": "application/json"})


def test_a_deeply_nested_body_is_a_422_not_a_500(server):
    iid = _interaction(server)
    deep = '{"kind": "critique", "interaction_id": "%s", "text": "x", "junk": %s1%s}' % (iid, "[" * 600, "]" * 600)
    assert len(deep) < 1400
    r = _raw(server, deep)
    assert r.status_code == 422 and "deeper than" in r.text, r.text
    inside = '{"messages": [{"role": "user", "content": "q"}], "completion": "a", "metadata": %s}' % (
        '{"a": ' * 35 + "1" + "}" * 35)  # fmt: skip
    r = _raw(server, inside, "/v1/interactions", server.ingest)  # under the body limit, over the stored one
    assert r.status_code == 422 and "nested deeper than 32" in r.text, r.text


def test_non_finite_numbers_are_refused(server, store):
    iid = _interaction(server)
    before = store.stats()
    for number in ("1e999", "NaN", "Infinity", "-Infinity"):
        r = _raw(server, '{"kind": "rating", "interaction_id": "%s", "score": %s, "scale": [-1e999, 1e999]}'
                 % (iid, number))  # fmt: skip
        assert r.status_code == 422 and "finite" in r.text, (number, r.text)
        r = _raw(server, '{"kind": "signal", "interaction_id": "%s", "signal": "dwell", "value": %s}' % (iid, number))
        assert r.status_code == 422 and '"value"' in r.text and "Infinity" not in r.text, (number, r.text)
        r = _raw(server, '{"messages": [{"role": "user", "content": "q"}], "completion": "a", '
                 '"params": {"t": %s}}' % number, "/v1/interactions", server.ingest)  # fmt: skip
        assert r.status_code == 422 and "params.t" in r.text, (number, r.text)
    assert store.stats() == before
    with server.client(server.admin) as c:
        assert "Infinity" not in c.get("/v1/export").text


def test_a_text_over_the_field_limit_is_a_422(server, store):
    iid = _interaction(server)
    r = _raw(server, '{"kind": "critique", "interaction_id": "%s", "text": "%s"}' % (iid, "x" * (MAX_TEXT + 1)))
    assert r.status_code == 422 and "'text'" in r.text and str(MAX_TEXT) in r.text, r.text[:300]


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def _post_raw(port: int, head: bytes, chunks) -> bytes:
    """Send a request by hand (so the test decides how much body goes out) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        try:
            for chunk in chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest: what we want
        s.settimeout(30)
        out = b""
        while b"\r\n\r\n" not in out:
            got = s.recv(65536)
            if not got:
                break
            out += got
        return out


def test_a_50_mb_critique_gets_a_413_before_it_is_read(server):
    port = int(server.base.rsplit(":", 1)[1])
    rss_before = _rss_kib(server.proc.pid)
    size = 50 * 1024 * 1024
    head = (f"POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.feedback}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()  # fmt: skip
    start = time.monotonic()
    reply = _post_raw(port, head, [b'{"kind": "critique", "text": "' + b"x" * 65536])
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    # Chunked, no Content-Length: counted as it arrives and cut off at the limit (8 MiB by default).
    head = head.replace(f"Content-Length: {size}".encode(), b"Transfer-Encoding: chunked")
    chunk = b"x" * (1024 * 1024)
    framed = (b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(50))
    reply = _post_raw(port, head, framed)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert time.monotonic() - start < 30
    assert _rss_kib(server.proc.pid) - rss_before < 64 * 1024  # never held 50 MB (1 GB before the limit)
