"""The HTTP API with real audio: every endpoint and every limit."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st

from earmark.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def client(detector) -> TestClient:
    return TestClient(
        create_app(
            detector, ServeSettings(max_upload_bytes=200_000, max_duration=30.0), name="digits"
        )
    )


def test_predict_a_multipart_upload_and_a_raw_body(
    client: TestClient, detector, demo_digits: Path
) -> None:
    clip = demo_digits / "three" / "v002.wav"
    want = detector.predict_file(clip, top_k=5)
    res = client.post("/v1/predict", files={"file": ("clip.wav", clip.read_bytes(), "audio/wav")})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["labels"] == want.labels and body["scores"][0] == pytest.approx(
        want.scores[0], abs=1e-5
    )
    assert body["model"]["name"] == "digits" and body["duration_s"] > 0
    raw = client.post(
        "/v1/predict", content=clip.read_bytes(), headers={"content-type": "audio/wav"}
    )
    assert raw.status_code == 200 and raw.json()["labels"] == want.labels


def test_long_input_returns_window_scores(
    client: TestClient, recording: Path, tmp_path: Path
) -> None:
    import soundfile as sf

    y, sr = sf.read(recording, dtype="float32")
    sf.write(tmp_path / "five.wav", y[: 5 * sr], sr, subtype="PCM_16")  # 160 kB: under the cap
    res = client.post(
        "/v1/predict",
        content=(tmp_path / "five.wav").read_bytes(),
        headers={"content-type": "audio/wav"},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["windows"] > 1 and len(body["window_scores"]) == body["windows"]
    assert body["duration_s"] == pytest.approx(5.0)


def test_model_card_health_readiness_metrics_and_schema(client: TestClient, detector) -> None:
    card = client.get("/v1/model").json()
    assert card["classes"] == detector.classes_ and card["audio"]["sample_rate"] == 16_000
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json()["status"] == "ready"
    client.get("/healthz")
    for k in range(3):  # unknown paths share one label: the metrics cannot grow unbounded
        assert client.get(f"/no/such/path/{k}").status_code == 404
    text = client.get("/metrics").text
    assert 'earmark_requests_total{endpoint="/healthz",status="200"}' in text
    assert 'earmark_requests_total{endpoint="other",status="404"} 3.0' in text
    assert "/no/such" not in text
    assert "earmark_request_seconds_bucket" in text and "earmark_queue_depth" in text
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_limits_and_bad_input(
    client: TestClient, broken_dir: Path, formats_dir: Path, tmp_path: Path
) -> None:
    big = b"RIFF" + b"\0" * 300_000
    res = client.post("/v1/predict", content=big, headers={"content-type": "audio/wav"})
    assert res.status_code == 413 and "limit" in res.json()["detail"]

    def chunks():  # no Content-Length: refused once the limit is passed
        for _ in range(10):
            yield b"\0" * 50_000

    res = client.post("/v1/predict", content=chunks(), headers={"content-type": "audio/wav"})
    assert res.status_code == 413
    res = client.post("/v1/predict", content=b"hello", headers={"content-type": "text/plain"})
    assert res.status_code == 415
    res = client.post("/v1/predict", files={"file": ("notes.wav", b"just some text", "audio/wav")})
    assert res.status_code == 415 and "not an audio" in res.json()["detail"]
    cut = (broken_dir / "cut.flac").read_bytes()
    res = client.post("/v1/predict", files={"file": ("cut.flac", cut, "audio/flac")})
    assert res.status_code == 400 and "truncated" in res.json()["detail"]


def test_upload_names_are_never_paths_and_temp_files_are_removed(
    detector, demo_digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    made: list[str] = []
    mkstemp = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, path = mkstemp(*args, **kwargs)
        made.append(path)
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    target = tmp_path / "evil.wav"
    clip = (demo_digits / "one" / "v000.wav").read_bytes()
    with TestClient(create_app(detector, ServeSettings(upload_dir=str(uploads)))) as client:
        for name in ("../../evil.wav", str(target), "..\\evil.wav", "a/b/c.wav"):
            res = client.post("/v1/predict", files={"file": (name, clip, "audio/wav")})
            assert res.status_code == 200, res.text
    assert len(made) == 4 and all(Path(p).parent == uploads for p in made)
    assert all(Path(p).name.startswith("earmark-upload-") for p in made)
    assert not target.exists() and list(uploads.iterdir()) == []


def test_uploads_go_to_memory_where_there_is_tmpfs(
    detector, demo_digits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    made: list[Path] = []
    mkstemp = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, path = mkstemp(*args, **kwargs)
        made.append(Path(path))
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    clip = (demo_digits / "one" / "v000.wav").read_bytes()

    def upload() -> Path:
        with TestClient(create_app(detector, ServeSettings())) as client:  # upload_dir unset
            res = client.post("/v1/predict", content=clip, headers={"content-type": "audio/wav"})
            assert res.status_code == 200, res.text
        assert not made[-1].exists()  # removed after the answer
        return made[-1].parent

    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        assert upload() == shm
    real_access = os.access

    def no_shm(path, mode, *args, **kwargs) -> bool:  # a system without a usable tmpfs
        return False if Path(path) == shm else real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", no_shm)
    assert upload() == Path(tempfile.gettempdir())


class _Slow:
    """A model without a predictor (as an ensemble): the server runs ``predict_file`` per
    request, which takes ``seconds`` longer."""

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.classes_ = inner.classes_
        self.model = "slow"
        self.scored: list[int] = []  # files per call (finished or failed)

    def predict_file(self, path, top_k=5):
        time.sleep(self.seconds)
        try:  # (after a timeout the upload is gone: this fails, in a thread nobody awaits)
            return self.inner.predict_file(path, top_k=top_k)
        finally:
            self.scored.append(1)


class _SlowBatches:
    """A classifier whose predictor takes ``seconds`` longer to score each batch: the server
    takes its batched path (decode, queue the windows, score them in a worker thread)."""

    def __init__(self, inner, seconds: float) -> None:
        self.classes_ = inner.classes_
        self.model = "slow"
        self.scored: list[int] = []  # windows per batch
        self.predictor = inner.predictor
        score = self.predictor.score

        def slow(x):
            time.sleep(seconds)
            self.scored.append(len(x))
            return score(x)

        self.predictor.score = slow

    def predict_file(self, path, top_k=5):
        raise AssertionError("the server must score through the batcher")


def _slow_app(kind: str, detector, seconds: float, **settings):
    if kind == "batched":
        model = _SlowBatches(detector, seconds)
        app = create_app(model, ServeSettings(**settings))
        assert app.state.batcher is not None
    else:
        model = _Slow(detector, seconds)
        app = create_app(model, ServeSettings(**settings))
        assert getattr(app.state, "batcher", None) is None
    return app, model


@pytest.mark.parametrize("kind", ["batched", "per-request"])
def test_busy_server_answers_503_and_health_stays_responsive(
    detector, demo_digits: Path, kind: str
) -> None:
    app, model = _slow_app(kind, detector, 1.0, max_concurrency=1, max_queue=0)
    clip = demo_digits / "one" / "v000.wav"
    with TestClient(app) as client:
        results = {}

        def slow() -> None:
            results["slow"] = client.post(
                "/v1/predict", content=clip.read_bytes(), headers={"content-type": "audio/wav"}
            )

        worker = threading.Thread(target=slow)
        worker.start()
        time.sleep(0.3)
        t0 = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        assert time.perf_counter() - t0 < 0.5  # not stuck behind the prediction
        busy = client.post(
            "/v1/predict", content=clip.read_bytes(), headers={"content-type": "audio/wav"}
        )
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "busy" in busy.json()["detail"]
        worker.join()
        assert results["slow"].status_code == 200, results["slow"].text
        assert results["slow"].json()["labels"] == detector.predict_file(clip, top_k=5).labels
    if kind == "batched":  # one batch scored: the refused request never reached the model
        assert app.state.batcher.batches == 1 and len(model.scored) == 1


@pytest.mark.parametrize("kind", ["batched", "per-request"])
def test_timeout_answers_504_without_waiting_for_the_model(
    detector, demo_digits: Path, kind: str
) -> None:
    app, model = _slow_app(kind, detector, 1.0, timeout=0.2)
    clip = (demo_digits / "one" / "v000.wav").read_bytes()
    with TestClient(app) as client:
        t0 = time.perf_counter()
        res = client.post("/v1/predict", content=clip, headers={"content-type": "audio/wav"})
        took = time.perf_counter() - t0
        assert res.status_code == 504 and "took over 0.2 s" in res.json()["detail"]
        assert took < 0.8  # answered at the timeout, not when the model was done
        if kind == "batched":
            assert app.state.batcher.batches == 0  # the batch was still being scored
        for _ in range(100):  # let the model finish before the server stops (no thread left)
            if model.scored:
                break
            time.sleep(0.05)
        assert model.scored == [1]


def test_duration_limit(detector, recording: Path) -> None:
    import soundfile as sf

    app = create_app(detector, ServeSettings(max_duration=5.0))
    with TestClient(app) as client:
        res = client.post(
            "/v1/predict", content=recording.read_bytes(), headers={"content-type": "audio/wav"}
        )
        assert res.status_code == 413 and "over the limit" in res.json()["detail"]
        assert app.state.batcher.batches == 0  # refused while decoding: nothing scored
        short = recording.parent / "short.wav"
        y, sr = sf.read(recording, dtype="float32")
        sf.write(short, y[: 4 * sr], sr, subtype="PCM_16")
        res = client.post(
            "/v1/predict", content=short.read_bytes(), headers={"content-type": "audio/wav"}
        )
        assert res.status_code == 200 and app.state.batcher.batches == 1


def test_detect_returns_events_counts_and_the_score_track(
    client: TestClient, detector, recording: Path, tmp_path: Path
) -> None:
    import soundfile as sf

    from earmark.detection import Windowing, score_file
    from earmark.detection.events import EventRules, find_events

    y, sr = sf.read(recording, dtype="float32")
    sf.write(tmp_path / "six.wav", y[: 6 * sr], sr, subtype="PCM_16")
    data = (tmp_path / "six.wav").read_bytes()
    res = client.post(
        "/v1/detect?hop=0.5&threshold=0.3&background=zero",
        files={"file": ("six.wav", data, "audio/wav")},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    want = find_events(
        score_file(detector, tmp_path / "six.wav", Windowing(hop=0.5)),
        EventRules(threshold=0.3, background=("zero",)),
    )
    assert [(e["label"], e["start_s"]) for e in body["events"]] == [
        (e.label, round(e.start, 4)) for e in want
    ]
    assert "zero" not in body["counts"] and sum(body["counts"].values()) == len(want)
    assert len(body["window_starts_s"]) == len(body["window_scores"]) == 11
    bad = client.post("/v1/detect?background=owl", files={"file": ("six.wav", data, "audio/wav")})
    assert bad.status_code == 422 and "owl" in bad.json()["detail"]


def test_requests_arriving_together_are_scored_in_one_batch(detector, demo_digits: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    app = create_app(detector, ServeSettings(batch_wait=0.5, batch_max_windows=64))
    clips = sorted(demo_digits.glob("*/v004.wav"))[:6]
    with TestClient(app) as client:

        def post(path: Path) -> dict:
            res = client.post(
                "/v1/predict", content=path.read_bytes(), headers={"content-type": "audio/wav"}
            )
            assert res.status_code == 200, res.text
            return res.json()

        with ThreadPoolExecutor(len(clips)) as pool:
            answers = list(pool.map(post, clips))
        assert app.state.batcher.batches < len(clips)  # batched, not one call per request
    for clip, got in zip(clips, answers, strict=True):
        want = detector.predict_file(clip, top_k=5)
        assert got["labels"] == want.labels
        assert got["scores"] == pytest.approx(want.scores, abs=1e-5)


# -- timed-out work is stopped ------------------------------------------------------------------


def test_timed_out_work_keeps_its_place_until_it_stops(detector, demo_digits: Path) -> None:
    """Work that cannot be stopped at once (the model is in a long call) still counts
    against the concurrency limit after its 504, until it returns."""
    app, model = _slow_app("per-request", detector, 1.0, timeout=0.2, max_concurrency=1)
    clip = (demo_digits / "one" / "v000.wav").read_bytes()
    audio = {"content-type": "audio/wav"}
    with TestClient(app) as client:
        assert client.post("/v1/predict", content=clip, headers=audio).status_code == 504
        assert app.state.load["pending"] == 1  # still running
        t0 = time.perf_counter()
        res = client.post("/v1/predict", content=clip, headers=audio)  # waits for the place
        assert res.status_code == 504 and model.scored == [1]
        assert time.perf_counter() - t0 > 0.5  # it waited for the first to stop
        for _ in range(100):
            if app.state.load["pending"] == 0:
                break
            time.sleep(0.05)
        assert app.state.load == {"pending": 0, "decoding": 0, "receiving": 0, "stopping": 0}
    limits = {"timeout": 0.2, "max_concurrency": 1, "max_queue": 0}
    app, model = _slow_app("per-request", detector, 1.0, **limits)
    with TestClient(app) as client:
        assert client.post("/v1/predict", content=clip, headers=audio).status_code == 504
        busy = client.post("/v1/predict", content=clip, headers=audio)
        assert busy.status_code == 503  # its place is still taken
        for _ in range(100):
            if model.scored:
                break
            time.sleep(0.05)
        time.sleep(0.1)
        assert client.post("/v1/predict", content=clip, headers=audio).status_code == 504


def _cpu_seconds(during: float) -> float:
    t0 = time.process_time()
    time.sleep(during)
    return time.process_time() - t0


def test_timed_out_detection_stops_within_two_seconds(
    detector, watched, live, recording: Path
) -> None:
    """Four detections far longer than the timeout (20 s at a 1 ms hop: 20,000 windows),
    two at a time: each gets 504 and stops scoring, and the server goes quiet."""
    import httpx

    model = watched(detector)
    app = create_app(model, ServeSettings(timeout=0.5, max_concurrency=2, max_queue=4))
    url = live(app)
    data = recording.read_bytes()
    statuses: list[int] = []

    def post() -> None:
        res = httpx.post(
            f"{url}/v1/detect?hop=0.001",
            content=data,
            headers={"content-type": "audio/wav"},
            timeout=30,
        )
        statuses.append(res.status_code)

    workers = [threading.Thread(target=post) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    last = time.monotonic()
    assert statuses == [504] * 4
    while app.state.load["pending"] and time.monotonic() - last < 5:
        time.sleep(0.02)
    assert app.state.load["pending"] == 0 and app.state.load["stopping"] == 0
    stopped = time.monotonic() - last
    assert stopped < 2.0, f"the timed-out work ran on for {stopped:.1f} s"
    calls = len(model.calls)
    assert calls >= 4  # each had started scoring
    assert _cpu_seconds(0.6) < 0.3  # nothing is left burning the CPU
    assert len(model.calls) == calls  # ... nor scoring
    text = httpx.get(f"{url}/metrics").text
    assert "earmark_timed_out_running 0.0" in text and "earmark_queue_depth 0.0" in text


# -- query parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "window=nan",
        "window=inf",
        "hop=inf",
        "hop=-inf",
        "window=1e300",
        "hop=0",
        "window=-1",
        "hop=NaN",
        "window=abc",
        "threshold=1.5",
        "threshold=-0.1",
        "threshold=nan",
        "merge_gap=-1",
        "merge_gap=inf",
        "min_duration=nan",
        "min_duration=-2",
        # over max_detect_duration (here 100 s), though the library would take them
        "hop=200",
        "window=150",
        "merge_gap=1e300",
        "min_duration=1e300",
    ],
)
def test_detect_refuses_bad_numbers_with_422(detector, query: str) -> None:
    client = TestClient(create_app(detector, ServeSettings(max_detect_duration=100)))
    res = client.post(f"/v1/detect?{query}", content=b"x", headers={"content-type": "audio/wav"})
    assert res.status_code == 422, res.text


# -- fuzzing: nothing a client sends gives a 500 -----------------------------------------------


def _wav(seconds: float = 0.5) -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(int(16_000 * seconds)) / 16_000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16_000, format="WAV")
    return buf.getvalue()


WAV = _wav()
CLASSES = ["one", "two", "zero"]
NUMBERS = st.one_of(
    st.floats().map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["nan", "-NaN", "inf", "-Infinity", "1e300", "-0", "1e-300", "0x1", "", "1_0"]),
    st.text(max_size=6),
)
NUMERIC = ["window", "hop", "threshold", "merge_gap", "min_duration"]
QUERIES = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(NUMERIC), NUMBERS),
        st.tuples(st.just("background"), st.one_of(st.sampled_from(CLASSES), st.text(max_size=5))),
        st.tuples(st.text(max_size=5), st.text(max_size=5)),
    ),
    max_size=5,
)
BODIES = st.one_of(
    st.binary(max_size=3000),
    st.integers(0, len(WAV)).map(lambda n: WAV[:n]),  # truncated
    st.tuples(st.integers(0, 60), st.binary(min_size=1, max_size=6)).map(  # header damaged
        lambda t: WAV[: t[0]] + t[1] + WAV[t[0] + len(t[1]) :]
    ),
    st.tuples(
        st.sampled_from([b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x00\x00\x00\x20ftypM4A ", b"\x1aE"]),
        st.binary(max_size=500),
    ).map(b"".join),
)
KINDS = ["audio/wav", "audio/ogg", "audio/flac", "audio/mpeg", "audio/mp4", "video/webm", ""]


@pytest.fixture(scope="module")
def fuzz_url(detector, serving):
    settings = ServeSettings(timeout=10.0, max_upload_bytes=100_000, max_detect_duration=600)
    with serving(create_app(detector, settings)) as url:
        yield url


def _no_server_error(res) -> None:
    assert res.status_code < 500 or res.status_code in (503, 504), (res.status_code, res.text)
    if res.status_code >= 400:
        assert "earmark-upload" not in res.text and "/dev/shm" not in res.text, res.text


# Derandomized: the same examples on every run (CI stays repeatable; a new find is pinned
# with @example).
FUZZ = fuzzing(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzzing(FUZZ, max_examples=40)
@given(query=QUERIES)
def test_fuzzed_detect_queries_never_give_500(fuzz_url: str, query) -> None:
    from urllib.parse import urlencode

    import httpx

    res = httpx.post(
        f"{fuzz_url}/v1/detect?{urlencode(query)}",
        content=WAV,
        headers={"content-type": "audio/wav"},
        timeout=30,
    )
    _no_server_error(res)


@fuzzing(FUZZ, max_examples=60)
@given(
    body=BODIES,
    kind=st.sampled_from(KINDS),
    multipart=st.booleans(),
    endpoint=st.sampled_from(["/v1/predict", "/v1/detect"]),
)
@example(  # a format code no decoder knows, sent as .m4a: PyAV's stream had no codec (500)
    body=WAV[:21] + b"\x01" + WAV[22:], kind="audio/mp4", multipart=False, endpoint="/v1/predict"
)
def test_fuzzed_uploads_never_give_500(
    fuzz_url: str, body: bytes, kind: str, multipart: bool, endpoint: str
) -> None:
    import httpx

    if multipart:
        res = httpx.post(
            f"{fuzz_url}{endpoint}", files={"file": ("upload", body, kind or None)}, timeout=30
        )
    else:
        res = httpx.post(
            f"{fuzz_url}{endpoint}", content=body, headers={"content-type": kind}, timeout=30
        )
    _no_server_error(res)
