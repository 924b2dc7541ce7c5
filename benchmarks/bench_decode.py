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

import earmark

SR_IN, SR_OUT = 44_100, 16_000


def timed(fn, paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
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
                earmark.load(p, sr=SR_OUT)

            def theirs(p: Path) -> None:
                librosa.load(p, sr=SR_OUT, mono=True)

            ours(paths[0]), theirs(paths[0])  # warm-up (imports, resampler setup)
            t_lib = min(timed(theirs, paths) for _ in range(2))
            t_ours = min(timed(ours, paths) for _ in range(2))
            results[fmt] = {
                "files": args.files,
                "librosa_s": t_lib,
                "earmark_s": t_ours,
                "librosa_files_per_s": args.files / t_lib,
                "earmark_files_per_s": args.files / t_ours,
                "ratio": t_lib / t_ours,
            }
    write("decode", {"sr_in": SR_IN, "sr_out": SR_OUT, "results": results, "goal_ratio": 1.0})


if __name__ == "__main__":
    main()
