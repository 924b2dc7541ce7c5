"""A real uvicorn server (earmark.serve.server_config: the same deadlines as `earmark serve`)
on a free loopback port, in a thread, for the tests that need real sockets."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app: Any, **uvicorn_options: Any) -> Iterator[str]:
    """Serve ``app`` on ``http://127.0.0.1:PORT`` (yielded) until the block ends; the
    server is stopped and its thread joined (connections still open are cut after 2 s)."""
    import uvicorn

    from earmark.serve import server_config

    port = free_port()
    options = {"timeout_graceful_shutdown": 2} | uvicorn_options
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "the test server did not stop"


@pytest.fixture(scope="session")
def serving() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with serving(app) as url:``: a real server for ``app`` (see :func:`live_server`)."""
    return live_server


@pytest.fixture
def live(serving) -> Iterator[Callable[..., str]]:
    """``live(app) -> url``: a real server for ``app``, stopped at the end of the test."""
    with contextlib.ExitStack() as stack:
        yield lambda app, **options: stack.enter_context(serving(app, **options))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, driven by Playwright), one per test module."""
    from browser_pages import CHROMIUM, FLAGS
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:  # `make test` installs it: its absence is a failure, not a skip
        pytest.fail("chromium is missing: run `make setup` (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def clip_bytes(demo_digits) -> bytes:
    """A one-second WAV clip of a spoken digit."""
    return (demo_digits / "one" / "v000.wav").read_bytes()


class Watched:
    """``inner`` (a classifier) whose model calls are recorded (``calls``: when each batch
    was scored) and slowed by ``seconds`` each: the server takes its batched path for
    /v1/predict and streams /v1/detect through the same predictor."""

    def __init__(self, inner: Any, seconds: float = 0.0) -> None:
        self.classes_ = inner.classes_
        self.model = "watched"
        self.calls: list[float] = []
        self.predictor = inner.predictor
        score = self.predictor.score

        def watched(x: Any) -> Any:
            self.calls.append(time.monotonic())
            if seconds:
                time.sleep(seconds)
            return score(x)

        self.predictor.score = watched

    def predict_file(self, path: Any, *, top_k: int = 3) -> Any:
        return self.predictor.predict_file(path, top_k=top_k)

    def score_track(self, path: Any, windowing: Any = None, **kw: Any) -> Any:
        return self.predictor.score_track(path, windowing, **kw)


@pytest.fixture(scope="session")
def watched() -> type[Watched]:
    """``watched(model, seconds)``: see :class:`Watched`."""
    return Watched
