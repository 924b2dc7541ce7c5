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
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
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


@pytest.fixture
def saved_run(detector, tmp_path: Path) -> Path:
    return detector.save(tmp_path / "run")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict]:
    """What `earmark serve` would serve (the server itself is not started), run in
    ``tmp_path`` (reviews are kept in ./reviews.sqlite by default)."""
    import gc

    import earmark.serve

    monkeypatch.chdir(tmp_path)
    calls: list[dict] = []
    monkeypatch.setattr(earmark.serve, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    yield calls
    gc.unfreeze()  # (serve freezes what it loaded: undone for the rest of the tests)


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [
        ("0.0.0.0", None, True),  # (which hosts are loopback: tests/serve/test_server.py)
        ("0.0.0.0", "k3y", False),
        ("127.0.0.1", None, False),
    ],
)
def test_serving_beyond_this_machine_without_a_key_warns(
    saved_run: Path, served: list[dict], host: str, key: str | None, warned: bool
) -> None:
    from typer.testing import CliRunner

    from earmark.cli import app

    args = ["serve", str(saved_run), "--host", host, "--quiet"]
    res = CliRunner().invoke(app, args + (["--api-key", key] if key else []))
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    if warned:
        assert len(lines) == 1 and "without an API key" in lines[0] and host in lines[0]
    else:
        assert lines == []
    assert served[0]["host"] == host
    assert served[0]["app"].state.settings.api_key == key


def test_the_key_can_come_from_the_environment(saved_run: Path, served: list[dict]) -> None:
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from earmark.cli import app

    res = CliRunner().invoke(
        app, ["serve", str(saved_run), "--host", "0.0.0.0"], env={"EARMARK_API_KEY": "from-env"}
    )
    assert res.exit_code == 0, res.output
    assert "without an API key" not in res.stderr and "from-env" not in res.output
    client = TestClient(served[0]["app"])
    assert client.get("/v1/model").status_code == 401
    assert client.get("/v1/model", headers={"X-API-Key": "from-env"}).status_code == 200
