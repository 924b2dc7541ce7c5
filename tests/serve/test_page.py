"""The web page end to end in headless Chromium (Debian's, driven by Playwright): upload a
real file, read the predictions off the page, take a screenshot."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from earmark.serve import create_app

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def test_the_page_is_served(detector) -> None:
    from fastapi.testclient import TestClient

    html = TestClient(create_app(detector)).get("/").text
    assert "<title>earmark</title>" in html and "/v1/predict" in html


@pytest.fixture
def server(detector):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(detector, name="digits"), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


def test_upload_in_a_browser_shows_the_predictions(
    server: str, detector, demo_digits: Path, recording: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:  # `make test` installs it: its absence is a failure, not a skip
        pytest.fail("chromium is missing: run `make setup` (apt-get install chromium)")
    clip = demo_digits / "four" / "v005.wav"
    want = detector.predict_file(clip, top_k=5)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(server)
        page.wait_for_selector("#model:has-text('10 classes')")
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#predictions .bar")
        labels = page.locator("#predictions .bar .label").all_inner_texts()
        assert labels == want.labels
        first = float(page.locator("#predictions .bar .score").first.inner_text())
        assert first == pytest.approx(want.scores[0], abs=1e-3)
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        # a long recording: the score track and the events appear too
        page.set_input_files("#file", str(recording))
        page.wait_for_selector("#track:not([hidden])")
        page.wait_for_selector("#events li")
        assert "20.00 s" in page.locator("#status").inner_text()
        browser.close()
    assert (tmp_path / "page.png").stat().st_size > 20_000


def test_the_page_asks_for_the_api_key_and_sends_it(live, detector, demo_digits: Path) -> None:
    from playwright.sync_api import sync_playwright

    from earmark.serve import ServeSettings

    if CHROMIUM is None:
        pytest.fail("chromium is missing: run `make setup` (apt-get install chromium)")
    url = live(create_app(detector, ServeSettings(api_key="page-key"), name="digits"))
    clip = demo_digits / "two" / "v003.wav"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#access:not([hidden])")  # the model card was refused
        page.fill("#key", "wrong")
        page.click("#use-key")
        page.wait_for_selector("#model:has-text('refused')")
        page.fill("#key", "page-key")
        page.click("#use-key")
        page.wait_for_selector("#model:has-text('10 classes')")
        assert page.locator("#access").is_hidden()
        assert page.evaluate("sessionStorage.getItem('earmark-api-key')") == "page-key"
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#predictions .bar")
        labels = page.locator("#predictions .bar .label").all_inner_texts()
        assert labels == detector.predict_file(clip, top_k=5).labels
        browser.close()
