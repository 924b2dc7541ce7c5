"""Running the app under uvicorn with the connection limits uvicorn itself lacks, and who
may use it (the API key, the warning for a server reachable from other machines).

What uvicorn (0.55, either HTTP parser: httptools or h11) covers, and what it does not:

- ``timeout_keep_alive``: a connection idle *after a response* is closed after that many
  seconds (:attr:`ServeSettings.keep_alive`). Covered.
- A connection that never sends a byte, or sends its request line and headers slowly (a
  byte now and then), is never timed out: uvicorn arms no timer before the first request,
  and each byte received cancels the keep-alive timer. :func:`protocol_class` adds that
  deadline: the whole head of a request must arrive within
  :attr:`ServeSettings.header_timeout` seconds of the connection opening or of the previous
  response; past it the connection is closed (with 408 if part of a request came).
- The body: uvicorn hands it to the app as it comes, with no deadline; the app's
  middleware (:mod:`earmark.serve.guards`) times it out (408).
- ``limit_concurrency`` counts connections, not work, and answers 503 before the body is
  read; the app admits work itself, after the body is in (:mod:`earmark.serve.app`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

__all__ = ["exposure_warning", "is_loopback", "protocol_class", "run", "server_config"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine: ``localhost``, an address
    in 127.0.0.0/8, or ``::1``. Anything else (``0.0.0.0``, ``::``, a name, an interface's
    address) may be reachable from other machines."""
    name = host.strip().lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """A one-line warning when the server binds an address other machines may reach
    without an API key; ``None`` when it is on loopback or needs a key."""
    if api_key or is_loopback(host):
        return None
    return (
        f"warning: serving on {host} without an API key: anyone who can reach it can use the "
        "model, /metrics and /docs (set --api-key or EARMARK_API_KEY, or bind 127.0.0.1)"
    )


_HEAD_LATE = b"the request's head did not arrive in time"
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_HEAD_LATE), _HEAD_LATE)
)


def protocol_class(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with a deadline on the
    head of every request: ``header_timeout`` seconds from the connection opening (or from
    the end of the previous response) to the end of the request's headers. A connection
    past it is closed: silently when it sent nothing (an idle socket), with 408 when it
    sent part of a request. Requests under way are left to the app's own deadlines."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class HeadDeadline(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_deadline()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._head_bytes = True  # a request (or its head) is on its way
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._head_bytes = False
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _arm_head_deadline(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            if self.transport is None or self.transport.is_closing():
                return
            self._head_timer = self.loop.call_later(header_timeout, self._head_expired)

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being answered: its body and work have deadlines
            if self._head_bytes:
                self.transport.write(_TIMEOUT_408)
            self.transport.close()

    return HeadDeadline


def server_config(
    app: Any, *, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any
) -> Any:
    """A ``uvicorn.Config`` for ``app`` (from :func:`earmark.serve.create_app`) with its
    settings' connection deadlines: ``header_timeout`` (see :func:`protocol_class`) and
    ``keep_alive`` (uvicorn's ``timeout_keep_alive``). ``uvicorn_options`` go to uvicorn
    (``log_level``, ``log_config``, ...)."""
    import uvicorn

    from earmark.serve.app import ServeSettings

    settings: ServeSettings = getattr(app.state, "settings", None) or ServeSettings()
    options: dict[str, Any] = {"log_level": "warning"} | uvicorn_options
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_class(settings.header_timeout),
        timeout_keep_alive=settings.keep_alive,  # type: ignore[arg-type]  # a float works
        **options,
    )


def run(app: Any, *, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
    """Serve ``app`` until interrupted (:func:`server_config`'s deadlines)."""
    import uvicorn

    uvicorn.Server(server_config(app, host=host, port=port, **uvicorn_options)).run()
