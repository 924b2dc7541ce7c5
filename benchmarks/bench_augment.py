"""Waveform augmentation throughput on one CPU thread: a batch of 64 one-second 16 kHz clips
through each preset's waveform chain (the spectrogram masks cost next to nothing), and each
recording-condition transform alone on every clip (``p=1``), in milliseconds a clip.

Batches are drawn with different seeds (a preset's ``OneOf`` picks per batch, so one seed
would time one branch only): the figure is the total over ``--batches`` batches. The codec
delays (measured once per codec and bitrate, then cached) are measured before the clock
starts, as they are after a training run's first batches; their one-time cost is reported.

Run: .venv/bin/python benchmarks/bench_augment.py [--batches 10] [--presets default robust]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write

from earmark import augment as A

SR = 16_000
CLIPS = 64


def clips_per_s(chain: A.Augmenter, x: torch.Tensor, batches: int) -> float:
    chain(x, generator=torch.Generator().manual_seed(10_000))  # warm-up: imports, delays
    t0 = time.perf_counter()
    for seed in range(batches):
        chain(x, generator=torch.Generator().manual_seed(seed))
    return batches * x.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--presets", nargs="+", default=["default", "strong", "robust"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    freqs = rng.uniform(100, 4000, size=(CLIPS, 1))
    clips = 0.3 * np.sin(2 * np.pi * freqs * t) + 0.05 * rng.standard_normal((CLIPS, SR))
    x = torch.from_numpy(clips.astype(np.float32))[:, None]

    t0 = time.perf_counter()
    for codec in ("mp3", "opus"):
        for kbps in range(8, 33):
            A.codec_delay(codec, SR, kbps)
    delays_s = time.perf_counter() - t0
    presets = {
        name: clips_per_s(A.preset(name, sample_rate=SR).waveform, x, args.batches)
        for name in args.presets
    }
    alone = {}
    for cls in (A.Speed, A.PitchShift, A.ColoredNoise, A.Equalizer, A.BandPass, A.Reverb):
        alone[cls.__name__] = 1000 / clips_per_s(cls(SR, p=1.0), x, max(1, args.batches // 5))
    for codec in ("mp3", "opus"):
        chain = A.Codec(SR, codecs=[codec], p=1.0)
        alone[f"Codec[{codec}]"] = 1000 / clips_per_s(chain, x, max(1, args.batches // 5))
    write(
        "augment",
        {
            "clips_per_batch": CLIPS,
            "clip_s": 1.0,
            "sample_rate": SR,
            "batches": args.batches,
            "preset_clips_per_s": {k: round(v, 1) for k, v in presets.items()},
            "transform_ms_per_clip_at_p1": {k: round(v, 2) for k, v in alone.items()},
            "codec_delays_once_s": round(delays_s, 2),
        },
    )


if __name__ == "__main__":
    main()
