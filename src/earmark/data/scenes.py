"""Demo material for detection: long recordings with spoken digits at known times over
background noise, the reference table of those times, and a training set for a detector of
one digit.

Recordings use voices the training set never contains (the last ``holdout_voices`` of the
demo digits), so the detector is scored on unseen speakers. The background is coloured noise
with a slowly wandering level and a mains hum; each digit is scaled to ``snr_db`` against the
background level under it. The training set has three classes: the target digit, ``other``
(the other digits) and ``noise`` (background excerpts), with the speaker as the group.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from earmark.errors import ParameterError

__all__ = ["Scenes", "background_noise", "make_demo_scenes"]


@dataclass(frozen=True)
class Scenes:
    """Where :func:`make_demo_scenes` wrote things."""

    recordings: Path  # folder of long WAV recordings
    truth: Path  # CSV: file, start_s, end_s, label (every placed digit)
    train: Path  # folder with manifest.csv: target / other / noise clips
    noise: Path  # folder of background-noise files (for augmentation)
    target: str


def background_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of field-like background at ``sr`` Hz (float32, RMS about 0.05): pink
    and brown noise, a 50 Hz hum with harmonics, and a level wandering over seconds."""
    white = rng.standard_normal(n + 1).astype(np.float64)
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(white.size, 1 / sr)
    f[0] = f[1]
    tilt = rng.uniform(0.5, 1.5)  # between pink (0.5) and brown (1.0+) in amplitude slope
    coloured = np.fft.irfft(spectrum / f ** (tilt / 2), n=white.size)[:n]
    coloured /= coloured.std() or 1.0
    t = np.arange(n) / sr
    hum = sum(
        0.15 / k * np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3)
    )
    knots = rng.uniform(0.5, 1.5, size=max(2, int(n / sr / 3) + 2))
    level = np.interp(t, np.linspace(0, t[-1] if n else 1, knots.size), knots)
    y = (coloured + hum) * level
    return (0.05 * y / (y.std() or 1.0)).astype(np.float32)


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


def make_demo_scenes(
    out: str | Path,
    digits: str | Path,
    *,
    target: str = "seven",
    n_recordings: int = 4,
    seconds: float = 120.0,
    gap: tuple[float, float] = (1.0, 5.0),
    target_share: float = 0.35,
    snr_db: float = 6.0,
    holdout_voices: int = 10,
    n_noise: int = 120,
    seed: int = 0,
    on_recording: Callable[[], None] | None = None,
) -> Scenes:
    """Build the detection demo under ``out`` from the demo digits in ``digits`` (see the
    module docstring). Digits follow each other after ``gap`` seconds of background (uniform
    range); ``target_share`` of them are the ``target`` digit."""
    digits = Path(digits)
    table = pd.read_csv(digits / "manifest.csv")
    if target not in set(table["label"]):
        raise ParameterError(f"{digits}: no digit {target!r} (have {sorted(set(table['label']))})")
    voices = sorted(set(table["group"]))
    if holdout_voices < 1 or holdout_voices >= len(voices):
        raise ParameterError(f"holdout_voices must be in 1..{len(voices) - 1}")
    held = set(voices[-holdout_voices:])
    out = Path(out)
    for sub in ("recordings", "train", "noise"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    info = sf.info(digits / table["filepath"].iloc[0])
    sr = info.samplerate

    # long recordings from the held-out voices
    test_rows = table[table["group"].isin(held)]
    targets = test_rows[test_rows["label"] == target]
    others = test_rows[test_rows["label"] != target]
    truth = []
    for r in range(n_recordings):
        n = round(seconds * sr)
        y = background_noise(n, sr, rng)
        t = rng.uniform(*gap)
        name = f"scene{r:02d}.wav"
        while True:
            pool = targets if rng.random() < target_share else others
            row = pool.iloc[int(rng.integers(len(pool)))]
            clip, _ = sf.read(digits / row["filepath"], dtype="float32")
            start = round(t * sr)
            if start + clip.size >= n:
                break
            under = y[start : start + clip.size]
            voiced = np.abs(clip) > 0.1 * np.abs(clip).max()  # the spoken part, not the lead-in
            gain = _rms(under) * 10 ** (snr_db / 20) / max(_rms(clip[voiced]), 1e-9)
            y[start : start + clip.size] += clip * gain
            on, off = np.flatnonzero(voiced)[[0, -1]]
            truth.append(
                {
                    "file": name,
                    "start_s": round((start + on) / sr, 4),
                    "end_s": round((start + off) / sr, 4),
                    "label": row["label"],
                }
            )
            t = (start + clip.size) / sr + rng.uniform(*gap)
        peak = float(np.abs(y).max())
        sf.write(out / "recordings" / name, y / max(1.0, peak / 0.99), sr, subtype="PCM_16")
        if on_recording is not None:
            on_recording()
    truth_path = out / "truth.csv"
    with truth_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["file", "start_s", "end_s", "label"])
        writer.writeheader()
        writer.writerows(truth)

    # background clips: training class "noise" and the augmentation folder
    rows = []
    clip_len = sr  # one second
    for k in range(n_noise):
        y = background_noise(clip_len * 4, sr, rng)
        for folder in ("noise",):
            path = out / folder / f"bg{k:03d}.wav"
            sf.write(path, y, sr, subtype="PCM_16")
        (out / "train" / "noise").mkdir(exist_ok=True)
        start = int(rng.integers(0, 3 * clip_len))
        level = 10 ** (rng.uniform(-12, 6) / 20)
        sf.write(
            out / "train" / "noise" / f"bg{k:03d}.wav",
            np.clip(y[start : start + clip_len] * level, -1, 1),
            sr,
            subtype="PCM_16",
        )
        rows.append({"filepath": f"noise/bg{k:03d}.wav", "label": "noise", "group": f"bg{k:03d}"})

    # digits of the other voices: the target, and the rest as "other"
    train = table[~table["group"].isin(held)]
    for _, row in train.iterrows():
        label = target if row["label"] == target else "other"
        dest = out / "train" / label / f"{row['label']}_{row['group']}.wav"
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(digits / row["filepath"], dest)
        rows.append({"filepath": f"{label}/{dest.name}", "label": label, "group": row["group"]})
    pd.DataFrame(rows).to_csv(out / "train" / "manifest.csv", index=False)
    return Scenes(out / "recordings", truth_path, out / "train", out / "noise", target)
