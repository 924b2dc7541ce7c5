"""ASGI middleware guarding the app: request bodies (size and deadline), the API key, and
the metrics of every request (client disconnects included, as 499).

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` runs
each request through extra streams and a task group, which costs time on every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect

__all__ = ["ApiKeyGuard", "BodyGuard", "Metrics", "reject"]

#: Paths answered without the API key: the page (it asks for the key and sends it with its
#: own requests) and the probes an orchestrator polls.
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz"})
DISCONNECTED = 499  # nginx's code for "the client closed the connection": not a server error


class BodyTooLarge(Exception):
    """The body passed the upload limit (413)."""


class BodyTimeout(Exception):
    """The body did not arrive in time (408)."""


async def reject(
    send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``status`` with ``{"detail": ...}`` (the connection is closed afterwards when
    the request's body was not read: see :class:`BodyGuard`)."""
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def _has_body(scope: dict) -> bool:
    headers = dict(scope.get("headers", []))
    length = headers.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return b"transfer-encoding" in headers


class BodyGuard:
    """The request body's size and deadline, and the connection after an early answer.

    - over ``limit`` bytes: 413, before the body is read when ``Content-Length`` says so,
      else as soon as a chunked body passes the limit;
    - the body must arrive within ``timeout`` seconds, plus one second per ``min_rate``
      bytes received (a slow but steady upload of a large file goes on; one trickling a byte
      a second does not): 408 otherwise, and the connection is dropped;
    - a response sent before the body was read to its end (401, 408, 413, 503, ...) closes
      the connection (``Connection: close``): uvicorn would otherwise read, and wait for, the
      rest of a body nobody wants.

    The deadline only runs while the body is being read: after it, ``receive`` is what
    Starlette waits on for a disconnect and is left alone."""

    def __init__(self, app: Any, *, limit: int, timeout: float, min_rate: float) -> None:
        self.app, self.limit, self.timeout, self.min_rate = app, limit, timeout, min_rate

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        too_large = f"upload over the limit of {self.limit} bytes"
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await reject(send, 413, too_large, [(b"connection", b"close")])
        loop = asyncio.get_running_loop()
        start = loop.time()
        seen = 0
        body_done = not _has_body(scope)
        started = False

        async def guarded() -> dict:
            nonlocal seen, body_done
            if body_done:
                return await receive()
            left = start + self.timeout + seen / self.min_rate - loop.time()
            if left <= 0:
                raise BodyTimeout
            try:
                async with asyncio.timeout(left):  # (no task per call, unlike wait_for)
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
                body_done = not message.get("more_body", False)
            else:  # http.disconnect
                body_done = True
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not body_done:
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        try:
            await self.app(scope, guarded, tracked_send)
        except BodyTooLarge:
            if not started:
                await reject(send, 413, too_large, [(b"connection", b"close")])
        except BodyTimeout:
            if not started:
                await reject(
                    send,
                    408,
                    f"the upload did not arrive in time ({seen} bytes received)",
                    [(b"connection", b"close")],
                )


def _digest(value: str | bytes) -> bytes:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()


def presented_key(headers: dict[bytes, bytes]) -> bytes | None:
    """The key a request carries: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = headers.get(b"authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            return value.strip()
    key = headers.get(b"x-api-key")
    return key.strip() if key is not None else None


class ApiKeyGuard:
    """401 (with ``WWW-Authenticate``) for a request to anything but :data:`OPEN_PATHS`
    without the key. The comparison takes the same time whatever the key sent (both sides
    hashed, then :func:`hmac.compare_digest`), so timing tells nothing about the key."""

    def __init__(self, app: Any, *, key: str) -> None:
        self.app, self.key = app, _digest(key)

    def allowed(self, headers: dict[bytes, bytes]) -> bool:
        given = presented_key(headers)
        return given is not None and hmac.compare_digest(_digest(given), self.key)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if not self.allowed(dict(scope.get("headers", []))):
            return await reject(
                send,
                401,
                "this server needs an API key: send Authorization: Bearer <key> "
                "or X-API-Key: <key>",
                [(b"www-authenticate", b'Bearer realm="earmark"')],
            )
        await self.app(scope, receive, send)


class Metrics:
    """``observe(endpoint, status, seconds)`` for every HTTP request. Paths that are not the
    app's endpoints are counted as ``other`` (a client must not be able to grow the metrics
    without bound). A client that goes away before its answer is counted as 499, and its
    disconnect ends the request quietly (no traceback, no 500)."""

    def __init__(
        self, app: Any, *, observe: Callable[[str, int, float], None], endpoints: frozenset[str]
    ) -> None:
        self.app, self.observe, self.endpoints = app, observe, endpoints

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def tracked(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            status = DISCONNECTED
        finally:
            path = scope["path"] if scope["path"] in self.endpoints else "other"
            self.observe(path, status, time.perf_counter() - t0)
