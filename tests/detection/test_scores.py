from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark.audio import AudioConfig
from earmark.classifier import Classifier
from earmark.detection import Windowing, score_file
from earmark.ensembles import Ensemble


def test_block_size_and_batch_size_do_not_change_the_track(
    detector: Classifier, recording: Path
) -> None:
    a = score_file(detector, recording, Windowing(hop=0.5))
    b = score_file(detector, recording, Windowing(hop=0.5), block_seconds=0.37, batch_size=7)
    np.testing.assert_array_equal(a.starts, b.starts)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert a.duration == pytest.approx(20.0) and a.classes == detector.classes_
    assert a.starts.tolist() == [0.5 * k for k in range(39)]  # 19.5 + 1 s covers 20 s


def test_shared_frames_agree_with_scoring_each_window_alone(
    detector: Classifier, recording: Path
) -> None:
    track = score_file(detector, recording, Windowing(overlap=0.5, last="end"))
    clip = detector.predict_file(recording, top_k=1)  # windows scored one by one
    np.testing.assert_allclose(track.starts, clip.window_starts, atol=0.02)
    # only the frames at each window's edges differ (neighbouring audio, not zero padding)
    agree = (track.scores.argmax(1) == clip.window_scores.argmax(1)).mean()
    assert agree >= 0.9
    assert np.abs(track.scores - clip.window_scores).mean() < 0.05


def test_short_recordings_and_the_drop_policy(detector: Classifier, tmp_path: Path) -> None:
    sf.write(tmp_path / "short.wav", np.zeros(4000, np.float32), 16_000)
    one = score_file(detector, tmp_path / "short.wav")
    assert one.starts.tolist() == [0.0] and one.scores.shape == (1, 10)
    assert one.ends.tolist() == [0.25]
    none = score_file(detector, tmp_path / "short.wav", Windowing(last="drop"))
    assert none.scores.shape == (0, 10)


def test_a_stereo_recording_at_another_rate(
    detector: Classifier, recording: Path, tmp_path: Path
) -> None:
    y, sr = sf.read(recording, dtype="float32")
    from earmark.audio import resample

    y44 = resample(y[None, :], sr, 44_100)[0]
    sf.write(tmp_path / "st.wav", np.stack([y44, y44], axis=1), 44_100, subtype="FLOAT")
    a = score_file(detector, recording)
    b = score_file(detector, tmp_path / "st.wav")
    assert a.scores.shape == b.scores.shape
    assert (a.scores.argmax(1) == b.scores.argmax(1)).mean() > 0.9


def test_classical_models_spectral_and_handcrafted(demo_digits: Path, recording: Path) -> None:
    audio = AudioConfig(duration=1.0)
    flat = Classifier("logreg", features="logmel", audio=audio).fit(demo_digits)
    stats = Classifier("gnb", audio=audio).fit(demo_digits)  # hand-crafted statistics
    for clf in (flat, stats):
        track = score_file(clf, recording, Windowing(hop=1.0))
        assert track.scores.shape == (20, 10)
        np.testing.assert_allclose(track.scores.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(Exception, match="training clip length"):
        score_file(flat, recording, Windowing(window=2.0))


def test_an_ensemble_scores_the_same_windows(detector: Classifier, recording: Path) -> None:
    ens = Ensemble([detector, detector])
    a = score_file(detector, recording)
    b = score_file(ens, recording)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)


def test_memory_stays_flat_over_a_long_recording(detector: Classifier, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    peaks = {}
    for minutes in (2, 8):
        path = tmp_path / f"long{minutes}.wav"
        with sf.SoundFile(path, "w", 16_000, 1, subtype="PCM_16") as f:
            for _ in range(minutes):
                f.write((0.05 * rng.standard_normal(60 * 16_000)).astype(np.float32))
        tracemalloc.start()
        track = score_file(detector, path, Windowing(hop=0.5), block_seconds=10.0)
        peaks[minutes] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(track.starts) == minutes * 120 - 1
    # the buffer holds one batch of windows (256 x 0.5 s) and a block, whatever the length
    assert peaks[8] < 1.2 * peaks[2] + 2_000_000, peaks
