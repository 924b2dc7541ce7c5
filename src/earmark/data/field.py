"""Demo field recordings for multi-label detection: 2-minute soundscapes where three target
words occur at random times and levels, sometimes overlapping each other, among distractor
words that nobody annotated, each recording with its Raven selection table.

This is the material of the workflow in issue 16 (train from annotation tables over long
recordings, calibrate on validation recordings, detect on test recordings). The words are
the demo digits (:func:`earmark.data.demo.make_demo_digits`); their voices are split three
ways, so the train, validation and test recordings never share a speaker and the detector is
scored on unseen voices. The background is the field-like noise of
:func:`earmark.data.scenes.background_noise` (coloured noise, hum, a wandering level) plus
wind (a low rumble in gusts), and now and then a burst of rain (broadband, with drops) or an
insect (a buzzing tone between 2.5 and 5 kHz) lasting a few seconds.

Each word is scaled to an SNR drawn per event against the background under it. A target word
is, with probability ``overlap_share``, joined by a second target of another class that
starts inside it, so a fraction of the target events overlap another target; distractors
never overlap anything. Every target occurrence is annotated exactly: from the first to the
last sample of its voiced part (where the clip exceeds a tenth of its peak, as in
:mod:`earmark.data.scenes`), with the band holding 90 % of its energy as Low/High Freq.

Written under ``out``::

    recordings/{train,valid,test}/<split>NN.wav                    16-bit mono WAV
    recordings/{train,valid,test}/<split>NN.Table.1.selections.txt Raven selection table
    truth/{train,valid,test}.csv      file, start_s, end_s, label (what score-events reads)
    placements.csv                    every word mixed in, targets and distractors, with
                                      its voice, SNR and role (for checks, not for training)
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from earmark.atomic import atomic_text, atomic_write
from earmark.data.scenes import background_noise
from earmark.detection.tables import RavenSelection, write_raven_table
from earmark.errors import ParameterError

__all__ = ["SPLITS", "FieldScenes", "field_background", "make_field_scenes"]

SPLITS = ("train", "valid", "test")
TRUTH_COLUMNS = ["file", "start_s", "end_s", "label"]
PLACEMENT_COLUMNS = [
    "split",
    "file",
    "start_s",
    "end_s",
    "word",
    "role",
    "voice",
    "snr_db",
    "overlaps",
]


@dataclass(frozen=True)
class FieldScenes:
    """Where :func:`make_field_scenes` wrote things (see the module docstring)."""

    root: Path
    recordings: dict[str, Path]  # split -> folder of WAVs, each beside its Raven table
    truth: dict[str, Path]  # split -> CSV file, start_s, end_s, label
    placements: Path  # CSV of every word mixed in (targets and distractors)
    targets: tuple[str, ...]
    sr: int

    def tables(self, split: str) -> list[Path]:
        """The Raven selection tables of one split, sorted by name."""
        return sorted(self.recordings[split].glob("*.selections.txt"))


def _spectrum_noise(n: int, sr: int, rng: np.random.Generator, shape: Callable) -> np.ndarray:
    """White noise shaped in the frequency domain by ``shape(freqs)`` (an amplitude
    response), unit standard deviation. One FFT over the whole signal: a 2-minute recording
    is a few million samples, well within what numpy does at once."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    y = np.fft.irfft(spectrum * shape(np.fft.rfftfreq(n, 1 / sr)), n=n)
    return y / (y.std() or 1.0)


def _envelope(n: int, sr: int, rng: np.random.Generator, every_s: float) -> np.ndarray:
    """A smooth random level in [0, 1] with a new knot every ``every_s`` seconds."""
    knots = rng.uniform(0, 1, size=max(2, int(n / sr / every_s) + 2))
    return np.interp(np.arange(n), np.linspace(0, n, knots.size), knots)


