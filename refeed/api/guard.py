"""What every request passes before any route sees it: the Host header, the body's size and nesting.

An ASGI middleware, so a refused body is never parsed and never held whole:

- **Host** (DNS rebinding): a page on ``attacker.example`` that resolves to 127.0.0.1 would reach a
  ``--local`` server, which needs no key, with ``Host: attacker.example``. In local mode only
  ``localhost``, ``127.0.0.1``, ``[::1]`` and the ``--allowed-host`` names are served; with keys
  required, any host is, unless ``--allowed-host`` names some (then those and the loopback names).
  Another host gets a 400.
- **Size**: a ``Content-Length`` over ``max_body_bytes`` gets a 413 before a byte is read; a chunked
  body is counted as it arrives and cut off with a 413 at the limit.
- **Nesting**: a body nested deeper than ``max_json_depth`` gets a 422 before it is parsed (the JSON
  parser and the validators recurse, and a 1 kB body 600 deep would end in a ``RecursionError``).
"""

from __future__ import annotations

import json
import re

LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def json_depth(body: bytes, limit: int) -> int:
    """How deep the JSON text ``body`` nests, counting up to ``limit + 1`` (strings skipped)."""
    depth = top = 0
    for b in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if b in _OPEN:
            depth += 1
            if depth > top:
                top = depth
                if top > limit:
                    break
        else:
            depth -= 1
    return top


def host_name(header: str) -> str:
    """The host of a Host header without its port: ``[::1]:8080`` -> ``[::1]``, ``a.b:80`` -> ``a.b``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    def __init__(self, app, settings):
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_depth = settings.max_json_depth
        named = {host_name(h) for h in settings.allowed_hosts}
        self.hosts = None if "*" in named or (not named and not settings.local) else LOOPBACK | named

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.hosts is not None and host_name(headers.get("host", "")) not in self.hosts:
            return await _refuse(send, 400, f"Host {headers.get('host', '')!r} is not served here: DNS "
                                 "rebinding guard; start the server with --allowed-host NAME to serve it")  # fmt: skip
        if "content-length" not in headers and "transfer-encoding" not in headers:
            return await self.app(scope, receive, send)
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            return await _refuse(send, 400, "Content-Length is not a number")
        if declared > self.max_body:
            return await _refuse(send, 413, self._too_large(declared))
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await _refuse(send, 413, self._too_large(len(body)))
        if b"[" in body or b"{" in body:
            if json_depth(bytes(body), self.max_depth) > self.max_depth:
                return await _refuse(send, 422, f"the body nests deeper than {self.max_depth} levels")
        return await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self, size: int) -> str:
        return (f"the body is {size} bytes; this server takes at most {self.max_body} "
                "(refeed serve --max-body-bytes, $REFEED_MAX_BODY_BYTES)")  # fmt: skip


def _replay(body: bytes, receive):
    """A ``receive`` that hands the app the body once, then waits on the client (disconnects)."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
