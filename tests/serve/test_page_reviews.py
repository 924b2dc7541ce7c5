"""The review loop on the page, end to end in headless Chromium, against a real server with
reviews on: mark detections of an uploaded recording wrong and correct (buttons, keys, undo),
find the verdicts stored (ReviewStore, ``GET /v1/reviews``) and shown again when the file is
uploaded again, ``earmark reviews export`` them, ``earmark train --reviews`` with them and
see the window marked wrong scored lower; walk the review queue of a suggestion list.

The model is a logistic regression told 'seven' from quiet noise ('background'); the
recording holds a 'two' it takes for a seven (the false positive to mark wrong) and a real
'seven'. ``EARMARK_SCREENSHOTS=1`` also copies the screenshots to
``benchmarks/results/screens/``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from browser_pages import check_screenshot
from signals import SEVEN_AT, SR, TWO_AT
from signals import seven_or_not as make_seven_or_not
from typer.testing import CliRunner

from earmark.cli import app as cli_app
from earmark.review.store import ReviewStore, artifact_sha256
from earmark.review.suggestions import load_suggestions
from earmark.serve import Recordings, create_app

TRAIN = ["--model", "logreg", "--features", "logmel", "--duration", "1", "--seed", "0"]


def _cli(*args: str | Path):
    return CliRunner().invoke(cli_app, [str(a) for a in args])


@pytest.fixture(scope="module")
def seven_or_not(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory):
    """Clips of 'seven' / 'background' and a recording with a false and a true 'seven'
    (:func:`signals.seven_or_not`)."""
    return make_seven_or_not(demo_digits, tmp_path_factory.mktemp("seven_or_not"))


@pytest.fixture(scope="module")
def plain_run(seven_or_not, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model the page reviews, trained by `earmark train` (as the retrained one is)."""
    data, _ = seven_or_not
    out = tmp_path_factory.mktemp("runs") / "plain"
    res = _cli("train", data, *TRAIN, "--quiet", "--out", out)
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def plain_model(plain_run: Path) -> Any:
    from earmark.loading import load

    return load(plain_run)


@pytest.fixture
def serve_reviews(live, plain_run: Path, plain_model: Any) -> Iterator[Callable[..., str]]:
    """``serve_reviews(db, suggestions=None) -> url``: the plain model served as `earmark
    serve RUN --reviews DB [--suggestions CSV]` serves it (uploads kept beside the
    database, the artifact's SHA-256 in every review)."""
    stores: list[ReviewStore] = []

    def serve(db: Path, suggestions: Path | None = None) -> str:
        stores.append(ReviewStore(db))
        return live(
            create_app(
                plain_model,
                name=plain_run.name,
                recordings=Recordings(db.parent / f"{db.stem}-audio"),
                reviews=stores[-1],
                suggestions=load_suggestions(suggestions) if suggestions else None,
                model_sha256=artifact_sha256(plain_run),
            )
        )

    yield serve
    for store in stores:
        store.close()


def _open(browser, url: str, width: int = 1000):
    """A fresh tab on the page; JavaScript errors and HTTP errors it meets are recorded
    (``tab.js_errors``, ``tab.http_errors``)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    tab.js_errors, tab.http_errors = [], []
    tab.on("pageerror", lambda e: tab.js_errors.append(str(e)))
    tab.on("response", lambda r: r.status >= 400 and tab.http_errors.append((r.status, r.url)))
    tab.goto(url)
    tab.wait_for_selector("#model:has-text('2 classes')")
    return tab


def _events(page) -> list[dict[str, Any]]:
    """The event list as the page shows it: start, end, label and verdict of each item."""
    return page.locator("#events .event.item").evaluate_all(
        """els => els.map(e => ({start: Number(e.dataset.start), end: Number(e.dataset.end),
            label: e.dataset.label, verdict: e.dataset.verdict || null}))"""
    )


def _covering(events: list[dict[str, Any]], t: float) -> int:
    found = [i for i, ev in enumerate(events) if ev["start"] <= t <= ev["end"]]
    assert found, f"no event covers {t} s: {events}"
    return found[0]


def _seven_score(model: Any, rec: Path, start: float, end: float, tmp: Path) -> float:
    """The model's 'seven' score of the span [start, end) of ``rec`` (as a clip)."""
    y, _ = sf.read(rec, dtype="float32", start=round(start * SR), stop=round(end * SR))
    sf.write(tmp / "span.wav", y, SR)
    pred = model.predict_file(tmp / "span.wav", top_k=2)
    return dict(zip(pred.labels, pred.scores, strict=True))["seven"]


