"""GPU figures beside CPU ones, small and quick (what `benchmarks/gpu_check.sh` runs): training
clips per second of ``cnn`` (bfloat16 autocast on CUDA) and the detection real-time factor of
a 1-s / 0.5-s-hop scan, on each device given.

The data are generated here (tones of three pitches in noise, 1-s clips; a recording with a
tone every few seconds), so the script needs no espeak-ng and no demo data: a bare GPU
machine with earmark's packages runs it. Training clips/s is the median over the epochs after
the first (augmentation and log-mel included, as ``bench_neural`` counts them); the scan is
timed after one warm-up scan of a minute (CUDA's start-up and cuDNN's algorithm choice).

Run: python benchmarks/gpu_bench.py --devices cuda cpu [--minutes 30] [--out gpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SR = 16_000
PITCHES = (300.0, 900.0, 2000.0)


def tones(root: Path, per_class: int, seed: int = 0) -> Path:
    """A folder per class of 1-s tones (pitch within 3%) in a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    for k, pitch in enumerate(PITCHES):
        folder = root / f"c{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            f = pitch * rng.uniform(0.97, 1.03)
            y = 0.3 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(SR)
            sf.write(folder / f"{i:03d}.wav", y.astype(np.float32), SR, subtype="PCM_16")
    return root


def recording(path: Path, minutes: float, seed: int = 1) -> Path:
    """Quiet noise with a half-second tone every 3 s, written a minute at a time."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as out:
        for m in range(round(minutes)):
            y = 0.003 * rng.standard_normal(60 * SR)
            for k, start in enumerate(range(SR, 59 * SR, 3 * SR)):
                y[start : start + t.size] += 0.3 * np.sin(2 * np.pi * PITCHES[(k + m) % 3] * t)
            out.write(y.astype(np.float32))
    return path


def train_rate(data: Path, device: str, epochs: int) -> tuple[float, object]:
    """``cnn`` trained on ``data`` on ``device``: the median training clips/s after the
    first epoch, and the classifier."""
    from earmark import data as datasets
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier
    from earmark.training import TrainConfig

    cfg = TrainConfig(epochs=epochs, batch_size=64, device=device, seed=0, patience=0)
    clf = Classifier("cnn", audio=AudioConfig(duration=1.0), train=cfg)
    clf.fit(datasets.load(data))
    rates = [h["clips_per_s"] for h in clf.history_[1:]] or [clf.history_[0]["clips_per_s"]]
    return statistics.median(rates), clf


def scan_rate(model, rec: Path, warm: Path, device: str, out: Path) -> dict:
    """Real-time factor of detecting in ``rec`` with ``model`` on ``device``."""
    from earmark.detection import Windowing
    from earmark.detection.events import EventRules
    from earmark.detection.run import detect

    model.to(device)
    windowing, rules = Windowing(window=1.0, hop=0.5), EventRules(threshold=0.5)
    detect(model, [warm], out / f"warm-{device}", windowing=windowing, rules=rules)
    t = time.perf_counter()
    s = detect(model, [rec], out / f"scan-{device}", windowing=windowing, rules=rules)
    wall = time.perf_counter() - t
    return {"rtf": s.audio_seconds / wall, "wall_s": wall, "audio_s": s.audio_seconds,
            "events": len(s.events)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = parser.parse_args()
    result: dict = {
        "benchmark": "gpu",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "settings": vars(args) | {"out": str(args.out)},
        "devices": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = tones(work / "tones", args.per_class)
        rec = recording(work / "long.wav", args.minutes)
        warm = recording(work / "warm.wav", 1.0, seed=2)
        for device in args.devices:
            rate, clf = train_rate(data, device, args.epochs)
            row = {"train_clips_per_s": rate, "train_epochs": len(clf.history_)}
            row["detect"] = scan_rate(clf, rec, warm, device, work)
            result["devices"][device] = row
            print(device, json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