def _burst(n: int, sr: int, rng: np.random.Generator, seconds: float) -> tuple[int, np.ndarray]:
    """Where a burst of ``seconds`` starts and its envelope (half a second of fade)."""
    m = min(n, round(seconds * sr))
    start = int(rng.integers(0, max(1, n - m)))
    fade = min(m // 2, sr // 2)
    env = np.ones(m)
    if fade:
        ramp = np.linspace(0, 1, fade)
        env[:fade], env[m - fade :] = ramp, ramp[::-1]
    return start, env


def field_background(
    n: int,
    sr: int,
    rng: np.random.Generator,
    *,
    rain_per_min: float = 0.5,
    insects_per_min: float = 0.5,
) -> np.ndarray:
    """``n`` samples of field background at ``sr`` Hz (float32, RMS about 0.05-0.07):
    :func:`~earmark.data.scenes.background_noise`, wind gusts below ~200 Hz, and on average
    ``rain_per_min`` rain bursts and ``insects_per_min`` insect buzzes per minute (Poisson
    counts), each 3-12 s long."""
    y = background_noise(n, sr, rng).astype(np.float64)
    base = 0.05
    wind = _spectrum_noise(n, sr, rng, lambda f: 1 / (1 + (f / 120.0) ** 4))
    gusts = _envelope(n, sr, rng, every_s=2.0) ** 2
    y += base * rng.uniform(0.4, 1.2) * wind * gusts
    minutes = n / sr / 60
    for _ in range(rng.poisson(rain_per_min * minutes)):
        start, env = _burst(n, sr, rng, rng.uniform(3, 12))
        m = env.size
        hiss = _spectrum_noise(m, sr, rng, lambda f: np.minimum(1.0, f / 1000.0))
        drops = np.zeros(m)
        k = rng.integers(0, m, size=int(m / sr * rng.uniform(20, 60)))
        drops[k] = rng.uniform(-1, 1, size=k.size) * 8
        y[start : start + m] += base * rng.uniform(0.3, 1.0) * env * (hiss + drops)
    for _ in range(rng.poisson(insects_per_min * minutes)):
        start, env = _burst(n, sr, rng, rng.uniform(3, 12))
        t = np.arange(env.size) / sr
        carrier = rng.uniform(2500, min(5000, 0.45 * sr))
        pulse = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(25, 60) * t)) ** 2  # wing-beat AM
        tone = np.sin(2 * np.pi * carrier * t) + 0.3 * np.sin(2 * np.pi * 2 * carrier * t)
        y[start : start + env.size] += base * rng.uniform(0.3, 1.0) * env * pulse * tone
    return y.astype(np.float32)


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0


def _band(clip: np.ndarray, sr: int) -> tuple[float, float]:
    """The band (Hz) between the 5th and 95th percentile of the clip's energy spectrum."""
    power = np.abs(np.fft.rfft(clip)) ** 2
    cum = np.cumsum(power) / (power.sum() or 1.0)
    f = np.fft.rfftfreq(clip.size, 1 / sr)
    return float(f[np.searchsorted(cum, 0.05)]), float(
        f[min(f.size - 1, np.searchsorted(cum, 0.95))]
    )


def _split_voices(voices: Sequence[str], fractions: tuple[float, float, float]) -> dict:
    """Voices cut three ways in sorted order (train first, test last), at least one each."""
    n = len(voices)
    if n < 3:
        raise ParameterError(f"the field scenes need at least 3 voices in the digits, got {n}")
    n_test = min(n - 2, max(1, round(fractions[2] * n)))
    n_valid = min(n - 1 - n_test, max(1, round(fractions[1] * n)))
    n_train = n - n_valid - n_test
    return {
        "train": list(voices[:n_train]),
        "valid": list(voices[n_train : n_train + n_valid]),
        "test": list(voices[n_train + n_valid :]),
    }


def _csv(rows: list[dict], columns: list[str]) -> str:
    """CSV text of ``rows`` with ``columns`` only (placement rows carry more fields)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _selections(events: list[dict], wav_name: str) -> list[RavenSelection]:
    """The Raven selections of one recording's targets, by start time: ``Begin File`` names
    the WAV, ``Annotation`` holds the word, the band is the event's own."""
    return [
        RavenSelection(
            ev["start_s"],
            ev["end_s"],
            ev["low_hz"],
            ev["high_hz"],
            ev["label"],
            begin_file=wav_name,
        )
        for ev in sorted(events, key=lambda e: e["start_s"])
    ]


