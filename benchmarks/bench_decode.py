"""Decode + resample 1,000 short files: earmark.load vs librosa.load, same files, same run.

Files: one-second 44.1 kHz 16-bit WAV and FLAC, resampled to 16 kHz (both use soxr HQ).
Goal: at least librosa's throughput.
Run: .venv/bin/python benchmarks/bench_decode.py [--files 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from _common import write

import earmark.audio

SR_IN, SR_OUT = 44_100, 16_000


def timed(fn, paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("wav", "flac"):
            paths = []
            for i in range(args.files):
                y = (0.1 * rng.standard_normal(SR_IN)).astype(np.float32)
                path = Path(tmp) / f"{i}.{fmt}"
                sf.write(path, y, SR_IN, subtype="PCM_16")
                paths.append(path)

            def ours(p: Path) -> None:
                earmark.audio.load(p, sr=SR_OUT)

            def theirs(p: Path) -> None:
                librosa.load(p, sr=SR_OUT, mono=True)

            ours(paths[0]), theirs(paths[0])  # warm-up (imports, resampler setup)
            # Interleaved rounds, alternating who goes first: both see the same machine noise
            # and neither always runs on the other's warm caches. Best and median reported.
            times: dict[str, list[float]] = {"librosa": [], "earmark": []}
            for r in range(args.rounds):
                order = [("earmark", ours), ("librosa", theirs)]
                for name, fn in order if r % 2 else order[::-1]:
                    times[name].append(timed(fn, paths))
            row: dict[str, float] = {"files": args.files}
            for name, ts in times.items():
                row[f"{name}_best_s"] = min(ts)
                row[f"{name}_median_s"] = float(np.median(ts))
                row[f"{name}_files_per_s_best"] = args.files / min(ts)
            row["ratio_best"] = row["librosa_best_s"] / row["earmark_best_s"]
            row["ratio_median"] = row["librosa_median_s"] / row["earmark_median_s"]
            results[fmt] = row
    write("decode", {"sr_in": SR_IN, "sr_out": SR_OUT, "results": results, "goal_ratio": 1.0})


if __name__ == "__main__":
    main()
