"""Segment rows (``start_s`` / ``end_s``): every loader decodes just that span, caches it
under its span, and training from annotation tables reads windows of the recordings on the
fly (no clip file written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from signals import SR, tone
from typer.testing import CliRunner

import earmark
from earmark.audio import AUDIO_EXTENSIONS, AudioConfig, load_clip
from earmark.cache import segment_key
from earmark.cli import app
from earmark.data import AudioDataset, Manifest, load_windows
from earmark.errors import AudioError, EarmarkError, LayoutError
from earmark.features.config import FeatureConfig
from earmark.features.table import compute_features

RAVEN_HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\t"
    "Species\n"
)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, round(seconds * SR)).astype(np.float32)


def segment_manifest(path: Path, spans: list[tuple[float, float]]) -> Manifest:
    return Manifest(
        pd.DataFrame(
            {
                "filepath": [str(path)] * len(spans),
                "label": ["a"] * len(spans),
                "start_s": [s for s, _ in spans],
                "end_s": [e for _, e in spans],
            }
        )
    )


# -- decoding a segment --------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_segment_row_decodes_exactly_its_span(tmp_path, ext):
    path = tmp_path / f"rec.{ext}"
    sf.write(path, noise(5.0), SR, subtype="PCM_16")
    whole, _ = sf.read(path, dtype="float32")
    manifest = segment_manifest(path, [(1.25, 2.0), (3.5, 4.75)])
    dataset = AudioDataset(manifest, AudioConfig(sample_rate=SR))
    for i, (start, end) in enumerate([(1.25, 2.0), (3.5, 4.75)]):
        got = dataset.waveform(i)
        want = whole[round(start * SR) : round(end * SR)]
        assert got.shape == (1, len(want))
        np.testing.assert_array_equal(got[0], want)


def test_segment_past_the_end_is_padded_and_one_after_it_refused(tmp_path):
    path = tmp_path / "rec.wav"
    sf.write(path, noise(2.0), SR, subtype="PCM_16")
    whole, _ = sf.read(path, dtype="float32")
    y = load_clip(path, AudioConfig(sample_rate=SR), offset=1.5, duration=1.0)
    assert y.shape == (1, SR)
    np.testing.assert_array_equal(y[0, : SR // 2], whole[round(1.5 * SR) :])
    assert not y[0, SR // 2 :].any()
    with pytest.raises(AudioError, match=r"rec\.wav: segment 2\.500-3\.000 s starts .*past"):
        load_clip(path, AudioConfig(sample_rate=SR), offset=2.5, duration=0.5)


def test_manifest_refuses_a_reversed_segment_naming_the_row(tmp_path):
    with pytest.raises(LayoutError, match=r"row 1 \(.*b\.wav\): .*start_s < end_s"):
        Manifest(
            pd.DataFrame(
                {"filepath": ["a.wav", "b.wav"], "label": "x", "start_s": [0, 2], "end_s": [1, 1]}
            )
        )
    with pytest.raises(LayoutError, match="not a number"):
        Manifest(pd.DataFrame({"filepath": ["a.wav"], "label": "x", "start_s": ["x"], "end_s": 1}))


def test_a_segment_of_a_long_file_does_not_decode_the_whole_file(tmp_path, monkeypatch):
    """10 minutes on disk; reading a 1-second window reads about a second of frames."""
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        block = noise(60.0)
        for _ in range(10):
            f.write(block)
    read = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        out = original(self, frames, *args, **kwargs)
        read.append(len(out))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    manifest = segment_manifest(path, [(300.0, 301.0)])
    y = AudioDataset(manifest, AudioConfig(sample_rate=SR)).waveform(0)
    assert y.shape == (1, SR)
    assert 0 < sum(read) <= 2 * SR  # not the 9.6 M frames of the file


# -- caches ----------------------------------------------------------------------------------


def test_cache_keys_differ_per_segment(tmp_path):
    assert segment_key("s", (1.0, 1.0)) != segment_key("s", (2.0, 1.0))
    assert segment_key("s", (1.0, 1.0)) != segment_key("s", (1.0, 2.0))
    assert segment_key("s", None) == "s"
    path = tmp_path / "rec.wav"
    y = noise(3.0)
    y[SR : 2 * SR] = tone(3000.0)  # the second second differs from the first
    sf.write(path, y, SR)
    manifest = segment_manifest(path, [(0.0, 1.0), (1.0, 2.0)])
    audio, features = AudioConfig(sample_rate=SR, duration=1.0), FeatureConfig(kind="handcrafted")
    cache = tmp_path / "cache"
    first = compute_features(manifest, audio, features, cache_dir=cache, workers=1)
    assert len(list(cache.rglob("*.npy"))) == 2  # one entry per segment
    assert not np.allclose(first.X[0], first.X[1])
    again = compute_features(manifest, audio, features, cache_dir=cache, workers=1)
    np.testing.assert_array_equal(again.X, first.X)
    assert first.clip_seconds() == [1.0, 1.0]


# -- training from annotation tables ---------------------------------------------------------


def annotated_recordings(folder: Path, n: int = 5, seconds: float = 8.0) -> Path:
    """``n`` recordings of noise with 1.5-s tones every 2 s (``low`` 500 Hz, ``high`` 2500 Hz,
    alternating) and a Raven table each."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in range(n):
        y = np.random.default_rng(r).normal(0, 0.02, round(seconds * SR)).astype(np.float32)
        lines, t, k = [RAVEN_HEADER], 0.5, 1
        while t + 1.5 < seconds:
            cls, freq = ("low", 500.0) if (k + r) % 2 else ("high", 2500.0)
            at = round(t * SR)
            y[at : at + round(1.5 * SR)] += tone(freq, 1.5, amp=0.3)
            lines.append(f"{k}\tSpectrogram 1\t1\t{t:.3f}\t{t + 1.5:.3f}\t0\t4000\t{cls}\n")
            t, k = t + 2.0, k + 1
        sf.write(folder / f"rec{r}.wav", y, SR)
        (folder / f"rec{r}.Table.1.selections.txt").write_text("".join(lines))
    return folder