@pytest.mark.slow  # a retraining through the CLI and two page loads: ~10 s on a quiet machine
def test_review_on_the_page_export_and_retrain(
    browser, serve_reviews, seven_or_not, plain_run: Path, plain_model: Any, tmp_path: Path
) -> None:
    from earmark.data.annotations import read_annotations
    from earmark.loading import load

    data, rec = seven_or_not
    db = tmp_path / "reviews.sqlite"
    url = serve_reviews(db)
    page = _open(browser, url)
    assert page.locator("#review-bar").is_visible()  # reviews on: a reviewer can be named
    page.fill("#reviewer", "ann")
    page.set_input_files("#file", str(rec))
    page.wait_for_selector("#results[data-mode=long] #events .event.item")
    events = _events(page)
    wrong, right = _covering(events, TWO_AT + 0.3), _covering(events, SEVEN_AT + 0.3)
    assert {events[wrong]["label"], events[right]["label"]} == {"seven"}
    items = page.locator("#events .event.item")

    # the 'two' taken for a seven: wrong, with its button
    items.nth(wrong).locator(".review-wrong").click()
    page.wait_for_selector(f"#events .item:nth-child({wrong + 1})[data-verdict=wrong]")
    # the real seven, with the keyboard: a slip (w), undone (u), then correct (c)
    items.nth(right).locator(".what").click()
    page.keyboard.press("w")
    page.wait_for_selector(f"#events .item:nth-child({right + 1})[data-verdict=wrong]")
    assert len(ReviewStore(db).list()[0]) == 2
    page.keyboard.press("u")
    page.wait_for_selector(f"#events .item:nth-child({right + 1}):not([data-verdict])")
    items.nth(right).locator(".what").click()
    page.keyboard.press("c")
    page.wait_for_selector(f"#events .item:nth-child({right + 1})[data-verdict=correct]")
    assert "2 reviews from this page" in page.locator("#review-count").inner_text()

    # stored: the item, the verdict, who, which model and with which settings
    with ReviewStore(db) as store:
        rows, total = store.list()
    assert total == 2 and [r.verdict for r in rows] == ["correct", "wrong"]
    listed = httpx.get(f"{url}/v1/reviews").json()
    assert listed["total"] == 2 and [r["id"] for r in listed["reviews"]] == [r.id for r in rows]
    kept = Path(rows[0].path)
    assert kept.parent == tmp_path / "reviews-audio" and kept.read_bytes() == rec.read_bytes()
    for row, ev in zip(rows, (events[right], events[wrong]), strict=True):
        assert (row.start_s, row.end_s, row.label) == (ev["start"], ev["end"], "seven")
        assert row.source == "detection" and row.reviewer == "ann" and row.path == str(kept)
        assert row.model == "plain" and row.model_sha256 == artifact_sha256(plain_run)
        assert row.settings["endpoint"] == "/v1/detect" and row.settings["hop"] > 0
        assert row.settings["background"] == ["background"]  # not reported, as the page asked

    # the same file again, in a fresh page: the stored verdicts are shown on its events
    page.close()
    page = _open(browser, url)
    page.set_input_files("#file", str(rec))
    page.wait_for_selector("#events .item[data-verdict=correct]")
    again = _events(page)
    assert again[wrong]["verdict"] == "wrong" and again[right]["verdict"] == "correct"
    assert [ev["verdict"] for ev in again].count(None) == len(again) - 2
    assert "wrong" in page.locator("#events .item[data-verdict=wrong] .verdict").inner_text()
    # screenshots with the verdicts, at two widths; at phone width nothing scrolls sideways
    page.screenshot(path=str(tmp_path / "page-reviews-1000.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)  # the drawings follow the width
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    page.screenshot(path=str(tmp_path / "page-reviews-390.png"), full_page=True)
    for name in ("page-reviews-1000.png", "page-reviews-390.png"):
        check_screenshot(tmp_path / name)
    assert page.js_errors == [] and page.http_errors == []
    page.close()

    # exported as an annotation table: the correct one a seven, the wrong one background
    res = _cli("reviews", "export", db, "--out", tmp_path / "reviewed.csv")
    assert res.exit_code == 0, res.output
    assert "2 rows (background 1, seven 1)" in res.stdout
    table = read_annotations(tmp_path / "reviewed.csv").frame
    got = sorted(zip(table["start_s"], table["end_s"], table["label"], strict=True))
    want = [(events[wrong]["start"], events[wrong]["end"], "background"),
            (events[right]["start"], events[right]["end"], "seven")]  # fmt: skip
    assert got == sorted(want) and set(table["recording"]) == {str(kept)}

    # retrained with them: the window marked wrong is scored lower, the seven stays a seven
    res = _cli("train", data, *TRAIN, "--out", tmp_path / "reviewed", "--reviews", db, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["reviews"] == {"windows": 2, "positives": 1, "negatives": 1, "skipped": {}}
    retrained = load(tmp_path / "reviewed")
    span = (events[wrong]["start"], events[wrong]["end"])
    before = _seven_score(plain_model, rec, *span, tmp_path)
    after = _seven_score(retrained, rec, *span, tmp_path)
    assert before > 0.5, "the plain model should take the 'two' for a seven"
    assert after < before - 0.2, (before, after)
    seven = (events[right]["start"], events[right]["end"])
    assert _seven_score(retrained, rec, *seven, tmp_path) > 0.5


def test_the_review_queue_walks_suggestions_and_stores_verdicts(
    browser, serve_reviews, seven_or_not, tmp_path: Path
) -> None:
    _, rec = seven_or_not
    table = tmp_path / "suggestions.csv"  # as `earmark suggest` writes it, most uncertain first
    table.write_text(
        "file,start_s,end_s,label,score,uncertainty\n"
        f"{rec},1.0,2.0,seven,0.55,0.9\n"
        f"{rec},3.0,4.0,background,0.6,0.8\n"
        f"{rec},4.0,5.0,seven,0.7,0.6\n"
    )
    db = tmp_path / "reviews.sqlite"
    url = serve_reviews(db, table)
    page = _open(browser, url)
    assert page.locator("#results").is_hidden()  # no file: the queue and the reviewer alone
    assert "3 windows" in page.locator("#queue-about").inner_text()
    page.fill("#reviewer", "bob")
    page.click("#queue-start")
    page.wait_for_selector("#queue .suggestion.item.selected")
    queue = page.locator("#queue .suggestion.item")
    assert queue.count() == 3
    assert queue.evaluate_all("els => els.map(e => Number(e.dataset.start))") == [1.0, 3.0, 4.0]
    first = queue.first.inner_text()
    assert "uncertainty 0.90" in first and "field.wav" in first

    # the first: heard (space plays its span from the server), then wrong (w)
    page.keyboard.press(" ")
    page.wait_for_function("!document.getElementById('player').paused")
    now = page.locator("#now-playing")
    assert (now.get_attribute("data-start"), now.get_attribute("data-label")) == ("1", "seven")
    page.keyboard.press("w")
    page.wait_for_selector("#queue .item:nth-child(1)[data-verdict=wrong]")
    assert page.locator("#queue .item.selected").get_attribute("data-start") == "3"
    # the second: relabelled with its button
    queue.nth(1).locator(".review-relabel").click()
    page.fill("#queue .relabel-input", "seven")
    page.press("#queue .relabel-input", "Enter")
    page.wait_for_selector("#queue .item:nth-child(2)[data-verdict=relabel]")
    assert "seven" in queue.nth(1).locator(".verdict").inner_text()

    rows, total = ReviewStore(db).list()
    assert total == 2
    assert [(r.source, r.start_s, r.label, r.verdict, r.new_label, r.reviewer) for r in rows] == [
        ("suggestion", 3.0, "background", "relabel", "seven", "bob"),
        ("suggestion", 1.0, "seven", "wrong", None, "bob"),
    ]
    assert {r.path for r in rows} == {str(rec.resolve())}
    served = httpx.get(f"{url}/v1/suggestions").json()["items"]
    assert [(s.get("review") or {}).get("verdict") for s in served] == ["wrong", "relabel", None]

    # a fresh page goes on where the reviewing stopped: the first window not reviewed
    page.close()
    page = _open(browser, url)
    page.click("#queue-start")
    page.wait_for_selector("#queue .suggestion.item.selected")
    assert page.locator("#queue .item.selected").get_attribute("data-start") == "4"
    verdicts = page.locator("#queue .item").evaluate_all(
        "els => els.map(e => e.dataset.verdict || null)"
    )
    assert verdicts == ["wrong", "relabel", None]
    assert page.js_errors == [] and page.http_errors == []
    page.close()


def test_a_search_on_the_page_finds_the_window_and_its_hit_is_reviewed(
    browser, live, plain_run: Path, plain_model: Any, seven_or_not, tmp_path: Path
) -> None:
    from earmark.review.index import build_index, open_index

    _, rec = seven_or_not
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    y, sr = sf.read(rec, dtype="float32")
    sf.write(corpus / "field.wav", y, sr)
    build_index(corpus, tmp_path / "idx", hop=0.5, device="cpu")
    query = tmp_path / "query.wav"  # the 'seven' of the recording, as a clip of its own
    sf.write(query, y[round(SEVEN_AT * sr) : round((SEVEN_AT + 1.0) * sr)], sr)
    db = tmp_path / "reviews.sqlite"
    store = ReviewStore(db)
    url = live(
        create_app(
            plain_model,
            name=plain_run.name,
            recordings=Recordings(tmp_path / "kept"),
            reviews=store,
            index=open_index(tmp_path / "idx"),
            model_sha256=artifact_sha256(plain_run),
        )
    )
    page = _open(browser, url)
    assert page.locator("#search-panel").is_visible()
    page.set_input_files("#search-file", str(query))
    page.wait_for_selector("#search-hits .hit.item")
    assert "hits for query.wav" in page.locator("#search-status").inner_text()
    first = page.locator("#search-hits .hit.item").first
    start = float(first.get_attribute("data-start"))
    assert "field.wav" in first.inner_text()
    assert abs(start - SEVEN_AT) <= 1.0  # the nearest window holds the query's 'seven'
    first.locator(".play").click()  # heard from the server (GET /v1/audio/...)
    page.wait_for_function("!document.getElementById('player').paused")
    assert page.locator("#now-playing").get_attribute("data-start") == first.get_attribute(
        "data-start"
    )
    # a hit has no label of its own: no correct / wrong, the reviewer names its class
    assert first.locator(".review-correct").count() == 0
    assert first.locator(".review-wrong").count() == 0
    first.locator(".review-relabel").click()
    page.fill("#search-hits .relabel-input", "seven")
    page.press("#search-hits .relabel-input", "Enter")
    page.wait_for_selector("#search-hits .hit.item[data-verdict=relabel]")
    rows, total = store.list()
    assert total == 1 and rows[0].source == "search" and rows[0].new_label == "seven"
    assert rows[0].path == str((corpus / "field.wav").resolve()) and rows[0].start_s == start
    assert page.js_errors == [] and page.http_errors == []
    store.close()
