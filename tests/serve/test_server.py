"""The connection deadlines uvicorn lacks, on a real server: idle sockets and slow request
heads are closed; who gets the exposure warning."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from serve_sockets import read_until_closed

from earmark.serve import ServeSettings, create_app, exposure_warning, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("example.org", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    warning = exposure_warning(host, None)
    assert (warning is None) is loopback
    if warning is not None:
        assert "\n" not in warning and "API key" in warning and host in warning
    assert exposure_warning(host, "a-key") is None  # a key: no warning


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_idle_sockets_and_slow_request_heads_are_closed(detector, live) -> None:
    settings = ServeSettings(header_timeout=1.0, keep_alive=0.5)
    url = live(create_app(detector, settings))
    port = _port(url)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    slow = socket.create_connection(("127.0.0.1", port))
    stop = threading.Event()

    def trickle() -> None:  # a request head, a byte every 0.1 s: never finished
        head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
        for byte in head:
            if stop.is_set():
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.1)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        t0 = time.monotonic()
        assert httpx.get(f"{url}/healthz", timeout=2).status_code == 200  # still answering
        results = [read_until_closed(s, 3.0) for s in idle]
        closed_slow, sent = read_until_closed(slow, 3.0)
        took = time.monotonic() - t0
        assert all(closed for closed, _ in results), "an idle socket was left open"
        assert all(got == b"" for _, got in results)  # closed without a word
        assert closed_slow and sent.startswith(b"HTTP/1.1 408"), sent
        assert took < 3.5
        # a kept-alive connection is closed once idle for keep_alive seconds
        with socket.create_connection(("127.0.0.1", port)) as kept:
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            closed, answer = read_until_closed(kept, 2.0)
            assert closed and answer.startswith(b"HTTP/1.1 200"), answer
    finally:
        stop.set()
        sender.join()
        for s in [*idle, slow]:
            s.close()


def test_a_request_under_way_is_not_cut_by_the_head_deadline(
    detector, watched, live, clip_bytes: bytes
) -> None:
    """The deadline is for the head only: a request whose work outlasts it is answered."""
    url = live(create_app(watched(detector, 0.8), ServeSettings(header_timeout=0.3)))
    with httpx.Client(timeout=30) as client:
        res = client.post(  # scored in 0.8 s: well past the head deadline
            f"{url}/v1/predict", content=clip_bytes, headers={"content-type": "audio/wav"}
        )
        assert res.status_code == 200, res.text
        assert client.get(f"{url}/healthz").status_code == 200  # the same connection
