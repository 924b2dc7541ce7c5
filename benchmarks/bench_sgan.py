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
     [--epochs 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import write

import earmark
from earmark.classifier import Classifier
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--voices", type=int, default=60)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.05, 0.1, 0.25])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data, n_voices=args.voices)
    manifest = earmark.data.load(args.data)
    splits = SplitSettings().apply(manifest)
    none = splits.train.subset([])  # an empty validation set
    results: dict[str, dict] = {}
    for fraction in args.fractions:
        runs: dict[str, list[dict]] = {"sgan": [], "supervised": []}
        for seed in args.seeds:
            for arm, adversarial in (("sgan", True), ("supervised", False)):
                cfg = TrainConfig(
                    epochs=args.epochs, patience=0, keep="last", device="cpu", seed=seed
                )
                clf = Classifier("sgan", params={"adversarial": adversarial}, seed=seed, train=cfg)
                t0 = time.perf_counter()
                # every kept label trains (no validation holdout: with 2 labels per class it
                # would choose the weights on a handful of clips); the last epoch's weights
                clf.fit(splits.train, valid=none, label_fraction=fraction)
                seconds = time.perf_counter() - t0
                acc = clf.evaluate(splits.test).metrics["accuracy"]
                last = clf.history_[-1]
                run = {
                    "seed": seed,
                    "test_accuracy": acc,
                    "train_s": seconds,
                    "labelled_files": clf.training_["files"],
                    "unlabelled_files": clf.training_["unlabelled_files"] if adversarial else 0,
                    "best_epoch": clf.training_["best_epoch"],
                    "final_gen_diversity": last.get("gen_diversity"),
                    "mode_collapse_epochs": sum(1 for r in clf.history_ if r.get("mode_collapse")),
                }
                runs[arm].append(run)
                print(fraction, arm, json.dumps(run), flush=True)
        summary = {}
        for arm, rs in runs.items():
            accs = [r["test_accuracy"] for r in rs]
            summary[arm] = {
                "mean": statistics.mean(accs),
                "std": statistics.pstdev(accs),
                "min": min(accs),
                "max": max(accs),
                "runs": rs,
            }
        summary["gain_points"] = 100 * (summary["sgan"]["mean"] - summary["supervised"]["mean"])
        results[f"{fraction:g}"] = summary
        print(
            f"labels {fraction:.0%}: sgan {summary['sgan']['mean']:.3f} "
            f"+- {summary['sgan']['std']:.3f}, supervised {summary['supervised']['mean']:.3f} "
            f"+- {summary['supervised']['std']:.3f}, gain {summary['gain_points']:+.1f} points",
            flush=True,
        )
    write(
        "sgan",
        {
            "data": str(args.data),
            "split": splits.sizes(),
            "epochs": args.epochs,
            "seeds": args.seeds,
            "goal": "sgan >= supervised + 3 points at 10% labels",
            "fractions": results,
        },
    )


if __name__ == "__main__":
    main()
