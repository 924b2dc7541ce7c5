"""Scaling detection out with Dask: 20 one-hour recordings scanned in one process, by one and by
two single-threaded Dask workers (a LocalCluster, torch at one thread per worker).

* The same events: events.csv of the three runs, byte for byte.
* Wall time, speed-up of two workers over one (goal on 2 cores: >= 1.7x), the cost of a
  file on a worker (from Dask's task stream), the scheduler's overhead per task (the wall
  time the workers were not computing, per task; and a round trip of empty tasks). Beside
  the wall-time speed-up, the one the workers' CPU time gives (one worker's CPU seconds over
  the busiest of two workers'): what idle cores would show, when the machine is shared.
* Peak resident memory per worker, sampled (psutil) every 0.25 s and after every file, and
  the worker's own peak (VmHWM) at the end: it must stay flat across files, whatever their
  number.
* A projection for 100 workers from the measured per-file cost, warm-up and overheads: the
  bench's corpus and a season (2,000 one-hour files), with the read bandwidth it needs.

The recordings are the demo scenes tiled to an hour each (each file starts at another place
of the tiling, at another gain), written as FLAC under --data/bench-scale and reused; the
detector is the demo's recipe (recipes/detector.yaml, cnn) trained on the demo scenes, or
the one of --run, or the one benchmarks/bench_detect.py trained (reused when present).

Run: .venv/bin/python benchmarks/bench_scale.py [--data out/demo] [--files 20] [--hours 1]
     [--run RUN]   (needs the dask extra: pip install 'earmark[dask]')
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import CpuMeter, machine, write

HERE = Path(__file__).parent
SR = 16_000
SETTINGS = {"window": 1.0, "hop": 0.5, "threshold": 0.5, "background": ("other", "noise")}
SEASON_FILES = 2_000  # one recorder, one season: ~2,000 one-hour files
PROJECTED_WORKERS = 100

SCAN = """
import json, sys, time
def peak_rss_mb():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
import torch
import earmark
from earmark.detection.run import detect
settings = json.loads(sys.argv[3])
settings["background"] = tuple(settings["background"])
model = earmark.load(sys.argv[1])
files = json.loads(open(sys.argv[2]).read())
t = time.perf_counter()
s = detect(model, files, sys.argv[4], settings=settings)
wall = time.perf_counter() - t
print(json.dumps({"wall_s": wall, "audio_s": s.audio_seconds, "events": len(s.events),
                  "torch_threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb()}))
"""


def scenes_and_detector(data: Path, run: Path | None) -> tuple[list[Path], Path]:
    """The demo scene recordings (built from the demo digits when missing) and the detector:
    ``run``, else bench_detect's cnn, else one trained here on the demo recipe."""
    scenes = data / "scenes"
    recordings = sorted((scenes / "recordings").glob("*.wav"))
    if not recordings or not (scenes / "train").is_dir():
        from earmark.data.demo import make_demo_digits
        from earmark.data.scenes import make_demo_scenes

        digits = data / "digits"
        if not (digits / "manifest.csv").exists():
            make_demo_digits(digits)
        make_demo_scenes(scenes, digits, target="seven")
        recordings = sorted((scenes / "recordings").glob("*.wav"))
    if run is None:
        for candidate in (data / "bench-detect" / "run-cnn", data / "bench-scale" / "run-cnn"):
            if (candidate / "earmark.json").exists():
                return recordings, candidate
        run = data / "bench-scale" / "run-cnn"
        earmark_cli = Path(sys.executable).with_name("earmark")
        recipe = HERE.parent / "recipes" / "detector.yaml"
        train = [str(earmark_cli), "train", str(scenes / "train"), "--config", str(recipe)]
        options = ["--model", "cnn", "--background", str(scenes / "noise"), "--out", str(run)]
        subprocess.run([*train, *options, "--quiet", "--no-cache"], check=True)
    return recordings, run


def tiled_recordings(scenes: list[Path], folder: Path, files: int, hours: float) -> list[str]:
    """``files`` recordings of ``hours`` each: the scenes one after the other, repeated,
    each file starting at another point of the tiling and at another gain (so their events
    differ), written minute by minute as FLAC. Reused when present at the right length."""
    base = np.concatenate([sf.read(p, dtype="float32")[0] for p in scenes])
    n = round(hours * 3600 * SR)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(files):
        path = folder / f"rec{k:03d}.flac"
        out.append(str(path))
        if path.exists() and sf.info(path).frames == n:
            continue
        rng = np.random.default_rng(k)
        start = int(rng.integers(len(base)))
        gain = float(rng.uniform(0.6, 1.0))
        tmp = path.with_name(f".{path.name}")
        with sf.SoundFile(tmp, "w", SR, 1, format="FLAC", subtype="PCM_16") as fh:
            for at in range(0, n, 60 * SR):
                idx = (start + at + np.arange(min(60 * SR, n - at))) % len(base)
                fh.write(np.clip(base[idx] * gain, -1, 1))
        os.replace(tmp, path)
    return out


def scan_in_process(run: Path, files: list[str], out: Path) -> dict:
    listing = out.with_suffix(".json")
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text(json.dumps(files))
    res = subprocess.run(
        [sys.executable, "-c", SCAN, str(run), str(listing), json.dumps(SETTINGS), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


class RssSampler:
    """Resident memory of the worker processes (psutil), sampled every ``every`` seconds and
    after each file: the peak per worker, and per file the largest resident size so far."""

    def __init__(self, pids: dict[str, int], every: float = 0.25) -> None:
        import psutil

        self.procs = {addr: psutil.Process(pid) for addr, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0.0)
        self.after_file: list[float] = []
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        for addr, proc in self.procs.items():
            try:
                rss = proc.memory_info().rss / 2**20
            except Exception:  # a worker gone (restarted): its next sample counts
                continue
            self.peak[addr] = max(self.peak[addr], rss)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def on_file(self, path: str, seconds: float) -> None:
        self.sample()
        self.after_file.append(max(self.peak.values()))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) each worker has used so far."""
        out = {}
        for addr, proc in self.procs.items():
            try:
                times = proc.cpu_times()
            except Exception:
                continue
            out[addr] = times.user + times.system
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def worker_facts() -> dict:
    """A worker's pid, threads and peak resident memory (VmHWM: ru_maxrss would carry the
    process's parent's over the exec that started it)."""
    import torch

    status = Path("/proc/self/status").read_text()
    return {
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "vmhwm_mb": int(status.split("VmHWM:")[1].split()[0]) / 1024,
    }


def noop(x: int) -> int:
    return x


def scan_on_dask(run: Path, files: list[str], out: Path, workers: int) -> dict:
    from distributed import get_task_stream

    from earmark import distributed

    t0 = time.perf_counter()
    with distributed.Engine(workers=workers) as engine:
        startup = time.perf_counter() - t0
        client = engine.client
        pids = {addr: facts["pid"] for addr, facts in client.run(worker_facts).items()}
        sampler = RssSampler(pids)
        meter = CpuMeter()
        cpu_before = sampler.cpu_seconds()
        with get_task_stream(client) as stream:
            t = time.perf_counter()
            summary = distributed.detect(
                run, files, out, engine=engine, settings=SETTINGS, on_file=sampler.on_file
            )
            wall = time.perf_counter() - t
        cpu_after = sampler.cpu_seconds()
        cpu = meter.stop()
        sampler.stop()
        facts = client.run(worker_facts)
        tasks = sorted(
            (
                min(s["start"] for s in task["startstops"]),
                task["worker"],
                sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute"),
            )
            for task in stream.data
            if "detect" in str(task["key"])
        )
        busy = [b for _, _, b in tasks]
        # a worker's first task also imports torch and loads the model: its extra time
        firsts = {w: b for _, w, b in reversed(tasks)}  # (the earliest task of each worker)
        steady = float(np.median(busy))
        warmup = max(0.0, float(np.mean(list(firsts.values()))) - steady) if busy else 0.0
        # the round trip of an empty task (submit -> result), one worker kept busy at a time
        t = time.perf_counter()
        n_noop = 200
        list(engine.map(noop, list(range(n_noop)), name="noop"))
        noop_s = (time.perf_counter() - t) / n_noop
    third = max(1, len(sampler.after_file) // 3)
    return {
        "workers": workers,
        "startup_s": round(startup, 2),
        "wall_s": round(wall, 2),
        "audio_s": summary.audio_seconds,
        "realtime_factor": round(summary.audio_seconds / wall, 1),
        "events": len(summary.events),
        "tasks": len(busy),
        "per_file_compute_s": round(steady, 3),  # the median task
        "worker_warmup_s": round(warmup, 2),  # a first task's extra: imports, the model
        "overhead_s_per_task": round(max(0.0, (wall * workers - sum(busy)) / len(busy)), 4),
        "noop_task_round_trip_s": round(noop_s, 5),
        # the CPU each worker spent on the scan: on a shared machine the wall time says how
        # busy the machine was, this what the work cost (the wall time of idle cores)
        "worker_cpu_s": {a: round(cpu_after[a] - cpu_before[a], 2) for a in cpu_after},
        "peak_rss_mb_per_worker": {a: round(v, 1) for a, v in sampler.peak.items()},
        "worker_vmhwm_mb": {a: round(f["vmhwm_mb"], 1) for a, f in facts.items()},
        "rss_mb_after_first_third": round(sampler.after_file[third - 1], 1),
        "rss_mb_after_last_file": round(sampler.after_file[-1], 1),
        "worker_torch_threads": sorted({f["torch_threads"] for f in facts.values()}),
        "worker_omp_num_threads": sorted({str(f["omp_num_threads"]) for f in facts.values()}),
        **cpu,
    }


def projection(one: dict, two: dict, files: int, hours: float) -> dict:
    """Wall time with 100 workers, from the measured costs: each worker warms up once
    (imports, the model), then files are scanned in rounds of one file per worker
    (``ceil(files / workers)`` rounds of the per-file cost plus the per-task overhead); the
    scheduler hands out tasks one after another (an empty task's round trip each, a floor
    however many workers there are). The season is 2,000 one-hour files, the per-file cost
    scaled to an hour (it grows with the length; the overheads do not)."""
    overhead = max(one["overhead_s_per_task"], two["overhead_s_per_task"])
    serial = two["noop_task_round_trip_s"]
    warmup = max(one["worker_warmup_s"], two["worker_warmup_s"])

    def wall(n_files: int, workers: int, per_file: float) -> float:
        rounds = math.ceil(n_files / workers)
        return max(warmup + rounds * (per_file + overhead), n_files * serial)

    out = {}
    per_hour = one["per_file_compute_s"] / hours
    for name, n_files, file_hours in (("bench", files, hours), ("season", SEASON_FILES, 1.0)):
        per_file = per_hour * file_hours
        w1 = wall(n_files, 1, per_file)
        w100 = wall(n_files, PROJECTED_WORKERS, per_file)
        rtf = n_files * file_hours * 3600 / w100
        out[name] = {
            "files": n_files,
            "hours": n_files * file_hours,
            "per_file_s": round(per_file, 2),
            "wall_s_1_worker": round(w1, 1),
            f"wall_s_{PROJECTED_WORKERS}_workers": round(w100, 1),
            "speedup": round(w1 / w100, 1),
            "efficiency": round(w1 / w100 / PROJECTED_WORKERS, 3),
            "realtime_factor": round(rtf),
            # 16 kHz 16-bit mono PCM: 32 kB a second of audio (FLAC about half)
            "read_mb_per_s_pcm": round(rtf * SR * 2 / 1e6, 1),
        }
    out["assumes"] = (
        "one file per task, workers of one core like these, the files read at the bandwidth "
        "given, the workers already started (a batch queue's wait not counted); fewer files "
        "than workers leave workers idle"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("out/demo"))
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--hours", type=float, default=1.0, help="length of each recording")
    parser.add_argument("--run", type=Path, help="a detector to use instead of training one")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    scenes, run = scenes_and_detector(args.data, args.run)
    work = args.data / "bench-scale"
    t = time.perf_counter()
    files = tiled_recordings(scenes, work / "recordings", args.files, args.hours)
    print(f"{len(files)} recordings of {args.hours:g} h ready in {time.perf_counter() - t:.0f} s")
    results: dict = {
        "machine": machine(),
        "run": str(run),
        "files": len(files),
        "hours_per_file": args.hours,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in SETTINGS.items()},
    }
    outs = {}
    if not args.skip_in_process:
        outs["in_process"] = work / "scan-in-process"
        results["in_process"] = scan_in_process(run, files, outs["in_process"])
        print("in process", json.dumps(results["in_process"]), flush=True)
    for n in (1, 2):
        outs[f"dask_{n}"] = work / f"scan-dask-{n}"
        results[f"dask_{n}_workers"] = scan_on_dask(run, files, outs[f"dask_{n}"], n)
        print(f"dask {n}", json.dumps(results[f"dask_{n}_workers"]), flush=True)
    events = {name: (out / "events.csv").read_bytes() for name, out in outs.items()}
    one, two = results["dask_1_workers"], results["dask_2_workers"]
    speedup = one["wall_s"] / two["wall_s"]
    rss = [r["rss_mb_after_first_third"] for r in (one, two)]
    rss_end = [r["rss_mb_after_last_file"] for r in (one, two)]
    # speed-up if each worker had a core of its own: one worker's CPU over the busiest of two
    cpu_speedup = sum(one["worker_cpu_s"].values()) / max(two["worker_cpu_s"].values())
    results["summary"] = {
        "same_events": len(set(events.values())) == 1,
        "speedup_2_over_1": round(speedup, 2),
        "speedup_2_over_1_cpu_bound": round(cpu_speedup, 2),
        "speedup_goal": 1.7,
        "speedup_met": speedup >= 1.7,
        # flat: what a worker holds after the last file is within 10% (or 50 MB) of what it
        # held a third of the way through
        "memory_flat": all(b <= max(a * 1.1, a + 50) for a, b in zip(rss, rss_end, strict=True)),
    }
    results["projection"] = projection(one, two, len(files), args.hours)
    print(json.dumps(results["summary"]))
    write("scale", results)


if __name__ == "__main__":
    main()
