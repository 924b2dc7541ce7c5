"""Log-mel of 512 one-second 16 kHz clips: earmark (torch, one batch) vs librosa clip by clip.

Goal: at least 5x librosa's throughput on the same machine in the same run.
Run: .venv/bin/python benchmarks/bench_logmel.py [--clips 512]
"""

from __future__ import annotations

import argparse

import librosa
import numpy as np
import torch
from _common import best_of, write

from earmark.features.spectral import LogMel

SR = 16_000
PARAMS = dict(n_fft=512, hop_length=160, win_length=400, n_mels=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    freqs = rng.uniform(100, 4000, size=(args.clips, 1))
    clips = 0.3 * np.sin(2 * np.pi * freqs * t) + 0.05 * rng.standard_normal((args.clips, SR))
    clips = clips.astype(np.float32)

    def with_librosa() -> None:
        for y in clips:
            librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, **PARAMS), top_db=80.0)

    frontend = LogMel(SR, **PARAMS)
    batch = torch.from_numpy(clips)[:, None]

    def with_earmark() -> None:
        with torch.inference_mode():
            frontend(batch)

    # Same numbers, so the comparison is fair.
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=clips[0], sr=SR, **PARAMS))
    with torch.inference_mode():
        ours = frontend(batch[:1])[0, 0].numpy()
    max_diff = float(np.abs(ours - ref).max())

    t_librosa = best_of(with_librosa, repeats=2)
    t_earmark = best_of(with_earmark, repeats=3)
    audio_s = args.clips * 1.0
    write(
        "logmel",
        {
            "clips": args.clips,
            "params": PARAMS,
            "max_abs_diff_db": max_diff,
            "librosa_s": t_librosa,
            "earmark_s": t_earmark,
            "librosa_audio_s_per_s": audio_s / t_librosa,
            "earmark_audio_s_per_s": audio_s / t_earmark,
            "speedup": t_librosa / t_earmark,
            "goal_speedup": 5.0,
        },
    )


if __name__ == "__main__":
    main()
