"""Embedding speed of each pretrained frontend: audio-seconds embedded per second of wall time.

For every installed frontend (``earmark.features.pretrained``), 60 s of audio at its own rate,
cut into windows of its ``window_seconds`` (aisfx 2.32 s, BirdNET 3 s) and into 1-s windows
(what a model trained on the 1-s demo digits embeds), embedded in batches of 16 through the
registry's embedder (what ``features=``, ``earmark embed`` and the head models use); best of
3 runs after a warm-up, torch on ``--threads`` threads (2: this project's development machine
and CI; the TFLite runtime takes the cores the process may use: run under ``taskset`` to
limit it).

Run: .venv/bin/python benchmarks/bench_embed.py [--threads 2] [--seconds 60]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import best_of, write

from earmark.features import pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name in pretrained.FRONTENDS:
        meta = pretrained.info(name)
        if not pretrained.available(name):
            results[name] = {"skipped": f"not installed ({meta.install})"}
            continue
        embed = pretrained.load(name)
        rng = np.random.default_rng(0)
        row: dict[str, object] = {"license": meta.license, "dim": meta.dim}
        for label, window in (("native", meta.window_seconds), ("1s", 1.0)):
            n = max(1, round(args.seconds / window))
            waves = (0.1 * rng.standard_normal((n, round(window * meta.sample_rate)))).astype(
                np.float32
            )

            def run(waves: np.ndarray = waves, embed=embed) -> None:
                for i in range(0, len(waves), args.batch):
                    embed(waves[i : i + args.batch])

            seconds = best_of(run)
            audio = n * window
            row[f"{label}_window_s"] = round(window, 3)
            row[f"{label}_ms_per_audio_s"] = round(1000 * seconds / audio, 2)
            row[f"{label}_x_realtime"] = round(audio / seconds, 1)
            print(name, label, row, flush=True)
        results[name] = row
    write("bench_embed", {"threads": args.threads, "results": results})


if __name__ == "__main__":
    main()
