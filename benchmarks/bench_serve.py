"""Load test of `earmark serve` on loopback, and ONNX vs PyTorch single-clip latency.

A real server process (`earmark serve`, uvicorn) with a `cnn` trained on the demo digits;
a real HTTP client (httpx, asyncio) posts 1-second clips at concurrency 1, 8 and 32 for
`--seconds` each and records throughput, p50 / p99 latency and the status codes. Goal on
2 CPU cores: p99 under 100 ms at concurrency 8; at 32, every request served or refused with
503, never a timeout or a 500. The client shares the machine's two cores with the server.

Run: .venv/bin/python benchmarks/bench_serve.py [--data out/demo/digits] [--seconds 60]
     [--runtime torch|onnx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _common import machine, write

import earmark
from earmark.classifier import Classifier
from earmark.export import export_onnx
from earmark.training import TrainConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, clips: list[bytes], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < stop:
                body = clips[i % len(clips)]
                i += concurrency
                t0 = time.perf_counter()
                try:
                    res = await client.post(
                        f"{url}/v1/predict", content=body, headers={"content-type": "audio/wav"}
                    )
                    key = str(res.status_code)
                except httpx.TimeoutException:
                    key = "timeout"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                if key == "200":
                    latencies.append(time.perf_counter() - t0)
                statuses[key] = statuses.get(key, 0) + 1
                if key == "503":
                    await asyncio.sleep(0.05)  # honour Retry-After a little

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "concurrency": concurrency,
        "seconds": wall,
        "requests": sum(statuses.values()),
        "served_per_s": len(latencies) / wall,
        "statuses": statuses,
        "p50_ms": q(0.50) if latencies else None,
        "p99_ms": q(0.99) if latencies else None,
    }


def single_clip_latency(model, clip: Path, repeats: int = 50) -> float:
    model.predict_file(clip)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict_file(clip)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--work", type=Path, default=Path("out/demo/bench-serve"))
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="torch")
    args = parser.parse_args()
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data)
    run = args.work / "run-cnn"
    if not (run / "earmark.json").exists():
        cfg = TrainConfig(epochs=10, device="cpu", seed=0)  # latency does not need accuracy
        Classifier("cnn", train=cfg).fit(earmark.data.load(args.data)).save(run)
    torch_model = earmark.load(run)
    onnx_model = earmark.load(export_onnx(torch_model, args.work / "onnx" / "cnn.onnx"))
    clips = sorted(args.data.glob("*/v01*.wav"))
    results: dict = {"machine": machine(), "model": "cnn", "runtime": args.runtime}
    results["single_clip_ms"] = {
        "torch": single_clip_latency(torch_model, clips[0]),
        "onnxruntime": single_clip_latency(onnx_model, clips[0]),
    }
    print("single clip", json.dumps(results["single_clip_ms"]), flush=True)

    port = free_port()
    cmd = [
        str(Path(sys.executable).with_name("earmark")),
        "serve",
        str(run),
        "--port",
        str(port),
        "--runtime",
        args.runtime,
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        bodies = [c.read_bytes() for c in clips]
        results["load"] = []
        for concurrency in (1, 8, 32):
            got = asyncio.run(load(url, bodies, concurrency, args.seconds))
            results["load"].append(got)
            print(json.dumps(got), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    write(f"serve-{args.runtime}", results)


if __name__ == "__main__":
    main()
