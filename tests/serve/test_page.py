"""The web page end to end in headless Chromium (Debian's, driven by Playwright): upload real
files, read what the page shows off its DOM and its canvases, play events, take screenshots.

One browser for the module (the ``browser`` fixture of conftest.py) and one server for the
detector (the page tests take a few seconds each). ``EARMARK_SCREENSHOTS=1`` also copies the
screenshots to ``benchmarks/results/screens/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_pages import DASH
from browser_pages import check_screenshot as _check_screenshot

from earmark.serve import create_app


def test_the_page_is_served(detector) -> None:
    from fastapi.testclient import TestClient

    html = TestClient(create_app(detector)).get("/").text
    assert "<title>earmark</title>" in html and "/v1/predict" in html
    assert 'rel="icon"' in html and 'href="data:image/svg+xml,' in html  # no /favicon.ico


@pytest.fixture(scope="module")
def site(serving, detector) -> Iterator[str]:
    with serving(create_app(detector, name="digits")) as url:
        yield url


@pytest.fixture
def page(browser, site: str):
    """A fresh tab on the page; JavaScript errors and HTTP errors it meets are recorded
    (``page.js_errors``, ``page.http_errors``) and must be empty unless a test expects one."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    tab = context.new_page()
    tab.js_errors, tab.http_errors = [], []
    tab.on("pageerror", lambda e: tab.js_errors.append(str(e)))
    tab.on("response", lambda r: r.status >= 400 and tab.http_errors.append((r.status, r.url)))
    tab.goto(site)
    tab.wait_for_selector("#model:has-text('10 classes')")
    yield tab
    context.close()


def _pixel(page, canvas: str, x: float, y: float) -> list[int]:
    """The RGB of a canvas at CSS pixel (x, y)."""
    return page.evaluate(
        """([sel, x, y]) => {
            const c = document.querySelector(sel), k = c.width / c.clientWidth;
            return Array.from(c.getContext("2d").getImageData(
                Math.round(x * k), Math.round(y * k), 1, 1).data.slice(0, 3));
        }""",
        [canvas, x, y],
    )


def _hex(rgb: list[int]) -> str:
    return "#" + "".join(f"{v:02x}" for v in rgb)


