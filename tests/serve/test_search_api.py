"""``POST /v1/search`` (the shared contract's search hits) and ``earmark serve --index``."""

from __future__ import annotations

import gc
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from earmark.features import pretrained
from earmark.review.index import build_index, open_index
from earmark.serve import Recordings, ServeSettings, create_app

SR = 44_100
WINDOW = pretrained.info("aisfx").window_seconds
ITEM_KEYS = {"recording", "name", "start_s", "end_s", "label", "score", "source", "audio_url"}


class StandIn:
    """The model beside the index: /v1/search never calls it (the card reads its classes)."""

    classes_ = ("a", "b")
    model = "stand-in"


def _pips(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = 0.01 * rng.standard_normal(round(seconds * SR))
    t = np.arange(round(0.15 * SR)) / SR
    for start in rng.uniform(0, seconds - 0.15, size=round(6 * seconds)):
        i = round(start * SR)
        y[i : i + len(t)] += (
            0.3 * np.sin(2 * np.pi * rng.uniform(300, 8000) * t) * np.hanning(len(t))
        )
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search-corpus")
    (root / "site1").mkdir()
    sf.write(root / "site1" / "a.wav", _pips(5.0, 0), SR)
    sf.write(root / "b.wav", _pips(3.0, 1), SR)
    build_index(root, root.parent / "idx", device="cpu")
    return root


@pytest.fixture(scope="module")
def client(corpus: Path) -> TestClient:
    index = open_index(corpus.parent / "idx")
    return TestClient(create_app(StandIn(), ServeSettings(max_duration=10.0), index=index))


def _query(corpus: Path, start: float) -> bytes:
    y, _ = sf.read(corpus / "site1" / "a.wav", dtype="float32")
    clip = y[round(start * SR) : round(start * SR) + round(WINDOW * SR)]
    buf = io.BytesIO()
    sf.write(buf, clip, SR, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_hits_are_playable_reviewable_items(client: TestClient, corpus: Path) -> None:
    body = _query(corpus, WINDOW)  # exactly the second window of site1/a.wav
    res = client.post("/v1/search", params={"k": 3}, files={"file": ("q.wav", body, "audio/wav")})
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["took_ms"] > 0 and len(doc["hits"]) == 3
    first = doc["hits"][0]
    assert ITEM_KEYS | {"distance", "rank"} <= set(first)
    assert first["name"] == "site1/a.wav" and first["source"] == "search"
    assert first["start_s"] == pytest.approx(WINDOW, abs=1e-3) and first["rank"] == 1
    assert first["distance"] < 1e-3 and first["label"] is None
    assert [h["rank"] for h in doc["hits"]] == [1, 2, 3]
    assert str(corpus) not in res.text  # the server's paths never reach a client
    rid = first["recording"]
    assert rid in client.app.state.recordings
    wav = client.get(first["audio_url"])
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    y, sr = sf.read(io.BytesIO(wav.content))
    assert sr == SR and abs(len(y) - round(WINDOW * SR)) <= 2
    # a raw body is a query too
    raw = client.post("/v1/search", content=body, headers={"content-type": "audio/wav"})
    assert raw.status_code == 200 and raw.json()["hits"][0]["recording"] == rid
    card = client.get("/v1/model").json()
    assert card["search"] is True


def test_bad_queries(client: TestClient, corpus: Path) -> None:
    res = client.post("/v1/search", files={"file": ("q.wav", b"not audio", "audio/wav")})
    assert res.status_code == 415 and "\n" not in res.json()["detail"]
    assert str(corpus) not in res.text
    assert client.post("/v1/search", params={"k": 0}, content=b"x").status_code == 422
    long = io.BytesIO()
    sf.write(long, np.zeros(11 * SR, np.float32), SR, format="WAV")
    res = client.post("/v1/search", files={"file": ("l.wav", long.getvalue(), "audio/wav")})
    assert res.status_code == 413 and "limit" in res.json()["detail"]


def test_no_index_is_404(tmp_path: Path) -> None:
    plain = TestClient(create_app(StandIn(), ServeSettings(), recordings=Recordings()))
    res = plain.post("/v1/search", content=b"x")
    assert res.status_code == 404 and "--index" in res.json()["detail"]
    assert plain.get("/v1/model").json()["search"] is False


def test_serve_cli_opens_the_index(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import earmark.loading
    import earmark.serve
    from earmark.cli import app

    served = []
    monkeypatch.setattr(earmark.loading, "load", lambda *a, **k: StandIn())
    monkeypatch.setattr(earmark.serve, "run", lambda app_, **kw: served.append(app_))
    monkeypatch.setattr(gc, "freeze", lambda: None)  # the test process goes on
    runner = CliRunner()
    res = runner.invoke(
        app, ["serve", str(tmp_path), "--index", str(corpus.parent / "idx"), "--no-reviews"]
    )
    assert res.exit_code == 0, res.output
    assert served and served[0].state.index is not None
    assert len(served[0].state.recordings) == 2
    res = runner.invoke(
        app, ["serve", str(tmp_path), "--index", str(tmp_path / "none"), "--no-reviews"]
    )
    assert res.exit_code == 1 and "no such index folder" in res.stderr
