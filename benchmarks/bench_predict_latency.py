"""How long one clip takes to label: a fresh `earmark predict` process, and the library.

A classical model on hand-crafted features (logreg, trained here on 60 demo clips) labels one
one-second clip. The CLI figure is a whole process (Python start, imports, model load,
features, prediction); the library figures split it into import + load, the first
prediction (librosa's numba kernels load on first use) and a later one.

Run: .venv/bin/python benchmarks/bench_predict_latency.py [--data out/demo/digits] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CpuMeter, write

import earmark
from earmark.classifier import Classifier

LIBRARY = """
import json, sys, time
t0 = time.perf_counter()
import earmark
model = earmark.load(sys.argv[1])
t1 = time.perf_counter()
model.predict([sys.argv[2]])
t2 = time.perf_counter()
model.predict([sys.argv[2]])
t3 = time.perf_counter()
print(json.dumps({"import_load_s": t1 - t0, "first_s": t2 - t1, "next_s": t3 - t2}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="out/demo/digits", type=Path)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    manifest = earmark.data.load(args.data)
    clip = str(manifest.filepaths[0])
    with tempfile.TemporaryDirectory() as tmp:
        train = manifest.subset(list(range(min(60, len(manifest)))))
        run = Classifier("logreg", cache_dir=Path(tmp) / "cache").fit(train).save(f"{tmp}/lr")
        earmark_cli = Path(sys.executable).with_name("earmark")
        meter = CpuMeter()
        cli, lib = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            cmd = [str(earmark_cli), "predict", str(run), clip, "--json", "--quiet"]
            subprocess.run(cmd, check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
            out = subprocess.run(
                [sys.executable, "-c", LIBRARY, str(run), clip],
                check=True,
                capture_output=True,
                text=True,
            )
            lib.append(json.loads(out.stdout))
    result = {
        "model": "logreg on hand-crafted features, one 1-second clip",
        "runs": args.runs,
        "cli_process_s": {"median": statistics.median(cli), "min": min(cli)},
        **{
            key: {"median": statistics.median(r[key] for r in lib)}
            for key in ("import_load_s", "first_s", "next_s")
        },
        **meter.stop(),
    }
    write("predict_latency", result)


if __name__ == "__main__":
    main()
