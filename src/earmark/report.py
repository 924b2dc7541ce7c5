"""Plots: a clip's waveform over its log-mel spectrogram, with axes in seconds and Hz.

Figures are built with matplotlib's object API (no pyplot global state, safe in threads and
servers) and written to a temporary name, then renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import librosa.display
import numpy as np
import torch
from matplotlib.figure import Figure

from earmark.features.config import FeatureConfig
from earmark.features.spectral import logmel

__all__ = ["plot_clip", "save_figure"]


def save_figure(fig: Figure, out: str | Path, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``out`` (format from the extension) atomically; return the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=out.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def plot_clip(
    y: np.ndarray,
    sr: int,
    out: str | Path,
    *,
    features: FeatureConfig | None = None,
    title: str | None = None,
) -> Path:
    """Draw ``y`` (``[channels, samples]`` or ``[samples]`` at ``sr`` Hz): the waveform on top
    (time in s, amplitude), the log-mel spectrogram below (time in s, frequency in Hz on a
    mel scale, colour in dB). Multi-channel audio is averaged for the spectrogram."""
    y = np.asarray(y, dtype=np.float32)
    wave = y if y.ndim == 2 else y[None, :]
    cfg = features or FeatureConfig()
    fmax = cfg.fmax or sr / 2
    mel = logmel(
        torch.from_numpy(wave.mean(axis=0)),
        sr,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=fmax,
        top_db=cfg.top_db,
    ).numpy()

    fig = Figure(figsize=(10, 6), layout="constrained")
    ax_wave, ax_mel = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    t = np.arange(wave.shape[1]) / sr
    for c, row in enumerate(wave):
        ax_wave.plot(t, row, lw=0.6, label=f"channel {c}" if wave.shape[0] > 1 else None)
    if wave.shape[0] > 1:
        ax_wave.legend(loc="upper right", fontsize="small")
    ax_wave.set_ylabel("amplitude")
    ax_wave.set_xlim(0, max(t[-1], 1 / sr) if t.size else 1 / sr)
    ax_wave.set_title(title or f"{wave.shape[1] / sr:.2f} s at {sr} Hz")
    img = librosa.display.specshow(
        mel,
        sr=sr,
        hop_length=cfg.hop_length,
        x_axis="time",
        y_axis="mel",
        fmin=cfg.fmin,
        fmax=fmax,
        ax=ax_mel,
        cmap="magma",
    )
    ax_mel.set_xlabel("time (s)")
    ax_mel.set_ylabel("frequency (Hz)")
    fig.colorbar(img, ax=ax_mel, format="%+.0f dB", label="level (dB)")
    return save_figure(fig, out)
