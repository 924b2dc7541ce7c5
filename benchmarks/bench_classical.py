"""Classical models on the demo digits, speaker-independent split: earmark vs pyAudioAnalysis.

Both get the very same split (earmark's group-aware holdout: no voice on both sides).
earmark: hand-crafted features (computed fresh, no cache) + each registered classical
learner. pyAudioAnalysis: its mid-term features + its SVM, in its own virtual environment
(created here on first use). Goal: beat pyAudioAnalysis on accuracy and on training time.

Run: .venv/bin/python benchmarks/bench_classical.py [--data out/demo/digits] [--voices 60]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import tempfile
import time
from pathlib import Path

from _common import bench_python, write

import earmark
from earmark.classifier import Classifier
from earmark.models import registry
from earmark.models.classical import ClassicalModel
from earmark.workflows import SplitSettings

HERE = Path(__file__).parent
PAA_VENV = HERE / ".venv-paa"
# pyAudioAnalysis' sdist ships no requirements: these are the packages it imports.
PAA_PACKAGES = [
    "pyAudioAnalysis",
    "numpy",
    "scipy",
    "scikit-learn",
    "matplotlib",
    "imbalanced-learn",
    "plotly",
    "hmmlearn",
    "eyeD3",
    "pydub",
    "tqdm",
]


def paa_python() -> Path:
    return bench_python(PAA_VENV, PAA_PACKAGES)


def write_list(path: Path, manifest) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "group"])
        for p, label, group in zip(
            manifest.filepaths, manifest.labels, manifest.groups, strict=True
        ):
            w.writerow([p, label, group])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--voices", type=int, default=60)
    parser.add_argument("--skip-paa", action="store_true")
    args = parser.parse_args()
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data, n_voices=args.voices)
    manifest = earmark.data.load(args.data)
    splits = SplitSettings().apply(manifest)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        base = Classifier("gnb")  # no cache: features are computed fresh and timed
        train_table = base.features_of(splits.train)
        features_s = time.perf_counter() - t0
        test_table = base.features_of(splits.test)
        models = {}
        labels = [train_table.classes[k] for k in train_table.y]
        for name in registry.names("classical"):
            t0 = time.perf_counter()
            est = ClassicalModel(name, random_state=0).fit(base._matrix(train_table), labels)
            fit_s = time.perf_counter() - t0
            pred = est.predict(base._matrix(test_table))
            truth = [test_table.classes[k] for k in test_table.y]
            acc = sum(p == t for p, t in zip(pred, truth, strict=True)) / len(truth)
            models[name] = {"accuracy": acc, "fit_s": fit_s, "train_s": features_s + fit_s}
            print(f"earmark {name:12s} accuracy {acc:.4f}  fit {fit_s:.2f} s", flush=True)
        best = max(models, key=lambda n: (models[n]["accuracy"], -models[n]["train_s"]))
        result = {
            "data": str(args.data),
            "split": splits.sizes(),
            "groups": {
                "train": len(set(splits.train.groups)),
                "test": len(set(splits.test.groups)),
            },
            "earmark": {"features_s": features_s, "models": models, "best": best},
        }
        if not args.skip_paa:
            work = Path(tmp) / "paa"
            work.mkdir()
            out = work / "result.json"
            cmd = [
                str(paa_python()),
                str(HERE / "paa_runner.py"),
                str(write_list(work / "train.csv", splits.train)),
                str(write_list(work / "test.csv", splits.test)),
                str(work),
                str(out),
            ]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            paa = json.loads(out.read_text())
            result["pyaudioanalysis"] = paa
            result["earmark_best_vs_paa"] = {
                "model": best,
                "accuracy": [models[best]["accuracy"], paa["accuracy"]],
                "train_s": [models[best]["train_s"], paa["train_s"]],
                "beats_on_accuracy": models[best]["accuracy"] > paa["accuracy"],
                "beats_on_train_time": models[best]["train_s"] < paa["train_s"],
            }
    write("classical", result)


if __name__ == "__main__":
    main()