def test_a_detection_scene_is_summarised_drawn_listed_and_played(
    page, site: str, recording: Path, tmp_path: Path
) -> None:
    want = httpx.post(f"{site}/v1/detect", files={"file": recording.read_bytes()}).json()
    assert want["events"], "the fixture's recording should have events"
    # before a file: nothing drawn, no empty boxes, no review controls (this server has none)
    assert page.locator("#results").is_hidden()
    assert page.locator("canvas:visible").count() == 0
    assert page.locator("#search-panel").is_hidden() and page.locator("#queue-panel").is_hidden()
    assert "correct" not in page.locator("#help").inner_text()

    page.set_input_files("#file", str(recording))
    page.wait_for_selector("#results[data-mode=long]")
    # the spectrogram at the file's own rate (16 kHz: up to 8 kHz), with its axes in units
    spec = page.locator("#spectrogram")
    assert spec.get_attribute("data-sample-rate") == "16000"
    assert spec.get_attribute("data-max-hz") == "8000"
    assert f"0{DASH}8 kHz" in page.locator("#spec-caption").inner_text()
    assert "20 s at 16 kHz" in page.locator("#summary-line").inner_text()
    assert (
        f"{len(want['window_starts_s'])} windows of 1 s"
        in page.locator("#summary-line").inner_text()
    )
    # events per class with their counts: the filter chips and the summary agree with the API
    counts = {k: v for k, v in want["counts"].items() if v}
    for label, n in counts.items():
        assert page.locator(
            f"#class-filter .filter[data-label='{label}'] .count"
        ).inner_text() == str(n)
        assert page.locator(f"#summary tr[data-label='{label}'] .count").inner_text() == str(n)
    assert page.locator("#class-filter .filter[data-label=''] .count").inner_text() == str(
        len(want["events"])
    )
    items = page.locator("#events .event.item")
    assert items.count() == min(20, len(want["events"]))
    first = want["events"][0]
    assert float(items.first.get_attribute("data-start")) == first["start_s"]
    assert items.first.get_attribute("data-label") == first["label"]
    assert page.locator(".review-correct").count() == 0
    # one class's events only
    label = first["label"]
    page.click(f"#class-filter .filter[data-label='{label}']")
    assert set(
        page.locator("#events .item").evaluate_all("els => els.map(e => e.dataset.label)")
    ) == {label}
    page.click("#class-filter .filter[data-label='']")

    # drawn: each event's bar at the top of the plot has its class's colour
    assert int(spec.get_attribute("data-events")) == len(want["events"])
    left, top, width, height = map(float, spec.get_attribute("data-plot").split())
    duration = float(spec.get_attribute("data-duration"))
    for ev in want["events"][:3]:
        x = left + (ev["start_s"] + ev["end_s"]) / 2 / duration * width
        colour = page.locator(f"#legend .chip[data-label='{ev['label']}']").get_attribute(
            "data-color"
        )
        assert _hex(_pixel(page, "#spectrogram", x, top + 2)) == colour

    # click an event on the spectrogram: its span plays, and stops at its end
    ev = want["events"][1]
    x = left + (ev["start_s"] + ev["end_s"]) / 2 / duration * width
    spec.click(position={"x": x, "y": top + height / 2})
    page.wait_for_function("!document.getElementById('player').paused")
    now = page.locator("#now-playing")
    assert float(now.get_attribute("data-start")) == ev["start_s"]
    assert now.get_attribute("data-label") == ev["label"]
    assert page.locator("#events .item.selected").get_attribute("data-start") == str(ev["start_s"])
    page.wait_for_function("document.getElementById('player').paused", timeout=10_000)
    at = page.evaluate("document.getElementById('player').currentTime")
    assert ev["end_s"] - 0.05 <= at <= ev["end_s"] + 0.35
    # the keyboard: k / j walk the list, space plays the item and pauses it
    page.keyboard.press("k")
    selected = page.locator("#events .item.selected")
    assert selected.get_attribute("data-start") == str(want["events"][0]["start_s"])
    page.keyboard.press(" ")
    page.wait_for_function("!document.getElementById('player').paused")
    assert float(now.get_attribute("data-start")) == want["events"][0]["start_s"]
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('player').paused")
    page.keyboard.press("j")
    assert selected.get_attribute("data-start") == str(ev["start_s"])

    # screenshots at two widths; at phone width nothing scrolls sideways
    page.screenshot(path=str(tmp_path / "page-1000.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)  # the drawings follow the width
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert float(spec.get_attribute("data-plot").split()[2]) < 390
    page.screenshot(path=str(tmp_path / "page-390.png"), full_page=True)
    for name in ("page-1000.png", "page-390.png"):
        _check_screenshot(tmp_path / name)
    assert page.js_errors == [] and page.http_errors == []  # no favicon 404 either


def test_a_clip_then_an_error_shows_only_the_error(page, detector, demo_digits: Path) -> None:
    clip = demo_digits / "four" / "v005.wav"
    want = detector.predict_file(clip, top_k=5)
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("#results[data-mode=clip] #predictions .bar")
    assert page.locator("#predictions .bar .label").all_inner_texts() == want.labels
    first = float(page.locator("#predictions .bar .score").first.inner_text())
    assert first == pytest.approx(want.scores[0], abs=1e-3)
    assert page.locator("#spectrogram").get_attribute("data-max-hz") == "8000"
    assert page.locator("#model").inner_text().endswith("clips of 1 s at 16 kHz")

    page.set_input_files(
        "#file", {"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"not audio\n" * 100}
    )
    page.wait_for_selector("#error:not([hidden])")
    assert "notes.wav" in page.locator("#error").inner_text()
    assert "not an audio" in page.locator("#error").inner_text()
    assert page.locator("#results").is_hidden()
    assert page.locator("#predictions .bar").count() == 0
    assert page.locator("canvas:visible").count() == 0
    assert [s for s, _ in page.http_errors] == [415] and page.js_errors == []

    # the next file clears the error
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("#results[data-mode=clip]")
    assert page.locator("#error").is_hidden()


class SlowDetect:
    """The app, with every ``/v1/detect`` answer held back ``seconds`` (an earlier, slower
    request whose answer comes after a later one's)."""

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds
        self.state = app.state  # read by earmark.serve.server_config

    async def __call__(self, scope, receive, send) -> None:
        import asyncio

        if scope["type"] == "http" and scope["path"] == "/v1/detect":
            await asyncio.sleep(self.seconds)
        await self.app(scope, receive, send)


def test_a_later_file_is_never_replaced_by_an_earlier_answer(
    live, browser, detector, recording: Path, demo_digits: Path
) -> None:
    url = live(SlowDetect(create_app(detector, name="digits"), 1.5))
    clip = demo_digits / "two" / "v003.wav"
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url)
        page.wait_for_selector("#model:has-text('10 classes')")
        with page.expect_request("**/v1/detect"):  # the long file's request is out
            page.set_input_files("#file", str(recording))
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#results[data-mode=clip]")
        page.wait_for_timeout(2500)  # past the moment the detection would have answered
        assert page.locator("#results").get_attribute("data-mode") == "clip"
        assert page.locator("#file-title").inner_text() == "v003.wav"
        assert page.locator("#events .item").count() == 0
        assert page.locator("#predictions .bar").count() == 5
        assert errors == []
    finally:
        page.close()


def test_the_page_asks_for_the_api_key_and_sends_it(
    live, browser, detector, demo_digits: Path
) -> None:
    from earmark.serve import ServeSettings

    url = live(create_app(detector, ServeSettings(api_key="page-key"), name="digits"))
    clip = demo_digits / "two" / "v003.wav"
    page = browser.new_page()
    try:
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
    finally:
        page.close()


def test_a_long_event_list_is_paged_and_walked_across_pages(
    page, demo_digits: Path, tmp_path: Path
) -> None:
    import numpy as np
    import soundfile as sf

    digits = sorted(p.name for p in demo_digits.iterdir() if p.is_dir())
    parts = []
    for k in range(40):  # one digit after another, a short pause between: many events
        clip, sr = sf.read(
            demo_digits / digits[k % len(digits)] / f"v00{k % 4}.wav", dtype="float32"
        )
        parts += [clip, np.zeros(int(0.4 * sr), np.float32)]
    path = tmp_path / "many.wav"
    sf.write(path, np.concatenate(parts), sr, subtype="PCM_16")

    page.click("#detect-settings summary")  # a low threshold: more events (the setting is used)
    page.fill("#threshold", "0.2")
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#results[data-mode=long]")
    n = int(page.locator("#class-filter .filter[data-label=''] .count").inner_text())
    assert n > 20, f"{n} events: the recording should make more than a page"
    items = page.locator("#events .item")
    assert items.count() == 20
    pager = page.locator("#events .pager")
    assert f"1{DASH}20 of {n}" in pager.inner_text()
    starts_p1 = items.evaluate_all("els => els.map(e => Number(e.dataset.start))")
    items.nth(19).locator(".what").click()  # select the page's last item; j goes on
    page.keyboard.press("j")
    page.wait_for_selector(f"#events .pager:has-text('21{DASH}{min(40, n)} of {n}')")
    selected = page.locator("#events .item.selected")
    assert float(selected.get_attribute("data-start")) > starts_p1[-1] - 1e-9
    assert page.locator("#events .item").first.get_attribute("class").endswith("selected")
    page.keyboard.press("k")
    page.wait_for_selector(f"#events .pager:has-text('1{DASH}20 of')")
    assert float(selected.get_attribute("data-start")) == starts_p1[-1]
    page.click("#events .pager .next")
    page.wait_for_selector(f"#events .pager:has-text('21{DASH}')")
    assert page.js_errors == []
