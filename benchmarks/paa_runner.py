"""Train and test pyAudioAnalysis on given file lists; runs inside its own virtual env.

Called by bench_classical.py (never imports earmark). Uses pyAudioAnalysis' standard recipe:
mid-term features (1 s window and step over 50 ms short-term frames) and its SVM, whose C is
chosen by its own repeated train/test experiments, here kept group-aware (dict_of_ids).

Usage: python paa_runner.py TRAIN.csv TEST.csv WORKDIR OUT.json [--classifier svm]
(CSV columns: path,label,group)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path


def read(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("work")
    p.add_argument("out")
    p.add_argument("--classifier", default="svm")
    args = p.parse_args()
    from pyAudioAnalysis import audioTrainTest as aT

    work = Path(args.work)
    groups = {}
    for row in read(args.train):
        folder = work / "train" / row["label"]
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / f"{row['group']}_{Path(row['path']).name}"
        if not link.exists():
            os.symlink(row["path"], link)
        groups[str(link)] = row["group"]
    dirs = sorted(str(d) for d in (work / "train").iterdir())
    model = str(work / f"paa_{args.classifier}")
    t0 = time.perf_counter()
    aT.extract_features_and_train(
        dirs,
        1.0,
        1.0,
        aT.shortTermWindow,
        aT.shortTermStep,
        args.classifier,
        model,
        False,
        0.9,
        groups,
    )
    train_s = time.perf_counter() - t0
    test = read(args.test)
    correct = 0
    t0 = time.perf_counter()
    for row in test:
        class_id, _, classes = aT.file_classification(row["path"], model, args.classifier)
        correct += classes[int(class_id)] == Path(dirs[int(class_id)]).name == row["label"]
    predict_s = time.perf_counter() - t0
    result = {
        "classifier": args.classifier,
        "train_files": len(groups),
        "test_files": len(test),
        "accuracy": correct / len(test),
        "train_s": train_s,
        "predict_s": predict_s,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
