"""Corpus jobs on Dask (earmark.distributed): the same results as one process, a dead worker's
files retried, resumed runs, a real `dask scheduler` with two `dask worker` processes, and
the one-line errors of a missing dask or a bad choice of engine.

The jobs share one two-worker LocalCluster (starting one costs seconds); the command line's
--workers starts its own once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from distributed import WorkerPlugin
from signals import SR
from typer.testing import CliRunner

import earmark
from earmark import distributed
from earmark.cli import app
from earmark.detection.run import detect
from earmark.detection.tables import read_events
from earmark.errors import EarmarkError

runner = CliRunner()
SETTINGS = {"threshold": 0.5, "hop": 0.5}
WRITTEN = ("events.csv", "events.json", "counts.csv", "scores.parquet", "errors.csv")


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return (0.05 * rng.standard_normal(n)).astype(np.float32)


def _burst(n: int, freq: float) -> np.ndarray:
    t = np.arange(n) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tone detector (logreg on log-mel, 1-s clips), three 6-s recordings with a tone
    burst each, and a file that is not audio."""
    from earmark import data
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier

    root = tmp_path_factory.mktemp("dask-scene")
    rng = np.random.default_rng(0)
    for k in range(10):
        for label in ("tone", "noise"):
            (root / "train" / label).mkdir(parents=True, exist_ok=True)
            y = _noise(rng, SR) + (_burst(SR, rng.uniform(900, 1100)) if label == "tone" else 0)
            sf.write(root / "train" / label / f"{k:02d}.wav", y, SR)
    clf = Classifier("logreg", features="logmel", audio=AudioConfig(duration=1.0))
    clf.fit(data.load(root / "train")).save(root / "run")
    recs = root / "recs"
    (recs / "site").mkdir(parents=True)
    for j, name in enumerate(["a.wav", "b.wav", "site/c.wav"]):
        y = _noise(rng, 6 * SR)
        y[(1 + j) * SR : (2 + j) * SR] += _burst(SR, 1000)
        sf.write(recs / name, y, SR, subtype="PCM_16")
    (recs / "notes.wav").write_text("not audio\n" * 10)
    return root


@pytest.fixture(scope="module")
def engine():
    with distributed.Engine(workers=2) as eng:
        yield eng


def recordings(scene: Path) -> list[str]:
    return sorted(str(p) for p in (scene / "recs").rglob("*.wav"))


def same_run(a: Path, b: Path, *, resumed: int = 0) -> None:
    """Two detection folders hold the same results: the tables byte for byte, the record
    (``b`` having resumed ``resumed`` recordings), the parts' arrays (a .npz zip holds its
    writing time, not compared)."""
    for name in WRITTEN:
        assert (a / name).exists() == (b / name).exists(), name
        if (a / name).exists():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    record_a = json.loads((a / "detection.json").read_text())
    record_b = json.loads((b / "detection.json").read_text())
    assert record_b["resumed"] == resumed
    record_b |= {"resumed": 0, "scored": record_b["scored"] + resumed}
    assert record_a == record_b
    tables = sorted(p.name for p in (a / "tables").iterdir())
    assert tables == sorted(p.name for p in (b / "tables").iterdir()) and tables
    for name in tables:
        assert (a / "tables" / name).read_bytes() == (b / "tables" / name).read_bytes(), name
    parts = sorted(p.name for p in (a / "parts").iterdir())
    assert parts == sorted(p.name for p in (b / "parts").iterdir()) and parts
    for name in parts:
        with np.load(a / "parts" / name) as x, np.load(b / "parts" / name) as y:
            assert sorted(x.files) == sorted(y.files)
            for key in x.files:
                np.testing.assert_array_equal(x[key], y[key])


def in_process(scene: Path, out: Path, files: list[str] | None = None) -> Path:
    detect(earmark.load(scene / "run"), files or recordings(scene), out, settings=SETTINGS)
    return out


