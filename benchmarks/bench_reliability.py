"""The server under abuse: overload, slow clients, idle sockets, timed-out work, big uploads.

Real `earmark serve` processes (uvicorn, default limits: 8 predictions at once, 16 waiting,
a 10 s head deadline, a 20 s body deadline plus a second per 64 KiB) with a `cnn` trained
on the demo digits, and real clients on loopback:

- overload: wrk posts a 1-second clip at concurrency 8, 32 and 64 for ``--seconds`` each:
  requests served (200) and refused (503), anything else (timeouts, 500s) should be 0;
- slow clients: 24 connections upload a multipart body at 1 byte/s (announcing 48 MB) while
  one client posts clips one after another: the latency of those normal requests, and
  what the slow ones get (408) and when;
- idle sockets: 20 connections that send nothing: how many are still open after 12 s;
- timed-out work: a server with ``--timeout 2 --concurrency 2`` gets four /v1/detect
  requests of 10 minutes of audio at a 10 ms hop: each gets 504; the server's CPU seconds
  and busy threads over the 10 s after the last 504 (before: the work ran on, 169 CPU-s);
- big uploads: 24 uploads of 48 MB at once: the statuses and the server's peak memory.

Goal: overload refused with 503, never a timeout or a 500; a normal request among slow
clients answered as fast as without them; no idle socket left; no CPU after timeouts; memory
not growing with the uploads (they are streamed to a file).

Run: .venv/bin/python benchmarks/bench_reliability.py [--data out/demo/digits]
     [--seconds 15] [--slow-seconds 25]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from _common import CpuMeter, write
from bench_serve import free_port, load_wrk

import earmark
from earmark.classifier import Classifier
from earmark.training import TrainConfig

BOUNDARY = "bench-boundary"


def start_server(run: Path, *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("earmark")), "serve", str(run), "--port", str(port)]
    cmd.append("--no-reviews")  # the prediction path as measured before reviews existed
    proc = subprocess.Popen([*cmd, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    values = sorted(values)
    return {
        "p50_ms": round(1000 * statistics.median(values), 1),
        "p99_ms": round(1000 * values[min(len(values) - 1, int(0.99 * len(values)))], 1),
        "max_ms": round(1000 * values[-1], 1),
    }


def metrics(url: str) -> dict[str, float]:
    """The server's request counts by status, all endpoints together."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("earmark_requests_total{"):
            status = line.split('status="')[1].split('"')[0]
            out[status] = out.get(status, 0) + float(line.split()[-1])
    return out


# -- slow clients --------------------------------------------------------------------------------


def open_upload(port: int, length: int, path: str = "/v1/predict") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + part.encode())
    return sock


