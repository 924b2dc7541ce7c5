"""Trained models and recordings shared by the detection tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark import data
from earmark.classifier import Classifier
from earmark.training import TrainConfig


@pytest.fixture(scope="session")
def detector(demo_digits: Path) -> Classifier:
    """A small network trained on all the demo digits (clip length 1 s)."""
    cfg = TrainConfig(epochs=25, batch_size=8, device="cpu", seed=0, augment="none")
    audio = data.load(demo_digits)
    from earmark.audio import AudioConfig

    return Classifier("seed-cnn", audio=AudioConfig(duration=1.0), train=cfg).fit(audio)


@pytest.fixture(scope="session")
def recording(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of quiet noise with digits at known places (every 2 s, a voice not trained on
    is not needed here: the tests check mechanics, not accuracy)."""
    rng = np.random.default_rng(0)
    sr = 16_000
    y = (0.003 * rng.standard_normal(20 * sr)).astype(np.float32)
    for k, digit in enumerate(["one", "two", "three", "four", "five", "six", "seven", "eight"]):
        clip, _ = sf.read(demo_digits / digit / "v000.wav", dtype="float32")
        start = (1 + 2 * k) * sr
        y[start : start + clip.size] += clip
    path = tmp_path_factory.mktemp("rec") / "field.wav"
    sf.write(path, y, sr, subtype="PCM_16")
    return path
