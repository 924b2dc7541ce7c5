"""Shared by the benchmarks: machine facts and writing results as JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"


#: CPU features that move the int8 and float figures: AVX-512, and VNNI (8-bit dot products
#: in one instruction; without it onnxruntime's int8 convolutions run on AVX2's vpmaddubsw)
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu() -> dict[str, Any]:
    """The CPU's model name and which of :data:`CPU_FLAGS` it has (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", ""), "flags": [f for f in CPU_FLAGS if f in flags]}


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "platform": platform.platform(),
    }


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` runs of ``fn``, in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    result = {"benchmark": name, "machine": machine(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return path


def bench_python(venv: Path, packages: list[str]) -> Path:
    """The python of a benchmark-only virtual environment (a comparison tool's, kept out of
    earmark's own), created with ``packages`` on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


class CpuMeter:
    """CPU accounting over a stretch of a benchmark (Linux ``/proc``; empty elsewhere): the
    share of the machine's CPU time the hypervisor stole (``steal_pct``: figures taken while
    it is high say more about the host than about the code) and, given a process id, that
    process's CPU seconds (``process_cpu_s``: unlike latency, barely moved by steal)."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.start = self._read()

    def _read(self) -> tuple[list[int], float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            ticks = [int(v) for v in fields]
            cpu = 0.0
            if self.pid is not None:
                stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
            return ticks, cpu
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> dict[str, float]:
        end = self._read()
        if self.start is None or end is None:
            return {}
        delta = [b - a for a, b in zip(self.start[0], end[0], strict=False)]
        total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
        out = {"steal_pct": round(100 * delta[7] / total, 1)}
        if self.pid is not None:
            out["process_cpu_s"] = round(end[1] - self.start[1], 2)
        return out
