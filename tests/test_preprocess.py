"""One preprocessing path: the same file gives the same features and the same scores through
every path that feeds a model (validation during training, the feature tables of classical
training, evaluate, predict, detect on a recording that is that clip, the server, ONNX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

import earmark
from earmark import data
from earmark.audio import AudioConfig, standardize
from earmark.classifier import Classifier
from earmark.detection import Windowing, score_file
from earmark.features.table import compute_features
from earmark.preprocess import Preprocessing
from earmark.serve import ServeSettings, create_app
from earmark.training import TrainConfig, WaveBank

# Clips shorter than the window, normalized (RMS) and centred in it: every step that could
# differ between paths (normalization before or after padding, where the padding goes) does.
AUDIO = AudioConfig(duration=1.0, normalize="rms", pad="both")


@pytest.fixture(scope="module")
def digits(demo_digits: Path):
    m = data.load(demo_digits)
    return m.subset(m.frame["label"].isin(["one", "two", "three"]).to_numpy())


@pytest.fixture(scope="module")
def network(digits) -> Classifier:
    cfg = TrainConfig(epochs=2, batch_size=8, device="cpu", seed=0, augment="none")
    return Classifier("seed-cnn", audio=AUDIO, train=cfg).fit(digits, valid=digits)


@pytest.fixture(scope="module")
def classical(digits) -> Classifier:
    return Classifier("logreg", features="logmel", audio=AUDIO).fit(digits)


@pytest.fixture(scope="module")
def clip(digits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clip shorter than the window, quieter than the others, at another sample rate."""
    y, sr = sf.read(digits.filepaths[0], dtype="float32")
    assert len(y) < sr  # shorter than the 1 s window
    path = tmp_path_factory.mktemp("clip") / "clip.flac"
    sf.write(path, 0.2 * y, sr)
    return path


def _in_class_order(pred, classes: list[str]) -> np.ndarray:
    return np.array([pred.scores[pred.labels.index(c)] for c in classes])


def _served(model, clip: Path) -> np.ndarray:
    app = create_app(model, ServeSettings(top_k=len(model.classes_)))
    with TestClient(app) as client:
        res = client.post("/v1/predict", files={"file": ("c.flac", clip.read_bytes())})
    assert res.status_code == 200, res.text
    body = res.json()
    return np.array([body["scores"][body["labels"].index(c)] for c in model.classes_])


def test_the_features_of_a_clip_are_the_same_on_every_path(network, clip: Path) -> None:
    prep = network.preprocessing
    segments, starts = prep.cut(prep.read(clip))
    assert starts == [0.0]
    predicted = prep.features_of(prep.prepare(segments), flat=False)
    # the feature table of classical training (one clip, standardized by load_clip)
    m = data.Manifest.from_records([clip], ["one"])
    table = compute_features(m, prep.audio, prep.features)
    np.testing.assert_allclose(predicted, table.X, atol=1e-4)
    # validation during training: the wave bank's centred window through the frontend
    bank, _, _ = WaveBank.from_manifest(m, prep.audio, ["one"])
    batch = bank.batch(torch.tensor([0]), prep.window)
    with torch.inference_mode():
        validated = prep.frontend()(batch).numpy()
    np.testing.assert_allclose(predicted, validated, atol=1e-4)
    # a training clip is one window
    np.testing.assert_allclose(prep.prepare(segments)[0], prep.clip(clip), atol=1e-6)