def slow_clients(url: str, clip: bytes, seconds: float, n: int = 24) -> dict:
    port = port_of(url)
    slow = [open_upload(port, 48 * 1024 * 1024) for _ in range(n)]
    opened = time.monotonic()
    answers: dict[int, tuple[float, bytes]] = {}
    stop = threading.Event()

    def trickle() -> None:  # one byte a second on each connection
        k = 0
        while not stop.wait(1.0 / n):
            i = k % n
            k += 1
            if i in answers:
                continue
            with contextlib.suppress(OSError):
                slow[i].send(b"\0")

    def watch() -> None:
        for s in slow:
            s.setblocking(False)
        while not stop.is_set() and len(answers) < n:
            for i, s in enumerate(slow):
                if i in answers:
                    continue
                try:
                    data = s.recv(200)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b"(reset)"
                answers[i] = (time.monotonic() - opened, data or b"(closed)")
            time.sleep(0.05)

    threads = [threading.Thread(target=trickle), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    with httpx.Client(timeout=30) as client:
        while time.monotonic() - opened < seconds:
            t0 = time.perf_counter()
            try:
                res = client.post(
                    f"{url}/v1/predict", content=clip, headers={"content-type": "audio/wav"}
                )
                key = str(res.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            if key == "200":
                latencies.append(time.perf_counter() - t0)
            statuses[key] = statuses.get(key, 0) + 1
            time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    for s in slow:
        s.close()
    slow_statuses: dict[str, int] = {}
    for _, data in answers.values():
        key = data.split(b"\r\n")[0].decode("latin-1")[:40]
        slow_statuses[key] = slow_statuses.get(key, 0) + 1
    times = sorted(t for t, _ in answers.values())
    return {
        "slow_connections": n,
        "seconds": seconds,
        "normal_requests": statuses,
        "normal_latency": percentiles(latencies),
        "slow_answers": slow_statuses,
        "slow_still_open": n - len(answers),
        "slow_answered_after_s": [round(times[0], 1), round(times[-1], 1)] if times else None,
    }


def idle_sockets(url: str, n: int = 20, wait: float = 12.0) -> dict:
    socks = [socket.create_connection(("127.0.0.1", port_of(url))) for _ in range(n)]
    time.sleep(wait)
    still_open = 0
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(100)
            still_open += data != b""
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
        s.close()
    return {"idle_sockets": n, "after_s": wait, "still_open": still_open}


# -- timed-out work ------------------------------------------------------------------------------


def thread_cpu(pid: int) -> dict[str, float]:
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[task.name] = (int(stat[11]) + int(stat[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return out


def post_at_once(url: str, body: bytes, n: int) -> list[str]:
    """``n`` clients POST ``body`` (as a WAV) to ``url`` at once; each one's status code, or
    the name of the client error it got."""
    statuses: list[str] = []

    def post() -> None:
        try:
            res = httpx.post(url, content=body, headers={"content-type": "audio/wav"}, timeout=120)
            statuses.append(str(res.status_code))
        except httpx.HTTPError as exc:
            statuses.append(type(exc).__name__)

    workers = [threading.Thread(target=post) for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return statuses


def timed_out_work(run: Path, recording: Path) -> dict:
    proc, url = start_server(run, "--timeout", "2", "--concurrency", "2")
    try:
        data = recording.read_bytes()
        meter = CpuMeter(proc.pid)
        t0 = time.monotonic()
        statuses = post_at_once(f"{url}/v1/detect?hop=0.01", data, 4)
        answered = time.monotonic() - t0
        during = meter.stop()
        meter = CpuMeter(proc.pid)
        busy_max = 0
        before = thread_cpu(proc.pid)
        for _ in range(10):
            time.sleep(1.0)
            now = thread_cpu(proc.pid)
            busy = sum(1 for k, v in now.items() if v - before.get(k, v) > 0.05)
            busy_max = max(busy_max, busy)
            before = now
        after = meter.stop()
        return {
            "requests": 4,
            "statuses": {s: statuses.count(s) for s in set(statuses)},
            "all_answered_after_s": round(answered, 2),
            "server_cpu_s_until_answered": during.get("process_cpu_s"),
            "server_cpu_s_10s_after": after.get("process_cpu_s"),
            "busy_threads_max_after": busy_max,
            "steal_pct": after.get("steal_pct"),
        }
    finally:
        stop_server(proc)


# -- big uploads ---------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def big_uploads(url: str, pid: int, n: int = 24, size: int = 48 * 1024 * 1024) -> dict:
    body = os.urandom(size)  # not audio: spooled whole, then refused (415)
    before = peak_rss_mb(pid)
    t0 = time.monotonic()
    statuses = post_at_once(f"{url}/v1/predict", body, n)
    return {
        "uploads": n,
        "mb_each": size // (1024 * 1024),
        "seconds": round(time.monotonic() - t0, 1),
        "statuses": {s: statuses.count(s) for s in set(statuses)},
        "server_peak_rss_mb_before": round(before, 1),
        "server_peak_rss_mb_after": round(peak_rss_mb(pid), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("out/demo/digits"))
    parser.add_argument("--work", type=Path, default=Path("out/demo/bench-reliability"))
    parser.add_argument("--seconds", type=float, default=15.0, help="each overload level")
    parser.add_argument("--slow-seconds", type=float, default=25.0)
    args = parser.parse_args()
    if not (args.data / "manifest.csv").exists():
        from earmark.data.demo import make_demo_digits

        make_demo_digits(args.data)
    args.work.mkdir(parents=True, exist_ok=True)
    run = args.work / "run-cnn"
    if not (run / "earmark.json").exists():
        cfg = TrainConfig(epochs=10, device="cpu", seed=0)  # load does not need accuracy
        Classifier("cnn", train=cfg).fit(earmark.data.load(args.data)).save(run)
    clip_path = sorted(args.data.glob("*/v01*.wav"))[0]
    clip = clip_path.read_bytes()
    recording = args.work / "ten-minutes.wav"
    if not recording.exists():
        rng = np.random.default_rng(0)
        y = (0.01 * rng.standard_normal(600 * 16_000)).astype(np.float32)
        sf.write(recording, y, 16_000, subtype="PCM_16")
    results: dict = {"model": "cnn"}

    proc, url = start_server(run)
    try:
        results["overload"] = []
        for concurrency in (8, 32, 64):
            meter = CpuMeter(proc.pid)
            got = load_wrk(url, clip_path, concurrency, args.seconds, args.work)
            got |= meter.stop()
            results["overload"].append(got)
            print(json.dumps(got), flush=True)
        results["slow_clients"] = slow_clients(url, clip, args.slow_seconds)
        print(json.dumps(results["slow_clients"]), flush=True)
        results["idle_sockets"] = idle_sockets(url)
        print(json.dumps(results["idle_sockets"]), flush=True)
        results["big_uploads"] = big_uploads(url, proc.pid)
        print(json.dumps(results["big_uploads"]), flush=True)
        results["server_statuses"] = metrics(url)
    finally:
        stop_server(proc)
    results["timed_out_work"] = timed_out_work(run, recording)
    print(json.dumps(results["timed_out_work"]), flush=True)
    write("reliability", results)


if __name__ == "__main__":
    main()