@pytest.mark.slow
def test_detect_on_two_local_workers_writes_what_one_process_writes(
    scene: Path, tmp_path: Path
) -> None:
    here = in_process(scene, tmp_path / "here")
    args = ["detect", str(scene / "run"), str(scene / "recs"), "--threshold", "0.5"]
    args += ["--hop", "0.5", "--quiet"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "dask"), "--workers", "2"])
    assert res.exit_code == 3, res.output  # partial: notes.wav is not audio
    assert "notes.wav" in res.output and "Traceback" not in res.output
    same_run(here, tmp_path / "dask")
    errors = pd.read_csv(tmp_path / "dask" / "errors.csv")
    assert errors["file"].tolist() == [str(scene / "recs" / "notes.wav")]
    assert {e.label for e in read_events(here / "events.csv")} >= {"tone"}


@pytest.mark.slow
def test_predict_features_and_embed_on_the_engine_equal_one_process(
    scene: Path, engine: distributed.Engine
) -> None:
    from earmark import data
    from earmark.audio import AudioConfig
    from earmark.features import FeatureConfig, compute_features
    from earmark.features.pretrained import embed_files

    files = recordings(scene)
    model = earmark.load(scene / "run")
    here = model.predict_files(files, top_k=2)
    there = distributed.predict_files(scene / "run", files, top_k=2, engine=engine)
    assert [p.path for p in there] == files
    for a, b in zip(here, there, strict=True):
        assert (a.labels, a.error, a.duration) == (b.labels, b.error, b.duration)
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    assert sum(p.error is not None for p in there) == 1

    manifest = data.load(scene / "train")  # (hand-crafted rows: the same function either way)
    audio, feats = AudioConfig(duration=1.0), FeatureConfig(kind="logmel")
    a = compute_features(manifest, audio, feats, workers=1)
    b = distributed.compute_features(manifest, audio, feats, engine=engine)
    assert a.filepaths == b.filepaths and a.y.tolist() == b.y.tolist()
    np.testing.assert_allclose(a.X, b.X, rtol=1e-6, atol=1e-6)

    short = [files[0], str(scene / "recs" / "notes.wav")]
    a = embed_files(short, "aisfx", window=1.0, device="cpu")
    b = distributed.embed_files(short, "aisfx", window=1.0, device="cpu", engine=engine)
    assert (a.files, a.skipped) == (b.files, b.skipped) and len(a.skipped) == 1
    np.testing.assert_array_equal(a.starts, b.starts)
    np.testing.assert_array_equal(a.vectors, b.vectors)


def test_predict_and_features_commands_on_a_scheduler_print_and_write_the_same(
    scene: Path, engine: distributed.Engine, tmp_path: Path
) -> None:
    address = ["--scheduler", engine.cluster.scheduler_address]
    predict = ["predict", str(scene / "run"), str(scene / "recs"), "--csv", "--top-k", "2"]
    here, there = runner.invoke(app, predict), runner.invoke(app, [*predict, *address])
    assert here.exit_code == there.exit_code == 3, there.output  # notes.wav: partial
    rows = [r.split(",") for r in here.stdout.splitlines()]
    rows_there = [r.split(",") for r in there.stdout.splitlines()]
    assert [r[:3] for r in rows] == [r[:3] for r in rows_there] and len(rows) == 1 + 3 * 2 + 1
    scored = [(a, b) for a, b in zip(rows[1:], rows_there[1:], strict=True) if a[3]]
    np.testing.assert_allclose(
        [float(a[3]) for a, _ in scored], [float(b[3]) for _, b in scored], atol=1e-5
    )

    features = ["features", str(scene / "train"), "--duration", "1", "--quiet"]
    assert runner.invoke(app, [*features, "--out", str(tmp_path / "a.npz")]).exit_code == 0
    res = runner.invoke(app, [*features, "--out", str(tmp_path / "b.npz"), *address])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a["filepaths"].tolist() == b["filepaths"].tolist()
        np.testing.assert_allclose(a["X"], b["X"], rtol=1e-6, atol=1e-6)


