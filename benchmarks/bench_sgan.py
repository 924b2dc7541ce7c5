"""Semi-supervised GAN vs the same discriminator trained supervised, with few labels.

On the demo digits, speaker-independent split (the other benchmarks' split), keep 5%, 10% and
25% of the training labels (per class, seeded; the rest of the training audio becomes the
unlabelled pool) and train, for each of 3 seeds:

* ``sgan``: the discriminator and the generator, labelled + unlabelled audio;
* ``supervised``: the same discriminator network with the same settings and the same number
  of steps, the labelled loss alone (``adversarial=False``); it sees the labelled clips only.

Both train for a fixed number of epochs on every kept label (no validation holdout: at 5%
that would be two clips choosing the weights) and keep the last epoch's weights.

Test accuracy on the held-out speakers: mean and spread (population standard deviation)
over the seeds, and the gain of sgan over supervised. Goal: >= 3 points at 10% labels.
Settings were chosen on a validation part of the training split (never the test split).

Run: .venv/bin/python benchmarks/bench_sgan.py [--fractions 0.05 0.1 0.25] [--seeds 0 1 2]
     [--epochs 60] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from _common import RESULTS, write

import earmark
from earmark.classifier import Classifier
from earmark.models.sgan_config import GAN_DEFAULTS
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings


def run_one(data: Path, fraction: float, seed: int, arm: str, epochs: int) -> dict:
    """Train one arm on one seed and return its test figures."""
    splits = SplitSettings().apply(earmark.data.load(data))
    none = splits.train.subset([])  # an empty validation set
    adversarial = arm == "sgan"
    cfg = TrainConfig(epochs=epochs, patience=0, keep="last", device="cpu", seed=seed)
    clf = Classifier("sgan", params={"adversarial": adversarial}, seed=seed, train=cfg)
    t0 = time.perf_counter()
    # every kept label trains (no validation holdout: with 2 labels per class it would
    # choose the weights on a handful of clips); the last epoch's weights
    clf.fit(splits.train, valid=none, label_fraction=fraction)
    seconds = time.perf_counter() - t0
    acc = clf.evaluate(splits.test).metrics["accuracy"]
    last = clf.history_[-1]
    run = {
        "fraction": fraction,
        "arm": arm,
        "seed": seed,
        "test_accuracy": acc,
        "train_s": seconds,
        "torch_threads": torch.get_num_threads(),
        "labelled_files": clf.training_["files"],
        "unlabelled_files": clf.training_["unlabelled_files"] if adversarial else 0,
        "best_epoch": clf.training_["best_epoch"],
        "final_gen_diversity": last.get("gen_diversity"),
        "mode_collapse_epochs": sum(1 for r in clf.history_ if r.get("mode_collapse")),
    }
    print(json.dumps(run), flush=True)
    return run


def _one_thread() -> None:
    torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--voices", type=int, default=60)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.05, 0.1, 0.25])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs in parallel processes (one thread each)"
    )
    args = parser.parse_args()
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data, n_voices=args.voices)
    splits = SplitSettings().apply(earmark.data.load(args.data))
    tasks = [
        (args.data, fraction, seed, arm, args.epochs)
        for fraction in args.fractions
        for seed in args.seeds
        for arm in ("sgan", "supervised")
    ]
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_one_thread) as pool:
            done = list(pool.map(run_one, *zip(*tasks, strict=True)))
    else:
        done = [run_one(*task) for task in tasks]
    results: dict[str, dict] = {}
    for fraction in args.fractions:
        summary: dict = {}
        for arm in ("sgan", "supervised"):
            rs = [r for r in done if r["fraction"] == fraction and r["arm"] == arm]
            accs = [r["test_accuracy"] for r in rs]
            summary[arm] = {
                "mean": statistics.mean(accs),
                "std": statistics.pstdev(accs),
                "min": min(accs),
                "max": max(accs),
                "runs": rs,
            }
        summary["gain_points"] = 100 * (summary["sgan"]["mean"] - summary["supervised"]["mean"])
        summary["settings"] = {"epochs": args.epochs, "seeds": args.seeds, **GAN_DEFAULTS}
        results[f"{fraction:g}"] = summary
        print(
            f"labels {fraction:.0%}: sgan {summary['sgan']['mean']:.3f} "
            f"+- {summary['sgan']['std']:.3f}, supervised {summary['supervised']['mean']:.3f} "
            f"+- {summary['supervised']['std']:.3f}, gain {summary['gain_points']:+.1f} points",
            flush=True,
        )
    # Fractions run separately (``--fractions 0.1``, then others) add up in one file; each
    # keeps the settings it ran with.
    previous = RESULTS / "sgan.json"
    if previous.exists():
        kept = json.loads(previous.read_text()).get("fractions", {})
        results = {k: v for k, v in kept.items() if k not in results} | results
    write(
        "sgan",
        {
            "data": str(args.data),
            "split": splits.sizes(),
            "goal": "sgan >= supervised + 3 points at 10% labels",
            "fractions": dict(sorted(results.items(), key=lambda kv: float(kv[0]))),
        },
    )


if __name__ == "__main__":
    main()