def _pick(rows: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    return rows.iloc[int(rng.integers(len(rows)))]


class _Recording:
    """One recording being mixed: the background, the mix, and what was placed in it."""

    def __init__(
        self,
        background: np.ndarray,
        sr: int,
        rng: np.random.Generator,
        snr_db: tuple[float, float],
        split: str,
        name: str,
    ) -> None:
        self.background, self.mixed = background, background.copy()
        self.sr, self.rng, self.snr_db, self.split, self.name = sr, rng, snr_db, split, name
        self.placed: list[dict] = []

    def place(
        self,
        row: pd.Series,
        clip_of: Callable[[pd.Series], np.ndarray],
        role: str,
        *,
        after: int = 0,
        voiced_at: float | None = None,
    ) -> dict | None:
        """Mix the word of ``row``: its voiced part starting at ``voiced_at`` (samples) when
        given, else the clip starting at ``after``; None when it does not fit."""
        clip = clip_of(row)
        voiced = np.abs(clip) > 0.1 * np.abs(clip).max()
        on, off = np.flatnonzero(voiced)[[0, -1]]
        start = after if voiced_at is None else round(voiced_at) - on
        if start < 0 or start + clip.size > self.mixed.size:
            return None
        snr = float(self.rng.uniform(*self.snr_db))
        gain = _rms(self.background[start : start + clip.size]) * 10 ** (snr / 20)
        gain /= max(_rms(clip[voiced]), 1e-9)
        self.mixed[start : start + clip.size] += clip * gain
        low, high = _band(clip[on : off + 1], self.sr)
        ev = {
            "split": self.split,
            "file": self.name,
            "start_s": round((start + on) / self.sr, 4),
            "end_s": round((start + off) / self.sr, 4),
            "word": row["label"],
            "role": role,
            "voice": row["group"],
            "snr_db": round(snr, 2),
            "overlaps": "",
            "low_hz": low,
            "high_hz": high,
            "label": row["label"],
            "_end": start + clip.size,
            "_on": start + on,
            "_off": start + off,
        }
        self.placed.append(ev)
        return ev


def make_field_scenes(
    out: str | Path,
    digits: str | Path,
    *,
    targets: Sequence[str] = ("seven", "three", "nine"),
    distractors: Sequence[str] | None = None,
    n_recordings: tuple[int, int, int] = (8, 4, 6),
    seconds: float = 120.0,
    gap: tuple[float, float] = (0.5, 3.0),
    target_share: float = 0.6,
    overlap_share: float = 0.2,
    snr_db: tuple[float, float] = (4.0, 12.0),
    voice_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    on_recording: Callable[[], None] | None = None,
) -> FieldScenes:
    """Build the field soundscapes under ``out`` from the demo digits in ``digits`` (see the
    module docstring): ``n_recordings`` (train, valid, test) recordings of ``seconds`` each.

    Words follow each other after ``gap`` seconds (uniform range) of background;
    ``target_share`` of them are targets (classes drawn evenly), the rest ``distractors``
    (default: every other digit), never annotated. A target gets an overlapping partner of
    another target class with probability ``overlap_share``. Each word's SNR is uniform in
    ``snr_db``. The digits' voices are split by ``voice_fractions`` in sorted order; each
    split's recordings use only its own voices. The same ``seed`` gives the same files."""
    digits = Path(digits)
    try:
        table = pd.read_csv(digits / "manifest.csv")
    except (OSError, pd.errors.ParserError) as exc:
        raise ParameterError(f"{digits}: no demo digits manifest.csv ({exc})") from None
    words = set(table["label"])
    targets = tuple(targets)
    if len(targets) < 2 or len(set(targets)) != len(targets):
        raise ParameterError(f"need at least two distinct target words, got {list(targets)}")
    missing = [w for w in targets if w not in words]
    if missing:
        raise ParameterError(f"{digits}: no word {missing[0]!r} (have {sorted(words)})")
    distractors = tuple(sorted(words - set(targets))) if distractors is None else tuple(distractors)
    if set(distractors) & set(targets) or not set(distractors) <= words:
        raise ParameterError(
            "distractors must be words of the digits other than the targets, "
            f"got {list(distractors)}"
        )
    if len(n_recordings) != 3 or min(n_recordings) < 1:
        raise ParameterError(f"need at least one recording per split, got {list(n_recordings)}")
    if seconds < 5:
        raise ParameterError(f"recordings must last at least 5 s, got {seconds}")
    for name, value in (("target_share", target_share), ("overlap_share", overlap_share)):
        if not 0 <= value <= 1:
            raise ParameterError(f"{name} must be in 0..1, got {value}")
    if not distractors and target_share < 1:
        raise ParameterError("no distractor words left: set target_share=1 or fewer targets")
    if not 0 <= gap[0] <= gap[1] or snr_db[0] > snr_db[1]:
        raise ParameterError(f"gap and snr_db must be (low, high) ranges, got {gap}, {snr_db}")

    voices = _split_voices(sorted(set(table["group"])), voice_fractions)
    out = Path(out)
    for sub in ("recordings", "truth"):
        shutil.rmtree(out / sub, ignore_errors=True)
    rng = np.random.default_rng(seed)
    sr = sf.info(digits / table["filepath"].iloc[0]).samplerate
    cache: dict[str, np.ndarray] = {}

    def clip_of(row: pd.Series) -> np.ndarray:
        if row["filepath"] not in cache:
            y, rate = sf.read(digits / row["filepath"], dtype="float32", always_2d=True)
            if rate != sr:
                raise ParameterError(f"{row['filepath']}: {rate} Hz, the digits are at {sr} Hz")
            cache[row["filepath"]] = y.mean(axis=1)
        return cache[row["filepath"]]

    placements: list[dict] = []
    paths = {s: out / "recordings" / s for s in SPLITS}
    truth_paths = {s: out / "truth" / f"{s}.csv" for s in SPLITS}
    for split, count in zip(SPLITS, n_recordings, strict=True):
        pool = table[table["group"].isin(voices[split])]
        by_word = {w: pool[pool["label"] == w] for w in (*targets, *distractors)}
        truth: list[dict] = []
        for r in range(count):
            name = f"{split}{r:02d}.wav"
            rec = _Recording(
                field_background(round(seconds * sr), sr, rng), sr, rng, snr_db, split, name
            )
            cursor = round(rng.uniform(*gap) * sr)
            while cursor < rec.mixed.size:
                if rng.random() < target_share:
                    word = targets[int(rng.integers(len(targets)))]
                    first = rec.place(_pick(by_word[word], rng), clip_of, "target", after=cursor)
                    if first is None:
                        break
                    end = first["_end"]
                    if rng.random() < overlap_share:
                        other = [w for w in targets if w != word]
                        partner_word = other[int(rng.integers(len(other)))]
                        # the partner's voiced part starts 25-75 % into the first's
                        at = first["_on"] + rng.uniform(0.25, 0.75) * (first["_off"] - first["_on"])
                        row = _pick(by_word[partner_word], rng)
                        partner = rec.place(row, clip_of, "target", voiced_at=at)
                        if partner is not None:
                            first["overlaps"] = partner_word
                            partner["overlaps"] = word
                            end = max(end, partner["_end"])
                else:
                    word = distractors[int(rng.integers(len(distractors)))]
                    ev = rec.place(_pick(by_word[word], rng), clip_of, "distractor", after=cursor)
                    if ev is None:
                        break
                    end = ev["_end"]
                cursor = end + round(rng.uniform(*gap) * sr)
            placements += rec.placed
            events = [ev for ev in rec.placed if ev["role"] == "target"]
            mixed = rec.mixed

            peak = float(np.abs(mixed).max())
            audio = (mixed / max(1.0, peak / 0.99)).astype(np.float32)
            wav = paths[split] / name
            atomic_write(wav, lambda tmp, a=audio: sf.write(tmp, a, sr, subtype="PCM_16"))
            table_path = paths[split] / f"{Path(name).stem}.Table.1.selections.txt"
            write_raven_table(table_path, _selections(events, name), columns=("Begin File",))
            truth += sorted(events, key=lambda e: e["start_s"])
            if on_recording is not None:
                on_recording()
        atomic_text(truth_paths[split], _csv(truth, TRUTH_COLUMNS))
    placements_path = atomic_text(out / "placements.csv", _csv(placements, PLACEMENT_COLUMNS))
    return FieldScenes(out, paths, truth_paths, placements_path, targets, sr)