def audio_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS]


def test_load_windows_gives_segment_rows_grouped_by_recording(tmp_path):
    data = annotated_recordings(tmp_path / "data", n=2)
    m = load_windows(data, window_s=1.0, hop_s=0.5)
    assert m.has_segments and m.layout == "annotations"
    assert set(m.classes) == {"low", "high"}
    assert m.frame["group"].nunique() == 2
    assert all(abs(d - 1.0) < 1e-9 for _, d in m.spans)
    negatives = load_windows(data, window_s=1.0, hop_s=0.5, complete=True)
    assert "background" in negatives.classes
    with pytest.raises(EarmarkError, match="also an annotated class"):
        load_windows(data, window_s=1.0, complete=True, negative_label="low")
    # without unannotated windows nothing takes the negative label: it may name a class
    named = load_windows(data, window_s=1.0, negative_label="low")
    assert set(named.classes) == {"low", "high"}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["logreg", "seed-cnn"])
def test_train_from_raven_tables_without_writing_clips(tmp_path, model):
    from earmark.training import TrainConfig
    from earmark.workflows import train_run

    data = annotated_recordings(tmp_path / "data")
    manifest = load_windows(data, window_s=1.0, hop_s=0.5)
    train = TrainConfig(epochs=8, batch_size=16, patience=0, augment="none", device="cpu")
    clf = earmark.Classifier(model=model, train=train if model == "seed-cnn" else None)
    before = set(audio_files(tmp_path))
    res = train_run(manifest, clf, tmp_path / "out")
    assert set(audio_files(tmp_path)) == before  # no clip file written anywhere
    assert clf.clip_seconds_ == pytest.approx(1.0)  # the window, not the recording
    assert res.sizes["test"] > 0
    assert res.evaluation.metrics["accuracy"] >= 0.8
    # the held-out recordings' windows, scored by the saved model as the clips they are
    from earmark.artifact import read_meta

    test_names = {Path(p).name for p in read_meta(tmp_path / "out")["data"]["test_files"]}
    assert len(test_names) >= 1
    train_names = {Path(p).name for p in manifest.filepaths} - test_names
    assert train_names and not test_names & train_names  # no recording on both sides
    loaded = earmark.load(tmp_path / "out")
    held = manifest.subset(manifest.frame["filepath"].map(lambda p: Path(p).name in test_names))
    predicted = loaded.predict(held)
    truth = held.frame["label"].tolist()
    assert np.mean([p == t for p, t in zip(predicted, truth, strict=True)]) >= 0.8


@pytest.mark.slow
def test_cli_train_from_annotation_tables(tmp_path):
    data = annotated_recordings(tmp_path / "data")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(data),
            "--annotations",
            "--window",
            "1.0",
            "--hop",
            "0.5",
            "--min-overlap",
            "50%",
            "--model",
            "logreg",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "earmark.json").is_file()
    assert not audio_files(out)
    args = ["train", str(data), "--out", str(tmp_path / "other")]
    no_window = CliRunner().invoke(app, [*args, "--annotations"])  # tables detected: a window
    assert no_window.exit_code == 2 and "--window" in no_window.output
    auto = CliRunner().invoke(app, args)  # a folder of Raven tables is detected as such
    assert auto.exit_code == 2 and "--window" in auto.output
    bad = CliRunner().invoke(app, [*args, "--window", "1", "--min-overlap", "lots"])
    assert bad.exit_code != 0
    assert "min_overlap" in bad.output and "Traceback" not in bad.output
    # calibrated on the tables' windows as train read them
    window = ["--window", "1.0", "--hop", "0.5"]
    cal = CliRunner().invoke(
        app, ["calibrate", str(out), str(data), "--split", "all", *window, "--best-f1", "--json"]
    )
    assert cal.exit_code == 0, cal.output
    assert (out / "calibration.json").is_file() and not audio_files(out)
    assert json.loads(cal.stdout)["validation"]["examples"] > 0
