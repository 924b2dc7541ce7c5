"""Load test of `earmark serve` on loopback, and ONNX vs PyTorch single-clip latency.

A real server process (`earmark serve`, uvicorn) with a `cnn` trained on the demo digits;
real HTTP clients post 1-second clips at concurrency 1, 8 and 32 for `--seconds` each and
record throughput, p50 / p99 latency, the status codes, the server's CPU time per request
and the share of CPU the hypervisor stole meanwhile (``steal_pct``): wrk (C;
`apt-get install wrk`) and httpx (Python, asyncio; it needs a good part of a core itself).
Goal on 2 CPU cores: p99 under 100 ms at concurrency 8; at 32, every request served or
refused with 503, never a timeout or a 500. The clients share the two cores with the server.

Run: .venv/bin/python benchmarks/bench_serve.py [--data out/demo/digits] [--seconds 60]
     [--runtime torch|onnx] [--client wrk|httpx|both] [--threads N]
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
from _common import CpuMeter, machine, write

import earmark
from earmark.classifier import Classifier
from earmark.onnx_export import export_onnx
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
        "client": "httpx",
        "concurrency": concurrency,
        "seconds": wall,
        "requests": sum(statuses.values()),
        "served_per_s": len(latencies) / wall,
        "statuses": statuses,
        "p50_ms": q(0.50) if latencies else None,
        "p99_ms": q(0.99) if latencies else None,
    }


# wrk's Lua hooks: POST one clip as a raw audio/wav body, count the status codes, and print
# the figures as one JSON line at the end (wrk's latencies are in microseconds).
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "audio/wav"
local f = assert(io.open(os.getenv("EARMARK_CLIP"), "rb"))
wrk.body = f:read("*a")
f:close()
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do  -- each thread counted in its own Lua state
    for code, n in pairs(t:get("statuses")) do counts[code] = (counts[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(counts) do parts[#parts + 1] = string.format('"%d": %d', code, n) end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"statuses": {%s}, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout))
end
"""


def load_wrk(url: str, clip: Path, concurrency: int, seconds: float, work: Path) -> dict:
    """The same load with wrk (C, one thread): the client takes far less of the two cores
    than Python's httpx, so the figures are the server's. Every connection posts one clip;
    latency percentiles are over all answers (503s included: at concurrency 32 they are
    most of them)."""
    import os

    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--timeout", "30s"]
    cmd += ["-s", str(script), f"{url}/v1/predict"]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "EARMARK_CLIP": str(clip)},
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    wall = got["duration_us"] / 1e6
    served = got["statuses"].get("200", 0)
    errors = {k: v for k, v in got["errors"].items() if v}
    return {
        "client": "wrk",
        "concurrency": concurrency,
        "seconds": wall,
        "requests": got["requests"],
        "served_per_s": served / wall,
        "statuses": {**got["statuses"], **errors},
        "p50_ms": got["p50_us"] / 1000,
        "p99_ms": got["p99_us"] / 1000,
        "max_ms": got["max_us"] / 1000,
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
    parser.add_argument(
        "--client",
        choices=["wrk", "httpx", "both"],
        default="both",
        help="load generator (wrk: apt-get install wrk)",
    )
    parser.add_argument("--threads", type=int, default=None, help="server's torch threads")
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
    results: dict = {
        "machine": machine(),
        "model": "cnn",
        "runtime": args.runtime,
        "server_torch_threads": args.threads or "default",
    }
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
        "--no-reviews",  # uploads not kept: the prediction path alone
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
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
        clients = ["wrk", "httpx"] if args.client == "both" else [args.client]
        for client in clients:
            for concurrency in (1, 8, 32):
                meter = CpuMeter(server.pid)
                if client == "wrk":
                    got = load_wrk(url, clips[0], concurrency, args.seconds, args.work)
                else:
                    got = asyncio.run(load(url, bodies, concurrency, args.seconds))
                got |= meter.stop()
                if got.get("process_cpu_s") is not None and got["requests"]:
                    got["server_cpu_ms_per_request"] = round(
                        1000 * got["process_cpu_s"] / got["requests"], 2
                    )
                results["load"].append(got)
                print(json.dumps(got), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    write(f"serve-{args.runtime}", results)


if __name__ == "__main__":
    main()
