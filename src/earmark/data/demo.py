"""The built-in demo data set: the digits zero to nine spoken by many espeak-ng voices.

A voice is an English accent (8 of espeak-ng's) with a voice variant (espeak-ng ships about
a hundred: ``m3``, ``f2``, ``klatt``, ``whisper``...), a speaking rate and a pitch, all drawn
from a seeded generator, so the same seed always gives the same data set. Each clip is
trimmed of silence, given a random level and a little background noise, resampled with soxr
and written as 16-bit WAV in a folder per class. The voice is the group: a speaker-independent
split keeps each voice on one side. ``manifest.csv`` at the root lists files, labels, groups.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf

from earmark.audio import resample
from earmark.errors import EarmarkError, ParameterError

__all__ = ["ACCENTS", "DIGITS", "Voice", "espeak_variants", "make_demo_digits", "voices"]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
ESPEAK = "espeak-ng"


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: accent, variant, rate (words per minute) and pitch (0-99)."""

    name: str
    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def espeak_voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def _espeak() -> str:
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise EarmarkError(
            "espeak-ng is not installed; it speaks the demo digits "
            "(Debian/Ubuntu: apt-get install espeak-ng, or run `make setup`)"
        )
    return exe


def espeak_variants() -> list[str]:
    """The voice variants this espeak-ng offers (``espeak-ng --voices=variant``), sorted."""
    out = subprocess.run(
        [_espeak(), "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    names = set()
    for line in out.splitlines()[1:]:
        cols = line.split()
        # Columns: Pty Language Age/Gender VoiceName File [Other]; File is "!v/<variant>".
        files = [c for c in cols if c.startswith("!v/")]
        if files:
            names.add(files[0][3:])
    return sorted(names)


def voices(n: int, *, seed: int = 0) -> list[Voice]:
    """``n`` distinct voices drawn with ``seed``: accents cycled, variants without repeats
    while they last, rate 120-210 wpm, pitch 20-80."""
    if n < 1:
        raise ParameterError(f"need at least one voice, got {n}")
    rng = np.random.default_rng(seed)
    variants = espeak_variants()
    if not variants:
        raise EarmarkError("espeak-ng lists no voice variants (espeak-ng --voices=variant)")
    order = rng.permutation(len(variants))
    out = []
    for i in range(n):
        variant = variants[order[i % len(order)]]
        accent = ACCENTS[i % len(ACCENTS)]
        out.append(
            Voice(
                f"v{i:03d}", accent, variant, int(rng.integers(120, 211)), int(rng.integers(20, 81))
            )
        )
    return out


def _speak(word: str, voice: Voice, workdir: Path) -> tuple[np.ndarray, int]:
    with tempfile.NamedTemporaryFile(dir=workdir, suffix=".wav", delete=False) as tmp:
        path = Path(tmp.name)
    try:
        cmd = [
            _espeak(),
            "-v",
            voice.espeak_voice,
            "-s",
            str(voice.speed),
            "-p",
            str(voice.pitch),
            "-w",
            str(path),
            word,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not path.stat().st_size:
            raise EarmarkError(f"espeak-ng failed for voice {voice.espeak_voice}: {res.stderr}")
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        return y.T.mean(axis=0), sr
    finally:
        path.unlink(missing_ok=True)


def _render(y: np.ndarray, sr_in: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    y, _ = librosa.effects.trim(y, top_db=40)
    y = resample(y[None, :], sr_in, sr)[0]
    peak = float(np.abs(y).max()) or 1.0
    y = y * (10 ** (rng.uniform(-12.0, -1.0) / 20) / peak)
    snr_db = rng.uniform(20.0, 40.0)
    noise = rng.standard_normal(y.size).astype(np.float32)
    noise *= np.sqrt(np.mean(y**2) / 10 ** (snr_db / 10))
    pad = np.zeros(int(rng.integers(0, sr // 20)), dtype=np.float32)  # up to 50 ms lead-in
    head = rng.standard_normal(pad.size).astype(np.float32) * noise.std()
    return np.clip(np.concatenate([head, y + noise]), -1.0, 1.0).astype(np.float32)


def make_demo_digits(
    out: str | Path,
    *,
    n_voices: int = 60,
    sr: int = 16_000,
    seed: int = 0,
    workers: int | None = None,
    on_clip: Callable[[], None] | None = None,
) -> Path:
    """Write the demo data set to ``out`` and return the path of its ``manifest.csv``.

    ``n_voices`` voices (at least 40 make the data set as documented) each say the ten digits:
    ``out/<digit>/<voice>.wav``, 16-bit PCM at ``sr`` Hz. ``on_clip`` is called per clip.
    """
    out = Path(out)
    voice_list = voices(n_voices, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for d in DIGITS:
        (out / d).mkdir(exist_ok=True)
    jobs = [(v, d, k) for v in voice_list for k, d in enumerate(DIGITS)]

    def make(job: tuple[Voice, str, int]) -> dict[str, object]:
        voice, digit, k = job
        rng = np.random.default_rng((seed, int(voice.name[1:]), k))
        y, sr_in = _speak(digit, voice, out)
        clip = _render(y, sr_in, sr, rng)
        path = out / digit / f"{voice.name}.wav"
        sf.write(path, clip, sr, subtype="PCM_16")
        if on_clip is not None:
            on_clip()
        return {
            "filepath": f"{digit}/{path.name}",
            "label": digit,
            "group": voice.name,
            "voice": voice.espeak_voice,
            "speed": voice.speed,
            "pitch": voice.pitch,
        }

    with ThreadPoolExecutor(max_workers=workers or max(2, os.cpu_count() or 1)) as pool:
        rows = list(pool.map(make, jobs))
    manifest = out / "manifest.csv"
    tmp = manifest.with_name("manifest.csv.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(manifest)
    return manifest