@pytest.mark.parametrize("which", ["network", "classical"])
def test_the_scores_of_a_clip_are_the_same_on_every_path(
    which: str, request: pytest.FixtureRequest, clip: Path, tmp_path: Path
) -> None:
    model: Classifier = request.getfixturevalue(which)
    prep = model.preprocessing
    want = model.predict_proba([clip])[0]
    assert want.shape == (len(model.classes_),)
    # the model on the features the feature table holds
    m = data.Manifest.from_records([clip], [model.classes_[0]])
    X = compute_features(m, prep.audio, prep.features).X
    flat = X.reshape(len(X), -1) if which == "classical" else X
    np.testing.assert_allclose(model.estimator_.predict_proba(flat)[0], want, atol=1e-5)
    got = {
        "evaluate": model.evaluate(m).proba[0],
        "detect": score_file(model, clip, Windowing()).scores[0],
        "predict_file": _in_class_order(model.predict_file(clip, top_k=99), model.classes_),
        "server": _served(model, clip),
    }
    if which == "network":
        onnx = earmark.load(earmark.export(model, tmp_path / "m.onnx"))
        got["onnx"] = onnx.predict_proba([clip])[0]
        got["onnx detect"] = score_file(onnx, clip).scores[0]
    for path, scores in got.items():
        np.testing.assert_allclose(scores, want, atol=1e-4, err_msg=path)


def test_a_recording_that_is_the_clip_detects_as_the_clip_predicts(
    network, clip: Path, tmp_path: Path
) -> None:
    """Windows of a long recording are normalized one by one, as the clip alone is."""
    y, sr = sf.read(clip, dtype="float32")
    z = np.zeros(sr, np.float32)  # the clip, louder, as one full window
    z[(sr - len(y)) // 2 : (sr - len(y)) // 2 + len(y)] = 4 * y
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.concatenate([np.zeros(sr, np.float32), z, np.zeros(3 * sr // 2)]), sr)
    # a window exactly over the clip (1 s of silence before it, hop 1 s)
    track = score_file(network, rec, Windowing(window=1.0, hop=1.0))
    at = int(np.argmin(np.abs(track.starts - 1.0)))
    assert track.starts[at] == 1.0
    alone = tmp_path / "alone.wav"
    sf.write(alone, z, sr)
    np.testing.assert_allclose(track.scores[at], network.predict_proba([alone])[0], atol=1e-4)
    # each window normalized on its own: a quieter recording scores the same
    sf.write(rec, np.concatenate([np.zeros(sr, np.float32), z / 8, np.zeros(3 * sr // 2)]), sr)
    quiet = score_file(network, rec, Windowing(window=1.0, hop=1.0))
    np.testing.assert_allclose(quiet.scores, track.scores, atol=1e-4)


def test_standardize_crops_normalizes_then_pads() -> None:
    """A clip longer than the duration is cropped first, so its kept part is normalized as a
    window of it would be; a shorter one is normalized before its padding."""
    cfg = AudioConfig(duration=0.5, normalize="rms", crop="start", sample_rate=16_000)
    y = np.concatenate([np.full(8000, 0.5), np.full(8000, 0.01)]).astype(np.float32)[None]
    out = standardize(y, 16_000, cfg)
    assert np.sqrt(np.mean(out**2)) == pytest.approx(0.1, rel=1e-3)  # -20 dBFS of the crop
    short = standardize(y[:, :4000], 16_000, cfg)
    assert np.sqrt(np.mean(short[:, :4000] ** 2)) == pytest.approx(0.1, rel=1e-3)
    assert not short[:, 4000:].any()


def test_windows_and_padding(tmp_path: Path) -> None:
    prep = Preprocessing(AudioConfig(pad="both"), earmark.FeatureConfig(), 1.0)
    y = np.ones((1, 40_000), np.float32)
    segments, starts = prep.cut(y)  # half-overlapping, the tail aligned to the end
    assert starts == [0.0, 0.5, 1.0, 1.5] and [s.shape[1] for s in segments] == [16_000] * 4
    short = prep.prepare([np.ones((1, 8000), np.float32)])
    assert short.shape == (1, 1, 16_000) and short[0, 0, 4000:12_000].all()
    assert not short[0, 0, :4000].any() and not short[0, 0, 12_000:].any()
    with pytest.raises(earmark.errors.ParameterError):
        Preprocessing(AudioConfig(), earmark.FeatureConfig(), float("nan"))
