"""Accuracy under recording conditions no model saw: the demo digits' held-out voices, shifted.

Every model trains on the demo digits' training voices (clean espeak-ng speech, 16 kHz) and is
tested on the held-out voices as they are (``clean``) and passed through four conditions:

- ``telephone``: 4th-order Butterworth band-pass 300-3400 Hz, 8 kHz, MP3 at 16 kbit/s (LAME
  through ffmpeg); the test files are the MP3s.
- ``reverb``: a room with RT60 about 0.6 s: sparse early reflections and a late tail of
  noise decaying at a different rate per octave band (RT60 0.75 s at 250 Hz to 0.45 s at
  4 kHz; 0.6 s at 1 kHz), direct-to-reverberant ratio about 0 dB; the tail is kept (+0.3 s).
- ``pink``: pink noise (1/f power) at 5 dB SNR over the clip.
- ``pitch``: pitch shifted by +2 or -2 semitones (alternating, librosa's phase vocoder and
  resampling), tempo kept.

These are built here, independently of earmark's augmentation (which has its own reverb,
band-pass, codec and noise transforms), with their own generators and parameters, from a
fixed seed. Reported per model: accuracy on each condition and their mean, clean accuracy,
training time (features included). Bar (issue "Learn what transfers"): the best model >= 90%
mean over the shifted conditions with clean >= 98%.

Rows: hand-crafted + logreg; cnn with the default and the ``robust`` augmentation; the
pretrained frontends (aisfx embeddings + logreg and + a small head network, aisfx fine-tuned
end to end; BirdNET embeddings + logreg where the extra is installed); three ensembles of
these (fixed in advance, not chosen on the test conditions).

Run: .venv/bin/python benchmarks/bench_shift.py [--data out/demo/digits] [--rows cnn-robust ...]
     [--work out/bench_shift]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from _common import RESULTS, write
from scipy import signal

import earmark
from earmark.classifier import Classifier
from earmark.data.manifest import Manifest
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings

CONDITIONS = ("telephone", "reverb", "pink", "pitch")
SR = 16_000


# -- conditions ------------------------------------------------------------------------------


def telephone(y: np.ndarray, sr: int, rng: np.random.Generator, out: Path) -> Path:
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=sr, output="sos")
    narrow = soxr.resample(signal.sosfilt(sos, y), sr, 8000).astype(np.float32)
    wav = out.with_suffix(".tmp.wav")
    sf.write(wav, narrow, 8000, subtype="FLOAT")
    mp3 = out.with_suffix(".mp3")
    lame = ["-codec:a", "libmp3lame", "-b:a", "16k", "-ar", "8000"]
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), *lame, str(mp3)], check=True
    )
    wav.unlink()
    return mp3


def room_impulse(sr: int, rng: np.random.Generator, rt60_1k: float = 0.6) -> np.ndarray:
    """Direct sound, 12 early reflections (3-40 ms) and a late tail whose decay differs per
    octave band (longer at low frequencies, as in real rooms), scaled to a direct-to-
    reverberant ratio of about 0 dB."""
    n = int(sr * rt60_1k * 1.5)
    h = np.zeros(n)
    h[0] = 1.0
    for delay in rng.uniform(0.003, 0.040, 12):
        h[int(delay * sr)] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.6) * np.exp(-delay * 20)
    t = np.arange(n) / sr
    tail = np.zeros(n)
    for centre, rt in ((250, 0.75), (500, 0.68), (1000, rt60_1k), (2000, 0.52), (4000, 0.45)):
        lo, hi = centre / np.sqrt(2), min(centre * np.sqrt(2), sr / 2 - 1)
        band = signal.sosfilt(
            signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos"),
            rng.standard_normal(n),
        )
        tail += band * 10 ** (-3 * t / rt)  # -60 dB at t = rt
    onset = int(0.005 * sr)
    tail[:onset] = 0
    direct = np.sum(h**2)
    tail *= np.sqrt(direct / np.sum(tail**2))  # DRR 0 dB
    return (h + tail).astype(np.float32)


def reverb(y: np.ndarray, sr: int, rng: np.random.Generator, out: Path) -> Path:
    wet = signal.fftconvolve(y, room_impulse(sr, rng))[: len(y) + int(0.3 * sr)]
    wet *= np.max(np.abs(y)) / max(np.max(np.abs(wet)), 1e-9)
    sf.write(out.with_suffix(".wav"), wet.astype(np.float32), sr, subtype="PCM_16")
    return out.with_suffix(".wav")


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def pink(y: np.ndarray, sr: int, rng: np.random.Generator, out: Path) -> Path:
    noise = pink_noise(len(y), rng)
    gain = np.sqrt(np.mean(y**2) / np.mean(noise**2) / 10 ** (5 / 10))  # 5 dB SNR
    mixed = y + gain * noise
    mixed /= max(1.0, np.max(np.abs(mixed)) / 0.99)
    sf.write(out.with_suffix(".wav"), mixed.astype(np.float32), sr, subtype="PCM_16")
    return out.with_suffix(".wav")


def pitch(y: np.ndarray, sr: int, rng: np.random.Generator, out: Path, *, steps: float) -> Path:
    shifted = librosa.effects.pitch_shift(y, sr=sr, n_steps=steps)
    sf.write(out.with_suffix(".wav"), shifted.astype(np.float32), sr, subtype="PCM_16")
    return out.with_suffix(".wav")


def build_conditions(test: Manifest, work: Path, seed: int = 2026) -> dict[str, Manifest]:
    """The test clips under each condition, written once into ``work/<condition>`` (folder
    per class, a manifest with the voices as groups), and their manifests."""
    manifests = {"clean": test}
    frame = test.frame
    for c, name in enumerate(CONDITIONS):
        root = work / name
        manifest_csv = root / "manifest.csv"
        if not manifest_csv.exists():
            rng = np.random.default_rng([seed, c])
            rows = []
            for i, row in enumerate(frame.itertuples()):
                y, sr = sf.read(test.root / row.filepath, dtype="float32", always_2d=False)
                if y.ndim > 1:
                    y = y.mean(axis=1)
                if sr != SR:
                    y, sr = soxr.resample(y, sr, SR), SR
                target = root / row.label / f"{row.group}"
                target.parent.mkdir(parents=True, exist_ok=True)
                if name == "pitch":
                    path = pitch(y, sr, rng, target, steps=2.0 if i % 2 == 0 else -2.0)
                else:
                    path = {"telephone": telephone, "reverb": reverb, "pink": pink}[name](
                        y, sr, rng, target
                    )
                rows.append(
                    {
                        "filepath": str(path.relative_to(root)),
                        "label": row.label,
                        "group": row.group,
                    }
                )
            tmp = manifest_csv.with_suffix(".tmp")
            pd.DataFrame(rows).to_csv(tmp, index=False)
            tmp.rename(manifest_csv)
        manifests[name] = earmark.data.load(manifest_csv)
    return manifests


# -- models -----------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    model: str
    features: str | None = None
    augment: str | None = None
    epochs: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # a pretrained frontend that must be installed

    def classifier(self, seed: int, cache: Path) -> Classifier:
        train = None
        spec = earmark.models.registry.get(self.model)
        if spec.family == "neural":
            options: dict[str, Any] = {**spec.train_defaults, "device": "cpu", "seed": seed}
            if self.augment is not None:
                options["augment"] = self.augment
            if self.epochs is not None:
                options["epochs"] = self.epochs
            train = TrainConfig(**options)
        return Classifier(
            self.model,
            features=self.features,
            params=self.params or None,
            seed=seed,
            cache_dir=cache,
            train=train,
        )


ROWS = [
    Row("handcrafted + logreg", "logreg", features="handcrafted"),
    Row("cnn", "cnn"),
    Row("cnn robust", "cnn", augment="robust"),
    Row("aisfx + logreg", "logreg", features="aisfx", needs="aisfx"),
    Row("aisfx + head", "head", needs="aisfx"),
    Row("aisfx + head robust", "head", augment="robust", needs="aisfx"),
    Row("aisfx fine-tuned", "aisfx-finetune", needs="aisfx"),
    Row("aisfx fine-tuned robust", "aisfx-finetune", augment="robust", needs="aisfx"),
    Row("birdnet + logreg", "logreg", features="birdnet", needs="birdnet"),
    Row("birdnet + head", "head", features="birdnet", needs="birdnet"),
]
# Ensembles (mean of probabilities), fixed in advance, of the runs this benchmark saved.
ENSEMBLES = {
    "ensemble cnn + cnn robust": ("cnn", "cnn robust"),
    "ensemble cnn robust + aisfx fine-tuned robust": ("cnn robust", "aisfx fine-tuned robust"),
    "ensemble cnn robust + aisfx fine-tuned robust + aisfx head robust": (
        "cnn robust",
        "aisfx fine-tuned robust",
        "aisfx + head robust",
    ),
}


def slug(name: str) -> str:
    return name.replace(" + ", "-").replace(" ", "-")


def evaluate(model: Any, manifests: dict[str, Manifest]) -> dict[str, float]:
    return {name: float(model.evaluate(m).metrics["accuracy"]) for name, m in manifests.items()}


def summarize(acc: dict[str, float]) -> dict[str, float]:
    shifted = float(np.mean([acc[c] for c in CONDITIONS]))
    return {**acc, "shifted_mean": shifted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--work", type=Path, default=Path("out/bench_shift"))
    parser.add_argument("--rows", nargs="*", default=None, help="row names (slugs) to run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data)
    manifest = earmark.data.load(args.data)
    splits = SplitSettings(valid_size=0.1).apply(manifest)
    t0 = time.perf_counter()
    manifests = build_conditions(splits.test, args.work)
    print(f"conditions ready in {time.perf_counter() - t0:.1f} s: {len(splits.test)} clips each")
    from earmark.features import pretrained

    # Rows run before (``--rows`` runs a few at a time) are kept, each with its commit.
    previous = RESULTS / "bench_shift.json"
    results: dict[str, Any] = {}
    if previous.exists():
        results = json.loads(previous.read_text()).get("results", {})
    results = {k: v for k, v in results.items() if not k.startswith("ensemble")}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    trained: dict[str, Path] = {
        row.name: args.work / "runs" / slug(row.name)
        for row in ROWS
        if (args.work / "runs" / slug(row.name) / "earmark.json").exists()
    }
    for row in ROWS:
        if args.rows is not None and slug(row.name) not in args.rows:
            continue
        if row.needs is not None and not pretrained.available(row.needs):
            results[row.name] = {"skipped": f"{row.needs} not installed"}
            print(f"{row.name}: skipped ({row.needs} not installed)")
            continue
        try:
            clf = row.classifier(args.seed, args.work / "cache")
        except earmark.errors.EarmarkError as exc:  # a model this checkout does not have yet
            results[row.name] = {"skipped": str(exc)}
            print(f"{row.name}: skipped ({exc})")
            continue
        t = time.perf_counter()
        clf.fit(splits.train, valid=splits.valid)
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        acc = summarize(evaluate(clf, manifests))
        run = args.work / "runs" / slug(row.name)
        if run.exists():  # this benchmark's own output from an earlier run
            shutil.rmtree(run)
        clf.save(run)
        trained[row.name] = run
        results[row.name] = {
            **{k: round(v, 4) for k, v in acc.items()},
            "train_s": round(train_s, 1),
            "evaluate_s": round(time.perf_counter() - t, 1),
            "model": row.model,
            "features": clf.features.kind,
            "augment": clf.train.augment if clf.family == "neural" else None,
            "commit": commit,
        }
        print(row.name, results[row.name], flush=True)
    from earmark.ensembles import Ensemble

    for name, names in ENSEMBLES.items():
        if not all(n in trained for n in names):
            results.pop(name, None)
            continue
        ens, _ = Ensemble.from_runs([trained[n] for n in names])
        acc = summarize(evaluate(ens, manifests))
        results[name] = {**{k: round(v, 4) for k, v in acc.items()}, "members": list(names)}
        print(name, results[name], flush=True)
    scored = {k: v for k, v in results.items() if "shifted_mean" in v}
    best = max(scored, key=lambda k: scored[k]["shifted_mean"]) if scored else None
    bar = None
    if best is not None:
        b = scored[best]
        bar = {"best": best, "shifted_mean": b["shifted_mean"], "clean": b["clean"]}
        bar["met"] = b["shifted_mean"] >= 0.90 and b["clean"] >= 0.98
    write(
        "bench_shift",
        {
            "conditions": list(CONDITIONS),
            "test_clips": len(splits.test),
            "split": splits.sizes(),
            "results": results,
            "bar": bar,
        },
    )


if __name__ == "__main__":
    main()