def test_the_slurm_and_pbs_example_builds_its_job_script_without_submitting() -> None:
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / "slurm_detect.py"
    spec = importlib.util.spec_from_file_location("slurm_detect", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for pbs, directive in ((False, "#SBATCH"), (True, "#PBS")):
        cluster = example.make_cluster(
            pbs=pbs, cores=4, memory="8GB", queue="normal", dashboard=":0"
        )
        try:
            script = cluster.job_script()
        finally:
            cluster.close()
        assert directive in script and "normal" in script and "earmark-detect" in script
        assert "--nthreads 1" in script and "--nworkers 4" in script
        assert sys.executable in script and "OMP_NUM_THREADS=1" in script


class KillOnce(WorkerPlugin):
    """A worker plugin: the first detect task to start kills its worker process (as the
    kernel's out-of-memory killer would), leaving ``marker`` behind so that it happens once."""

    name = "earmark-test-kill-once"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing" and "detect" in str(key) and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(key))
            os._exit(1)


def test_a_worker_that_dies_loses_only_its_file_which_is_retried(
    scene: Path, engine: distributed.Engine, tmp_path: Path
) -> None:
    here = in_process(scene, tmp_path / "here")
    marker = tmp_path / "killed"
    engine.client.register_plugin(KillOnce(str(marker)))
    try:
        summary = distributed.detect(
            scene / "run", recordings(scene), tmp_path / "dask", settings=SETTINGS, engine=engine
        )
    finally:
        engine.client.unregister_worker_plugin(KillOnce.name)
    assert marker.exists()  # a worker died running a recording...
    assert (summary.scored, summary.failed) == (3, 1)  # ...which another worker scored
    same_run(here, tmp_path / "dask")


def test_resume_submits_only_the_recordings_not_done(
    scene: Path, engine: distributed.Engine, tmp_path: Path
) -> None:
    files = recordings(scene)
    good = [f for f in files if not f.endswith("notes.wav")]
    out = tmp_path / "dask"
    first = distributed.detect(scene / "run", good[:2], out, settings=SETTINGS, engine=engine)
    assert (first.scored, first.resumed) == (2, 0)
    reported: list[str] = []

    def count(path: str, seconds: float) -> None:
        reported.append(path)

    again = distributed.detect(scene / "run", files, out, resume=True, engine=engine, on_file=count)
    assert (again.resumed, again.scored, again.failed) == (2, 1, 1)  # two not submitted
    assert sorted(reported) == sorted(files)  # every file reported once, done or not
    same_run(in_process(scene, tmp_path / "here"), out, resumed=2)


CTRL_C = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
from earmark import distributed
try:
    with distributed.Engine(workers=2) as engine:
        print(sorted(engine.client.scheduler_info()["workers"]) and "ready", flush=True)
        time.sleep(60)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


@pytest.mark.slow
def test_ctrl_c_stops_the_client_and_the_local_workers_say_nothing(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the client and its local workers (one process group): the
    client stops and closes the cluster; the workers ignore it (each printed a
    KeyboardInterrupt traceback). Port 8787 taken (another cluster): no warning about it."""
    src = str(Path(earmark.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # in use already: as wanted
        proc = subprocess.Popen(
            [sys.executable, "-c", CTRL_C],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
            start_new_session=True,  # its own process group, as a terminal's job
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(1.0)
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 130 and out.strip() == "interrupted", (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "already in use" not in err, err


def test_a_task_that_fails_stops_the_job_with_one_line_naming_its_file(
    engine: distributed.Engine,
) -> None:
    with pytest.raises(EarmarkError, match=r"^rec7\.wav: failed on a Dask worker: ValueError"):
        list(engine.map(int, ["1", "rec7.wav"]))
    assert sorted(engine.map(int, ["3", "1"])) == [(0, 3), (1, 1)]


def test_a_worker_refuses_a_model_other_than_the_clients(scene: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(scene / "run", tmp_path / "run")
    ref = distributed.ModelRef.of(copy)
    meta = json.loads((copy / "earmark.json").read_text())
    meta["metrics"] = {"changed": 1.0}
    (copy / "earmark.json").write_text(json.dumps(meta))
    with pytest.raises(EarmarkError, match="is not the model the client loaded"):
        ref.load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(EarmarkError, match="no model there"):
        distributed.model_digest(tmp_path / "empty")


def test_engine_options_are_checked_before_anything_runs(scene: Path, tmp_path: Path) -> None:
    base = ["detect", str(scene / "run"), str(scene / "recs"), "--out", str(tmp_path / "d")]
    for extra, says in (
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
        (["--workers", "2", "--decode-ahead", "2"], "each Dask worker reads its own"),
        (["--workers", "0"], "--workers"),
    ):
        res = runner.invoke(app, [*base, *extra])
        assert res.exit_code == 2 and says in res.output, (extra, res.output)
    assert not (tmp_path / "d").exists()
    with pytest.raises(EarmarkError, match="either workers"):
        distributed.Engine()
    with pytest.raises(EarmarkError, match="give its path"):
        earmark.detect(earmark.load(scene / "run"), scene / "recs", tmp_path / "d", workers=2)


def test_a_scheduler_address_dask_cannot_parse_is_a_usage_error(
    scene: Path, tmp_path: Path
) -> None:
    """An unknown scheme, no port or a bad one: refused before a client is made (a client
    that met one was left half-open, and its finalizer held the exit 20 s with a traceback)."""
    base = ["detect", str(scene / "run"), str(scene / "recs"), "--out", str(tmp_path / "d")]
    for address, says in (
        ("nonsense", "no valid host:port"),
        ("http://x", "no http:// transport"),
        ("tcp://127.0.0.1:abc", "no valid host:port"),
        ("tcp://127.0.0.1:99999", "no valid host:port"),
        ("inproc://x", "no Dask scheduler in this process"),
    ):
        res = runner.invoke(app, [*base, "--scheduler", address])
        assert res.exit_code == 2 and says in res.output, (address, res.output)
        assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    with pytest.raises(EarmarkError, match="no valid host:port"):
        distributed.Engine(scheduler="tcp://").start()
    src = str(Path(earmark.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "earmark", *base, "--scheduler", "http://x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert time.perf_counter() - t0 < 15  # not held up at exit by a half-open client


def test_without_dask_the_error_is_one_line_naming_the_extra(
    scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    for command in (
        ["detect", str(scene / "run"), str(scene / "recs"), "--out", str(tmp_path / "d")],
        ["predict", str(scene / "run"), str(scene / "recs")],
        ["features", str(scene / "train"), "--out", str(tmp_path / "f.npz")],
    ):
        res = runner.invoke(app, [*command, "--workers", "2"])
        assert res.exit_code == 1, res.output
        assert "pip install 'earmark[dask]'" in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_detect_against_a_dask_scheduler_and_two_dask_workers(scene: Path, tmp_path: Path) -> None:
    """The issue's bar: `dask scheduler` + two `dask worker` processes on this machine, and
    `earmark detect --scheduler` gives the events of the run in one process."""
    dask_cli = Path(sys.executable).with_name("dask")
    src = str(Path(earmark.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    common = {
        "env": env,
        "cwd": tmp_path,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.STDOUT,
    }
    scheduler = [str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    worker = [str(dask_cli), "worker", address, "--nthreads", "1", "--host", "127.0.0.1"]
    procs = [subprocess.Popen([*scheduler, "--no-dashboard"], **common)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([*worker, "--no-dashboard"], **common))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        here = in_process(scene, tmp_path / "here")
        args = ["detect", str(scene / "run"), str(scene / "recs"), "--threshold", "0.5"]
        args += ["--hop", "0.5", "--out", str(tmp_path / "dask"), "--scheduler", address, "-q"]
        t0 = time.perf_counter()
        res = runner.invoke(app, args)
        assert res.exit_code == 3, res.output
        assert time.perf_counter() - t0 < 120
        same_run(here, tmp_path / "dask")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
