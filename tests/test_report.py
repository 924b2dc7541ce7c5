from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.image import imread
from signals import tone

from earmark.report import plot_clip


def test_plot_clip_writes_an_image_with_waveform_and_spectrogram(tmp_path: Path) -> None:
    out = plot_clip(np.stack([tone(440.0), tone(880.0)]), 16_000, tmp_path / "a" / "clip.png")
    img = imread(out)
    assert img.shape[0] > 400 and img.shape[1] > 800
    assert img[..., :3].std() > 0.1  # not a blank canvas
    assert not list(out.parent.glob("*.tmp*"))


def test_plot_clip_accepts_mono_1d_and_svg(tmp_path: Path) -> None:
    out = plot_clip(tone(duration=0.05), 16_000, tmp_path / "clip.svg", title="short")
    text = out.read_text()
    assert "<svg" in text and "short" in text and "time (s)" in text and "frequency (Hz)" in text
