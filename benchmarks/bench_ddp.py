"""Distributed training on one machine: a network trained by 1 and by N processes (PyTorch
DDP, gloo, ``Classifier.fit(..., nproc=N)``, what ``earmark train --nproc N`` runs) on the
demo digits, speaker-independent split. For each: training clips per second (the median over
the epochs after the first, augmentation and log-mel included; the global batch, all
processes together), the whole fit's wall time (decoding once, starting the processes), and
test accuracy. One process uses every torch thread; N processes share them out (the CPU
cores, not more work, are what they split).

Run: .venv/bin/python benchmarks/bench_ddp.py [--data out/demo/digits] [--model cnn]
     [--epochs 4] [--nproc 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _common import CpuMeter, write

import earmark
from earmark.classifier import Classifier
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--voices", type=int, default=60)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--nproc", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's, all cores)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data, n_voices=args.voices)
    splits = SplitSettings().apply(earmark.data.load(args.data))
    rows = {}
    for n in args.nproc:
        cfg = TrainConfig(epochs=args.epochs, patience=0, device="cpu", seed=0)
        clf = Classifier(args.model, train=cfg)
        meter = CpuMeter()
        t0 = time.perf_counter()
        clf.fit(splits.train, nproc=n)
        wall = time.perf_counter() - t0
        later = [r["clips_per_s"] for r in clf.history_[1:]] or [clf.history_[0]["clips_per_s"]]
        rows[str(n)] = {
            "processes": n,
            "train_clips_per_s": round(statistics.median(later), 1),
            "epoch_clips_per_s": [round(r["clips_per_s"], 1) for r in clf.history_],
            "fit_wall_s": round(wall, 1),
            "train_files": clf.training_["files"],
            "test_accuracy": round(clf.evaluate(splits.test).metrics["accuracy"], 4),
            **meter.stop(),
        }
        print(f"{n} process(es): {rows[str(n)]}", flush=True)
    base = rows.get("1", {}).get("train_clips_per_s")
    for row in rows.values():
        if base:
            row["speedup"] = round(row["train_clips_per_s"] / base, 2)
    write(
        "ddp" if args.threads is None else f"ddp-threads{args.threads}",
        {
            "data": str(args.data),
            "model": args.model,
            "epochs": args.epochs,
            "torch_threads_one_process": torch.get_num_threads(),
            "runs": rows,
        },
    )


if __name__ == "__main__":
    main()
