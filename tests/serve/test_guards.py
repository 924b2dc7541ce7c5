"""The request guards on a real server: slow uploads are dropped with 408 without stalling
anyone else, a client leaving mid-upload is no error, and the API key."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_sockets import read_until_closed

from earmark.serve import ServeSettings, create_app

BOUNDARY = "earmark-test-boundary"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _open_upload(port: int, length: int, path: str = "/v1/predict") -> socket.socket:
    """A multipart upload announcing ``length`` bytes, with only its head sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    sock.sendall(head + part)
    return sock


def _metric(url: str, endpoint: str, status: int) -> float:
    text = httpx.get(f"{url}/metrics").text
    key = f'earmark_requests_total{{endpoint="{endpoint}",status="{status}"}} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(key))


def test_slow_uploads_get_408_and_do_not_stall_other_requests(
    detector, live, clip_bytes: bytes
) -> None:
    # 24 slow uploads against 2 running + 2 waiting: admitted before their bodies, they
    # would take every place and everyone else would get 503
    settings = ServeSettings(max_concurrency=2, max_queue=2, body_timeout=2.0)
    url = live(create_app(detector, settings))
    port = _port(url)
    slow = [_open_upload(port, 48 * 1024 * 1024) for _ in range(24)]
    stop = threading.Event()

    def trickle() -> None:  # a byte a second on each, staggered
        k = 0
        while not stop.wait(1.0 / len(slow)):
            with contextlib.suppress(OSError):
                slow[k % len(slow)].send(b"\0")
            k += 1

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        res = httpx.post(
            f"{url}/v1/predict", content=clip_bytes, headers={"content-type": "audio/wav"}
        )
        took = time.monotonic() - t0
        assert res.status_code == 200, res.text
        assert took < 1.0, f"a normal request took {took:.2f} s among slow uploads"
        answers = [read_until_closed(s, 4.0)[1] for s in slow]
    finally:
        stop.set()
        sender.join()
        for s in slow:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:20] for a in answers}
    assert all(b"connection: close" in a.lower() for a in answers)
    assert _metric(url, "/v1/predict", 408) == 24
    assert _metric(url, "/v1/predict", 500) == 0
    # every slow upload let go of its place
    res = httpx.post(f"{url}/v1/predict", content=clip_bytes, headers={"content-type": "audio/wav"})
    assert res.status_code == 200


def test_a_slow_but_steady_upload_gets_time_for_what_it_sends(detector, live) -> None:
    """The deadline grows with the bytes received (``body_min_rate``): an upload that
    keeps sending at the rate is answered, one that stalls is not."""
    settings = ServeSettings(body_timeout=0.4, body_min_rate=20_000, max_upload_bytes=10**6)
    url = live(create_app(detector, settings))

    def chunks(pause: float):
        for _ in range(6):
            time.sleep(pause)
            yield b"\0" * 10_000  # each buys half a second

    audio = {"content-type": "audio/wav"}
    with httpx.Client(timeout=10) as client:
        res = client.post(f"{url}/v1/predict", content=chunks(0.2), headers=audio)
        assert res.status_code == 415  # (zeros are no audio, but they all came in time)
        try:
            res = client.post(f"{url}/v1/predict", content=chunks(0.7), headers=audio)
        except httpx.TransportError:  # answered and closed while still sending: fine too
            pass
        else:
            assert res.status_code == 408 and "did not arrive in time" in res.json()["detail"]
    assert _metric(url, "/v1/predict", 408) == 1


def test_a_client_leaving_mid_upload_is_no_error(detector, live, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    url = live(create_app(detector, ServeSettings(upload_dir=str(uploads))))
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        for path in ("/v1/predict", "/v1/detect"):
            sock = _open_upload(_port(url), 1_000_000, path)
            sock.sendall(b"RIFF" + b"\0" * 300_000)  # part of it, then gone
            time.sleep(0.2)
            sock.close()
            deadline = time.monotonic() + 5
            while _metric(url, path, 499) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _metric(url, path, 499) == 1
            assert _metric(url, path, 500) == 0
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if r.levelno >= logging.ERROR], records
    assert list(uploads.iterdir()) == []  # the partial uploads are gone
    assert 'earmark_errors_total{status="500"}' not in httpx.get(f"{url}/metrics").text


# -- the API key ------------------------------------------------------------------------------

KEY = "s3cret-key-for-tests"


@pytest.fixture(scope="module")
def keyed(detector) -> TestClient:
    return TestClient(create_app(detector, ServeSettings(api_key=KEY)))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/model"),
        ("post", "/v1/predict"),
        ("post", "/v1/detect"),
        ("get", "/metrics"),
        ("get", "/docs"),
        ("get", "/openapi.json"),
        ("get", "/redoc"),
    ],
)
def test_without_the_key_everything_but_health_and_the_page_is_refused(
    keyed: TestClient, clip_bytes: bytes, method: str, path: str
) -> None:
    kwargs = {"content": clip_bytes, "headers": {"content-type": "audio/wav"}}
    send = getattr(keyed, method)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},  # not the bearer scheme
        {"X-API-Key": KEY[:-1]},
        {"X-API-Key": KEY + "x"},
    ):
        extra = kwargs if method == "post" else {}
        res = send(path, **{**extra, "headers": {**extra.get("headers", {}), **headers}})
        assert res.status_code == 401, (path, headers, res.status_code)
        assert res.headers["www-authenticate"].startswith("Bearer")
        assert "API key" in res.json()["detail"]


def test_the_key_opens_the_api_and_stays_secret(keyed: TestClient, clip_bytes: bytes) -> None:
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
        assert keyed.get("/v1/model", headers=headers).status_code == 200
        assert keyed.get("/metrics", headers=headers).status_code == 200
        assert keyed.get("/openapi.json", headers=headers).status_code == 200
        res = keyed.post(
            "/v1/predict",
            content=clip_bytes,
            headers={**headers, "content-type": "audio/wav"},
        )
        assert res.status_code == 200, res.text
    assert keyed.get("/v1/model", headers={"authorization": f"bearer {KEY}"}).status_code == 200
    card = keyed.get("/v1/model", headers={"X-API-Key": KEY}).text
    assert KEY not in card and "api_key" not in card
    assert keyed.get("/healthz").status_code == 200  # probes stay open
    assert keyed.get("/readyz").json() == {"status": "ready"}  # ... and name nothing
    page = keyed.get("/")
    assert page.status_code == 200 and 'id="key"' in page.text and "sessionStorage" in page.text
    assert KEY not in repr(ServeSettings(api_key=KEY))


def test_the_key_is_compared_in_constant_time(detector, monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from earmark.serve import guards

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(guards.hmac, "compare_digest", spy)
    client = TestClient(create_app(detector, ServeSettings(api_key=KEY)))
    assert client.get("/v1/model", headers={"X-API-Key": "short"}).status_code == 401
    assert client.get("/v1/model", headers={"X-API-Key": KEY}).status_code == 200
    # both sides are digests of one length: the time does not depend on the key sent
    assert len(compared) == 2 and {len(a) for pair in compared for a in pair} == {32}


def test_a_refused_upload_is_not_read(detector, live, clip_bytes: bytes) -> None:
    """401 comes before the body, and the connection is closed (uvicorn would otherwise
    wait for the rest of a body nobody reads)."""
    url = live(create_app(detector, ServeSettings(api_key=KEY)))
    sock = _open_upload(_port(url), 48 * 1024 * 1024)
    try:
        answer = read_until_closed(sock, 3.0)[1]
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 401") and b"connection: close" in answer.lower()
