from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from earmark import audio, data
from earmark.data.demo import DIGITS, make_demo_digits, voices


def test_demo_digits_is_a_folder_per_class_with_voices_as_groups(demo_digits: Path) -> None:
    m = data.load(demo_digits)
    assert m.layout == "csv" and len(m) == 80
    assert m.classes == sorted(DIGITS) and set(m.counts().values()) == {8}
    assert m.frame["group"].nunique() == 8
    assert all(Path(p).parent.name == label for p, label in zip(m.filepaths, m.labels, strict=True))
    # The folder alone also reads as a folder-per-class data set.
    assert data.from_folder(demo_digits).classes == m.classes


def test_demo_clips_are_real_speech(demo_digits: Path) -> None:
    report = data.scan(data.load(demo_digits))
    assert len(report.bad) == 0
    durations = report.table["duration"].astype(float)
    assert durations.between(0.15, 1.6).all()
    assert report.table["peak"].astype(float).between(0.2, 1.0).all()
    y, sr = audio.load(demo_digits / "seven" / "v000.wav")
    assert sr == 16_000
    # Voiced speech: most energy below 4 kHz, well above the noise floor.
    spec = np.abs(np.fft.rfft(y[0])) ** 2
    freqs = np.fft.rfftfreq(y.shape[1], 1 / sr)
    assert spec[freqs < 4000].sum() > 0.8 * spec.sum()


def test_at_least_40_distinct_voices_and_the_seed_repeats(tmp_path: Path, espeak: str) -> None:
    vs = voices(60)
    assert len({(v.accent, v.variant, v.speed, v.pitch) for v in vs}) == 60
    assert len({v.accent for v in vs}) == 8 and len({v.variant for v in vs}) >= 40
    assert voices(60) == vs and voices(60, seed=1) != vs
    a = make_demo_digits(tmp_path / "a", n_voices=2, seed=5)
    b = make_demo_digits(tmp_path / "b", n_voices=2, seed=5)
    pa, pb = pd.read_csv(a), pd.read_csv(b)
    pd.testing.assert_frame_equal(pa, pb)
    ya, _ = audio.load(tmp_path / "a" / "four" / "v001.wav")
    yb, _ = audio.load(tmp_path / "b" / "four" / "v001.wav")
    np.testing.assert_array_equal(ya, yb)
