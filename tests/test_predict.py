"""The predictor interface: every model family predicts and detects through it, unreadable
files are typed errors, long files stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import earmark
from earmark import data
from earmark.cli import app
from earmark.detection import Windowing, score_file
from earmark.errors import AudioError, ParameterError
from earmark.predict import STREAM_SECONDS, Predictor
from earmark.preprocess import Preprocessing
from earmark.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def digits(demo_digits: Path):
    m = data.load(demo_digits)
    return m.subset(m.frame["label"].isin(["one", "two", "three"]).to_numpy())


@pytest.fixture(scope="module")
def handcrafted(digits) -> earmark.Classifier:
    """A classical model on hand-crafted statistics of clips at their own lengths (no
    duration): its window is the longest training clip, an odd number of samples' worth."""
    clf = earmark.Classifier("logreg", features="handcrafted").fit(digits)
    assert clf.audio.duration is None and clf.audio.n_samples is None
    return clf


@pytest.fixture(scope="module")
def recording(digits, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """12 s of faint noise with a "two" at known times."""
    sr = 16_000
    rng = np.random.default_rng(0)
    y = (0.002 * rng.standard_normal(12 * sr)).astype(np.float32)
    two = [p for p, c in zip(digits.filepaths, digits.frame["label"], strict=True) if c == "two"]
    clip, _ = sf.read(two[0], dtype="float32")
    onsets = [2.0, 7.0]
    for t in onsets:
        y[int(t * sr) : int(t * sr) + clip.size] += clip
    path = tmp_path_factory.mktemp("rec") / "rec.wav"
    sf.write(path, y, sr)
    return path, onsets


@pytest.mark.parametrize("model", ["logreg", "gnb"])
def test_classical_models_detect_like_networks(
    model: str, digits, recording, tmp_path: Path
) -> None:
    clf = earmark.Classifier(model, features="handcrafted").fit(digits)
    path, onsets = recording
    track = score_file(clf, path)
    assert track.window == pytest.approx(clf.clip_seconds_, abs=1e-4)
    assert len(track.starts) > 10 and track.scores.shape[1] == 3
    # a window over a "two" scores it higher than the noise around it
    inside = [int(np.argmin(np.abs(track.starts - t))) for t in onsets]
    assert all(track.scores[i, clf.classes_.index("two")] > 0.5 for i in inside)
    with pytest.raises(ParameterError, match="windows of its training clip length"):
        score_file(
            earmark.Classifier(model, features="logmel", audio=_one_s()).fit(digits),
            path,
            Windowing(window=0.5),
        )


def _one_s():
    from earmark.audio import AudioConfig

    return AudioConfig(duration=1.0)


def test_classical_detect_from_the_cli_and_the_server(
    handcrafted, recording, tmp_path: Path
) -> None:
    run = handcrafted.save(tmp_path / "lr")
    path, _ = recording
    res = CliRunner().invoke(
        app, ["detect", str(run), str(path), "--out", str(tmp_path / "det"), "--hop", "0.25"]
    )
    assert res.exit_code == 0, res.output
    events = (tmp_path / "det" / "events.csv").read_text().splitlines()[1:]
    assert events, "no events"
    with TestClient(create_app(handcrafted, ServeSettings(max_duration=60.0))) as client:
        got = client.post("/v1/detect", files={"file": ("r.wav", path.read_bytes())})
    assert got.status_code == 200, got.text


def test_unreadable_files_are_audio_errors_not_type_errors(
    handcrafted, digits, broken_dir: Path
) -> None:
    bad = broken_dir / "text.wav"
    with pytest.raises(AudioError, match=r"text\.wav"):
        handcrafted.predict_proba([bad])
    with pytest.raises(AudioError) as caught:
        handcrafted.predict([digits.filepaths[0], bad])
    assert caught.value.path == str(bad)
    ens = earmark.Ensemble([handcrafted, handcrafted])
    with pytest.raises(AudioError, match=r"text\.wav"):
        ens.predict_proba([bad])
    with pytest.raises(AudioError, match=r"text\.wav"):
        handcrafted.predict_file(bad)


def test_long_files_stream_in_blocks_and_pool_like_short_ones(
    handcrafted, digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file over STREAM_SECONDS is never decoded whole: its windows come from the block
    reader (memory flat), and its pooled scores are those of the same windows."""
    sr = 16_000
    clips = [sf.read(p, dtype="float32")[0] for p in digits.filepaths[:8]]
    n = int((STREAM_SECONDS + 5) * sr)
    y = np.tile(np.concatenate(clips), n // sum(len(c) for c in clips) + 1)[:n]
    long = tmp_path / "long.wav"
    sf.write(long, y, sr)
    calls = []
    real_read = Preprocessing.read

    def read(self, path, **kw):  # counts files decoded whole (the long one stops at its header)
        y = real_read(self, path, **kw)
        calls.append(Path(path).name)
        return y

    monkeypatch.setattr(Preprocessing, "read", read)
    short = tmp_path / "short.wav"
    sf.write(short, clips[0], sr)
    preds = handcrafted.predict_files([short, long], top_k=3)
    assert calls == ["short.wav"]  # the long one streamed
    p = preds[1]
    assert p.duration == pytest.approx(STREAM_SECONDS + 5, abs=0.01)
    # the same windows decoded whole give the same pooled scores
    prep = handcrafted.preprocessing
    segments, starts = prep.cut(real_read(prep, long))
    assert p.window_starts == pytest.approx(starts)
    whole = handcrafted.predictor.score_windows(segments).mean(axis=0)
    np.testing.assert_allclose(
        [p.scores[p.labels.index(c)] for c in handcrafted.classes_], whole, atol=1e-5
    )


def test_pooling_and_top_k(handcrafted) -> None:
    pred = Predictor(handcrafted.preprocessing, ["a", "b"], lambda X: X, pooling="max")
    out = pred.pooled("f", 2.0, [0.0, 1.0], np.array([[0.1, 0.9], [0.8, 0.2]]), top_k=5)
    assert out.labels == ["b", "a"] and out.scores == [0.9, 0.8]  # top_k clamped to 2
    mean = Predictor(handcrafted.preprocessing, ["a", "b"], lambda X: X)
    out = mean.pooled("f", 2.0, [0.0, 1.0], np.array([[0.1, 0.9], [0.8, 0.2]]), top_k=1)
    assert out.labels == ["b"] and out.scores == [pytest.approx(0.55)]
    with pytest.raises(ParameterError):
        Predictor(handcrafted.preprocessing, ["a"], lambda X: X, pooling="median")


def test_scoring_and_prediction_stop_once_cancelled(handcrafted, recording) -> None:
    """Inside ``cancel_on(event)`` the streaming loops check the event between blocks and
    batches (and files): set, they raise Cancelled; outside, nothing is checked."""
    import threading

    from earmark.predict import Cancelled, cancel_on

    path, _ = recording
    event = threading.Event()
    blocks: list[float] = []

    def on_block(seconds: float) -> None:
        blocks.append(seconds)
        event.set()  # the caller gives up after the first block

    with cancel_on(event), pytest.raises(Cancelled):
        score_file(handcrafted, path, Windowing(hop=0.5), block_seconds=2.0, on_block=on_block)
    assert len(blocks) == 1  # stopped at the next block (12 s in blocks of 2 s)
    with cancel_on(event), pytest.raises(Cancelled):
        handcrafted.predict_files([path, path], top_k=1)
    with cancel_on(threading.Event()):  # an event not set: the work runs
        assert handcrafted.predict_file(path, top_k=1).labels
    track = score_file(handcrafted, path, Windowing(hop=0.5), block_seconds=2.0)
    assert track.duration == pytest.approx(12.0)  # no cancel_on: nothing to stop it
