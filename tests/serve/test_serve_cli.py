"""`earmark serve` runs a real uvicorn server bound to 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_serve_answers_over_http(runtime: str, detector, demo_digits: Path, tmp_path: Path) -> None:
    run = detector.save(tmp_path / "run")
    port = _free_port()
    cmd = [
        str(Path(sys.executable).with_name("earmark")),
        "serve",
        str(run),
        "--port",
        str(port),
        "--runtime",
        runtime,
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        clip = demo_digits / "seven" / "v003.wav"
        with clip.open("rb") as fh:
            res = httpx.post(f"{url}/v1/predict", files={"file": ("c.wav", fh, "audio/wav")})
        assert res.status_code == 200
        assert res.json()["labels"][0] == detector.predict_file(clip).labels[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
