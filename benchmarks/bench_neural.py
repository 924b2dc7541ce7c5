"""The model zoo on the demo digits, speaker-independent split (the classical benchmark's).

For every network: test accuracy, training time, training clips per second after the first
epoch (augmentation and log-mel included, decoding cached), inference clips per second from
files in batches (``predict_files``: decode + log-mel + network; median of 3 runs),
parameters and multiply-adds; beside the best classical model's accuracy. Goals: cnn >= 98%
in <= 3 min of training; seed-cnn >= 1,000 training and >= 2,000 inference clips/s; cnn >= 150
training clips/s (2 CPU cores).

Run: .venv/bin/python benchmarks/bench_neural.py [--data out/demo/digits] [--models cnn ...]
     [--seeds 0 1 2] [--epochs 60 --patience 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _common import RESULTS, write

import earmark
from earmark.classifier import Classifier
from earmark.models import registry
from earmark.models.neural import count_macs, count_parameters
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--voices", type=int, default=60)
    spectral = [n for n in registry.names("neural") if registry.get(n).feature_kinds == ()]
    parser.add_argument("--models", nargs="*", default=spectral)  # log-mel networks
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=15)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        default=[0],
        help="train each model once per seed; timings are from the first",
    )
    args = parser.parse_args()
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data, n_voices=args.voices)
    manifest = earmark.data.load(args.data)
    splits = SplitSettings().apply(manifest)
    results = {}
    for name in args.models:
        accuracies = []
        for seed in args.seeds[1:]:  # the spread over seeds; the first seed is timed below
            cfg = TrainConfig(epochs=args.epochs, patience=args.patience, device="cpu", seed=seed)
            other = Classifier(name, train=cfg).fit(splits.train)
            accuracies.append(other.evaluate(splits.test).metrics["accuracy"])
        cfg = TrainConfig(
            epochs=args.epochs, patience=args.patience, device="cpu", seed=args.seeds[0]
        )
        clf = Classifier(name, train=cfg)
        t0 = time.perf_counter()
        clf.fit(splits.train)
        train_s = time.perf_counter() - t0
        rates = []
        for _ in range(3):  # every file from disk: decode + log-mel + network, in batches
            t0 = time.perf_counter()
            preds = clf.predict_files(manifest, top_k=1)
            rates.append(len(manifest) / (time.perf_counter() - t0))
        right = [p.labels[0] == y for p, y in zip(preds, manifest.labels, strict=True)]
        acc = clf.evaluate(splits.test).metrics["accuracy"]
        net = clf.estimator_.network
        example = torch.zeros(1, clf.audio.channels, clf.features.n_bins, 51)
        later = [r["clips_per_s"] for r in clf.history_[1:]] or [clf.history_[0]["clips_per_s"]]
        accuracies.insert(0, acc)
        results[name] = {
            "test_accuracy": acc,
            "test_accuracy_per_seed": dict(zip(args.seeds, accuracies, strict=True)),
            "test_accuracy_mean": statistics.mean(accuracies),
            "train_s": train_s,
            "epochs": len(clf.history_),
            "best_epoch": clf.training_["best_epoch"],
            "stopped": clf.training_["stopped"],
            "train_clips_per_s": statistics.median(later),
            "inference_clips_per_s": statistics.median(rates),
            "inference_clips_per_s_runs": rates,
            "all_files_accuracy": sum(right) / len(right),
            "parameters": count_parameters(net),
            "macs_per_second_of_audio": count_macs(net, example),
        }
        print(name, json.dumps(results[name]), flush=True)
    classical = RESULTS / "classical.json"
    best = None
    if classical.exists():
        c = json.loads(classical.read_text())["earmark"]
        best = {"model": c["best"], "accuracy": c["models"][c["best"]]["accuracy"]}
    write(
        "neural",
        {
            "data": str(args.data),
            "split": splits.sizes(),
            "models": results,
            "best_classical": best,
            "torch_threads": torch.get_num_threads(),
        },
    )


if __name__ == "__main__":
    main()
