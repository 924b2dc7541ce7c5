"""Raw-socket helpers for the tests that talk to a real server (a module of its own: a
name imported from ``conftest`` is ambiguous when the whole suite is collected)."""

from __future__ import annotations

import socket
import time


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` (or reset it) within ``seconds``, and what it sent
    before."""
    sock.settimeout(0.1)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:  # reset
            return True, got
        if not data:
            return True, got
        got += data
    return False, got
