"""`/v1/reviews` and `/v1/suggestions`: items reviewed through the API land in the store with
the model and settings, are listed, undone, and shown on the suggestions they answer."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from signals import SR, tone

from earmark.review.store import ReviewStore
from earmark.review.suggestions import load_suggestions
from earmark.serve import Recordings, ServeSettings, create_app


def _model() -> SimpleNamespace:
    """What the review endpoints read of a model: its name, classes and calibration (the
    audio is never scored here)."""
    return SimpleNamespace(
        model="cnn",
        classes_=["noise", "seven"],
        calibration_=object(),
        thresholds_={"seven": 0.7},
    )


def _wav(path: Path, seconds: float = 4.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(440.0, seconds), SR)
    return path


@pytest.fixture
def served(tmp_path: Path):
    """A client of an app keeping reviews in ``tmp_path/r.sqlite``, one kept upload and one
    corpus file with a suggestion list."""
    store = ReviewStore(tmp_path / "r.sqlite")
    recordings = Recordings(tmp_path / "r-audio")
    upload = recordings.keep(_wav(tmp_path / "up.wav"), ".wav")
    corpus = _wav(tmp_path / "corpus" / "site" / "a.wav")
    _wav(tmp_path / "corpus" / "b.wav")
    table = tmp_path / "suggestions.csv"
    table.write_text(
        "file,start_s,end_s,label,score,uncertainty\n"
        "corpus/site/a.wav,1.0,2.0,seven,0.52,0.96\n"
        f"{corpus.parent.parent / 'b.wav'},0.5,1.5,noise,0.49,0.9\n"
        "corpus/site/a.wav,3.0,4.0,seven,0.6,0.8\n"
    )
    suggestions = load_suggestions(table)
    app = create_app(
        _model(),
        ServeSettings(),
        name="seven-run",
        recordings=recordings,
        reviews=store,
        suggestions=suggestions,
        model_sha256="cd" * 32,
    )
    return SimpleNamespace(
        client=TestClient(app), store=store, upload=upload, recordings=recordings
    )


def _item(rid: str, **kw) -> dict:
    return {
        "recording": rid,
        "start_s": 1.0,
        "end_s": 2.0,
        "label": "seven",
        "score": 0.93,
        "source": "detection",
    } | kw


def test_a_review_is_stored_with_model_settings_and_time(served) -> None:
    body = _item(served.upload, verdict="wrong", reviewer="ann", settings={"hop": 0.25})
    res = served.client.post("/v1/reviews", json=body)
    assert res.status_code == 201, res.text
    review = res.json()["review"]
    assert review["id"] == 1 and review["verdict"] == "wrong" and review["reviewer"] == "ann"
    assert review["model"] == "seven-run" and review["model_sha256"] == "cd" * 32
    assert review["settings"] == {
        "hop": 0.25,
        "calibrated": True,
        "calibrated_thresholds": {"seven": 0.7},
    }
    assert review["created_at"].endswith("Z") and "path" not in review
    assert review["name"].startswith("upload-")
    assert review["audio_url"] == f"/v1/audio/{served.upload}?start_s=1&end_s=2"
    (stored,) = served.store.latest()
    assert stored.id == 1 and Path(stored.path) == served.recordings.path(served.upload)
    card = served.client.get("/v1/model").json()
    assert card["reviews"] is True and card["suggestions"] == 3 and card["search"] is False


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"verdict": "maybe"}, 422, "verdict must be one of"),
        ({"verdict": "relabel"}, 422, "needs new_label"),
        ({"verdict": "correct", "recording": "u0000000000000000"}, 422, "unknown recording"),
        ({"verdict": "correct", "recording": "../../etc/passwd"}, 422, "unknown recording"),
        ({"verdict": "correct", "start_s": 3.0}, 422, "must be after"),
        ({"verdict": "correct", "start_s": 9.0, "end_s": 10.0}, 422, "past the end"),
        ({"verdict": "correct", "settings": [1]}, 422, "settings must be"),
        ({"verdict": "correct", "source": None}, 422, "source must be"),
    ],
)
def test_bad_reviews_get_one_line_422(served, change: dict, status: int, message: str) -> None:
    res = served.client.post("/v1/reviews", json=_item(served.upload) | change)
    assert res.status_code == status, res.text
    assert message in res.json()["detail"] and "\n" not in res.json()["detail"]
    assert len(served.store) == 0


def test_bodies_that_are_not_a_review_are_refused(served) -> None:
    for content in (b"not json", b"[1, 2]", b'"text"'):
        res = served.client.post("/v1/reviews", content=content)
        assert res.status_code == 422 and "JSON object" in res.json()["detail"]
    res = served.client.post(
        "/v1/reviews",
        json={k: v for k, v in _item(served.upload).items() if k != "source"}
        | {"verdict": "correct"},
    )
    assert res.status_code == 422 and "source is required" in res.json()["detail"]
    res = served.client.post("/v1/reviews", content=b" " * (70 * 1024))
    assert res.status_code == 413


def test_list_pages_filters_and_undo(served) -> None:
    client = served.client
    ids = []
    for i in range(5):
        item = _item(served.upload, start_s=float(i) / 2, end_s=i / 2 + 0.5, verdict="correct")
        if i == 4:
            item["source"] = "search"
        ids.append(client.post("/v1/reviews", json=item).json()["review"]["id"])
    page = client.get("/v1/reviews", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and [r["id"] for r in page["reviews"]] == [ids[3], ids[2]]
    assert client.get("/v1/reviews", params={"source": "search"}).json()["total"] == 1
    assert client.get("/v1/reviews", params={"recording": "f0"}).json()["total"] == 0
    # a second verdict on an item supersedes the first; the history keeps both
    client.post(
        "/v1/reviews",
        json=_item(served.upload, start_s=0.0, end_s=0.5, verdict="relabel", new_label="noise"),
    )
    assert client.get("/v1/reviews").json()["total"] == 6
    latest = client.get("/v1/reviews", params={"latest": "true"}).json()
    assert latest["total"] == 5 and latest["reviews"][0]["verdict"] == "relabel"
    for bad in ({"limit": 0}, {"limit": "x"}, {"offset": -1}, {"latest": "perhaps"},
                {"source": "email"}):  # fmt: skip
        res = client.get("/v1/reviews", params=bad)
        assert res.status_code == 422 and isinstance(res.json()["detail"], str)
    assert client.delete(f"/v1/reviews/{ids[0]}").status_code == 204
    assert client.delete(f"/v1/reviews/{ids[0]}").status_code == 404
    assert client.delete("/v1/reviews/abc").status_code == 404
    assert client.get("/v1/reviews").json()["total"] == 5


def test_suggestions_are_items_in_order_with_their_reviews(served) -> None:
    client = served.client
    res = client.get("/v1/suggestions", params={"limit": 2})
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["total"] == 3 and len(doc["items"]) == 2
    first, second = doc["items"]
    assert first["name"] == "site/a.wav" and second["name"] == "b.wav"
    assert first["source"] == "suggestion" and first["uncertainty"] == 0.96
    assert "review" not in first
    audio = client.get(first["audio_url"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    sent = {k: first[k] for k in ("recording", "start_s", "end_s", "label", "score", "source")}
    made = client.post("/v1/reviews", json=sent | {"verdict": "wrong"}).json()["review"]
    again = client.get("/v1/suggestions").json()["items"]
    assert again[0]["review"]["id"] == made["id"] and again[0]["review"]["verdict"] == "wrong"
    assert "review" not in again[1] and "review" not in again[2]
    assert client.get("/v1/suggestions", params={"offset": 3}).json()["items"] == []
    assert client.get("/v1/suggestions", params={"limit": 0}).status_code == 422


def test_without_a_store_or_suggestions_the_endpoints_are_404(tmp_path: Path) -> None:
    client = TestClient(create_app(_model(), ServeSettings(), recordings=Recordings()))
    assert client.post("/v1/reviews", json={}).status_code == 404
    assert client.get("/v1/reviews").status_code == 404
    assert client.delete("/v1/reviews/1").status_code == 404
    res = client.get("/v1/suggestions")
    assert res.status_code == 404 and "--suggestions" in res.json()["detail"]
    card = client.get("/v1/model").json()
    assert card["reviews"] is False and card["suggestions"] == 0


def test_concurrent_requests_lose_no_review(served) -> None:
    errors: list[BaseException] = []

    def post(t: int) -> None:
        try:
            for i in range(15):
                item = _item(served.upload, start_s=i * 0.1, end_s=i * 0.1 + 0.5,
                             label=f"c{t}", verdict="correct")  # fmt: skip
                res = served.client.post("/v1/reviews", json=item)
                assert res.status_code == 201, res.text
        except BaseException as exc:  # collected: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(served.store) == 90


def test_suggestion_lists_are_checked(tmp_path: Path) -> None:
    from earmark.errors import ParameterError

    _wav(tmp_path / "a.wav")
    head = "file,start_s,end_s,label,score,uncertainty\n"
    cases = {
        "file,start,end\n": "no column",
        head + "a.wav,x,2,seven,0.5,0.9\n": "line 2: start_s 'x' is not a number",
        head + "a.wav,2,1,seven,0.5,0.9\n": "line 2: a window needs",
        head + "gone.wav,1,2,seven,0.5,0.9\n": "no window to review (1 recordings not found",
    }
    for text, message in cases.items():
        (tmp_path / "s.csv").write_text(text)
        with pytest.raises(ParameterError, match=re.escape(message)):
            load_suggestions(tmp_path / "s.csv")
    (tmp_path / "s.csv").write_text(head + "a.wav,1,2,,,0.9\ngone.wav,1,2,seven,0.5,0.9\n")
    s = load_suggestions(tmp_path / "s.csv")
    assert len(s) == 1 and s.missing == [(3, "gone.wav")] and s.items[0].label is None


def test_a_model_without_an_artifact_is_named_by_its_identity(tmp_path: Path) -> None:
    recordings = Recordings()
    rid = recordings.add_file(_wav(tmp_path / "a.wav"))
    app = create_app(
        _model(), recordings=recordings, reviews=ReviewStore(tmp_path / "r.sqlite"), name="m"
    )
    body = _item(rid, verdict="correct")
    first = TestClient(app).post("/v1/reviews", json=body).json()["review"]["model_sha256"]
    other = _model()
    other.classes_ = ["noise", "seven", "two"]
    app = create_app(other, recordings=recordings, reviews=ReviewStore(tmp_path / "r.sqlite"))
    second = TestClient(app).post("/v1/reviews", json=body).json()["review"]["model_sha256"]
    assert len(first) == 64 and first != second
