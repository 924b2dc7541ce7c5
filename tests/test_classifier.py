from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import earmark
from earmark import data
from earmark.classifier import Classifier
from earmark.errors import EarmarkError
from earmark.features import table as table_module


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def splits(demo_digits: Path):
    return data.load(demo_digits).split(valid_size=0.0, test_size=0.25)


@pytest.fixture(scope="module")
def fitted(splits, cache: Path) -> Classifier:
    return Classifier("logreg", cache_dir=cache).fit(splits.train)


def test_speaker_independent_training_beats_chance_by_far(fitted: Classifier, splits) -> None:
    ev = fitted.evaluate(splits.test)
    assert ev.metrics["accuracy"] > 0.6  # chance is 0.1; 2 unseen voices x 10 digits
    assert fitted.classes_ == sorted(earmark.data.demo.DIGITS)
    assert fitted.training_["files"] == len(splits.train) and fitted.training_["skipped"] == 0
    assert set(splits.train.frame["group"]).isdisjoint(splits.test.frame["group"])


def test_predict_matches_predict_proba_and_top_k(fitted: Classifier, splits) -> None:
    files = splits.test.filepaths[:6]
    proba = fitted.predict_proba(files)
    assert proba.shape == (6, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert fitted.predict(files) == [fitted.classes_[i] for i in proba.argmax(axis=1)]
    p = fitted.predict_file(files[0], top_k=3)
    assert len(p.labels) == 3 and p.scores == sorted(p.scores, reverse=True)


def test_long_audio_is_windowed_and_pooled(
    fitted: Classifier, demo_digits: Path, tmp_path: Path
) -> None:
    clips = [sf.read(demo_digits / "six" / f"v00{i}.wav", dtype="float32")[0] for i in range(6)]
    long = tmp_path / "six_times.wav"
    sf.write(long, np.concatenate(clips), 16_000)
    p = fitted.predict_file(long, top_k=10)
    assert p.duration > 2 * fitted.clip_seconds_ and len(p.window_starts) >= 4
    assert p.window_scores.shape == (len(p.window_starts), 10)
    mean = p.window_scores.mean(axis=0)
    assert p.scores[0] == pytest.approx(mean.max())
    assert p.labels[0] == "six"
    fitted.pooling = "max"
    try:
        q = fitted.predict_file(long, top_k=10)
        assert q.scores[0] == pytest.approx(p.window_scores.max(axis=0).max())
    finally:
        fitted.pooling = "mean"
    short = fitted.predict_file(demo_digits / "six" / "v000.wav")
    assert short.window_starts == [0.0]


def test_unreadable_inputs_are_reported_not_fatal(
    fitted: Classifier, broken_dir: Path, demo_digits: Path
) -> None:
    preds = fitted.predict_files([demo_digits / "one" / "v000.wav", broken_dir / "cut.wav"])
    assert preds[0].error is None and preds[0].labels
    assert preds[1].error is not None and "cut.wav" in preds[1].error
    folder = fitted.predict_files(demo_digits / "two")
    assert len(folder) == 8 and all(p.error is None for p in folder)


def test_a_corrupt_file_among_the_training_data_is_skipped_and_counted(
    demo_digits: Path, broken_dir: Path, tmp_path: Path, cache: Path
) -> None:
    root = tmp_path / "set"
    for digit in ("one", "two", "three"):
        shutil.copytree(demo_digits / digit, root / digit)
    shutil.copy(broken_dir / "cut.flac", root / "two" / "broken.flac")
    clf = Classifier("gnb", cache_dir=cache).fit(root)
    assert clf.training_["files"] == 24 and clf.training_["skipped"] == 1
    assert "broken.flac" in clf.training_["skipped_files"][0]["path"]


def test_spectral_features_work_with_classical_learners(splits, cache: Path) -> None:
    audio = earmark.audio.AudioConfig(duration=1.0)
    clf = Classifier("logreg", features="mfcc", audio=audio, cache_dir=cache).fit(splits.train)
    assert clf.evaluate(splits.test).metrics["accuracy"] > 0.3
    assert clf.predict_file(splits.test.filepaths[0]).labels


def test_features_come_from_the_cache_the_second_time(splits, tmp_path: Path, monkeypatch) -> None:
    Classifier("gnb", cache_dir=tmp_path).fit(splits.train)
    calls = []
    real = table_module.load_clip
    monkeypatch.setattr(table_module, "load_clip", lambda *a, **k: calls.append(a) or real(*a, **k))
    Classifier("gnb", cache_dir=tmp_path).fit(splits.train)
    assert calls == []


@pytest.mark.slow
def test_worker_processes_give_the_same_features(splits, monkeypatch) -> None:
    from earmark.audio import AudioConfig
    from earmark.features import FeatureConfig, compute_features

    manifest = splits.train.subset(np.arange(12))
    serial = compute_features(manifest, AudioConfig(), FeatureConfig(kind="handcrafted"), workers=1)
    monkeypatch.setattr(table_module, "PARALLEL_MIN_FILES", 1)
    parallel = compute_features(
        manifest, AudioConfig(), FeatureConfig(kind="handcrafted"), workers=2
    )
    np.testing.assert_allclose(parallel.X, serial.X, rtol=1e-6)
    assert parallel.filepaths == serial.filepaths


def test_unfitted_and_unknown_models_say_so() -> None:
    with pytest.raises(EarmarkError, match="not trained yet"):
        Classifier("gnb").predict_file("x.wav")
    with pytest.raises(EarmarkError, match="unknown model"):
        Classifier("resnet")


def test_hyper_parameters_are_checked_when_the_classifier_is_made() -> None:
    from earmark.checks import SettingsError

    with pytest.raises(SettingsError, match=r"params\.C: expected a number"):
        Classifier("svm", params={"C": "abc"})
    with pytest.raises(SettingsError, match=r"params\.widht: unknown hyper-parameter of cnn"):
        Classifier("cnn", params={"widht": 8})
    assert Classifier("svm", params={"C": "1e-3"}).params == {"C": 0.001}
