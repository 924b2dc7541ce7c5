"""`--runtime torch|onnx|int8`: the run's network exported once (and quantized), the same
detections as torch on a generated scene, the run's calibration applied, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import earmark
from earmark.calibration import Calibration, write_calibration
from earmark.cli import app
from earmark.detection import Windowing
from earmark.detection.events import EventRules
from earmark.detection.run import detect
from earmark.errors import ParameterError
from earmark.onnx_model import OnnxClassifier
from earmark.runtimes import load_runtime

WINDOWING = Windowing(window=1.0, hop=0.5)
# the test network is small: at 0.3 it finds ten events in the scene, a test with teeth
RULES = EventRules(threshold=0.3)


@pytest.fixture(scope="module")
def run(detector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return detector.save(tmp_path_factory.mktemp("runtimes") / "run")


@pytest.fixture(autouse=True)
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One export cache for the module (each test would otherwise export again)."""
    folder = tmp_path_factory.getbasetemp() / "runtime-cache"
    monkeypatch.setenv("EARMARK_CACHE", str(folder))
    return folder


def _events(summary) -> list[tuple[str, float, float]]:
    return [(e.label, e.start, e.end) for e in summary.events]


def test_onnx_and_int8_detect_the_events_torch_detects(
    run: Path, recording: Path, tmp_path: Path
) -> None:
    torch_run = detect(
        earmark.load(run), [recording], tmp_path / "torch", windowing=WINDOWING, rules=RULES
    )
    onnx = load_runtime(run, "onnx", threads=1)
    assert isinstance(onnx, OnnxClassifier) and onnx.frames_session is not None
    onnx_run = detect(onnx, [recording], tmp_path / "onnx", windowing=WINDOWING, rules=RULES)
    assert len(torch_run.events) >= 8
    # the same frames through the same network, in float: the very same events
    assert _events(onnx_run) == _events(torch_run)
    np.testing.assert_allclose(
        [e.score for e in onnx_run.events], [e.score for e in torch_run.events], atol=1e-4
    )
    int8 = load_runtime(run, "int8", threads=1, calibration_data=[recording])
    int8_run = detect(int8, [recording], tmp_path / "int8", windowing=WINDOWING, rules=RULES)
    # int8 scores move by about 1e-2: an event's edges may move by a window where its
    # score crosses the threshold, never more; labels and counts stay
    got, want = _events(int8_run), _events(torch_run)
    assert [g[0] for g in got] == [w[0] for w in want]
    hop = WINDOWING.hop
    for (_, start, end), (_, start0, end0) in zip(got, want, strict=True):
        assert abs(start - start0) <= hop + 1e-9 and abs(end - end0) <= hop + 1e-9
    # a resumed folder knows int8 from float: its parts are not reused
    record = json.loads((tmp_path / "int8" / "detection.json").read_text())
    assert (
        record["model"] != json.loads((tmp_path / "onnx" / "detection.json").read_text())["model"]
    )


def test_the_export_happens_once_and_a_damaged_one_is_redone(run: Path, cache: Path) -> None:
    load_runtime(run, "onnx")
    (graph,) = cache.glob("onnx/*/model.onnx")
    (frames,) = cache.glob("onnx/*/frames.onnx")
    stamp = graph.stat().st_mtime_ns, frames.stat().st_mtime_ns
    load_runtime(run, "onnx")
    assert (graph.stat().st_mtime_ns, frames.stat().st_mtime_ns) == stamp
    graph.write_bytes(graph.read_bytes()[:-100])  # a torn or edited file: exported again
    model = load_runtime(run, "onnx")
    assert graph.stat().st_mtime_ns != stamp[0] and model.path == graph
    assert not list(cache.glob("onnx/*/.*"))  # no temporary file left behind


def test_onnx_sessions_take_the_thread_count(run: Path) -> None:
    model = load_runtime(run, "onnx", threads=1, spin=False)
    for session in (model.session, model.frames_session):
        options = session.get_session_options()
        assert options.intra_op_num_threads == 1
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_the_runs_calibration_is_applied_on_onnx(
    detector, demo_digits: Path, tmp_path: Path
) -> None:
    run = detector.save(tmp_path / "calibrated")
    classes = list(detector.classes_)
    cal = Calibration(
        method="temperature",
        multi_label=False,
        classes=classes,
        params={"temperature": [2.5]},
        target_precision=0.8,
        thresholds={c: 0.3 for c in classes},
    )
    write_calibration(run, cal)
    files = [str(p) for p in sorted(demo_digits.rglob("v002.wav"))]
    want = earmark.load(run).predict_proba(files)
    onnx = load_runtime(run, "onnx")
    np.testing.assert_allclose(onnx.predict_proba(files), want, atol=1e-4)
    assert onnx.predictor.thresholds.tolist() == [0.3] * len(classes)
    raw = load_runtime(run, "onnx", calibration=False)
    np.testing.assert_allclose(raw.predict_proba(files), detector.predict_proba(files), atol=1e-4)
    assert not np.allclose(raw.predict_proba(files), want, atol=1e-3)


def test_runtimes_refuse_what_they_cannot_run(run: Path, tmp_path: Path, cache: Path) -> None:
    from earmark.onnx_export import export_onnx

    with pytest.raises(ParameterError, match="runtime must be one of"):
        load_runtime(run, "tensorrt")
    exported = export_onnx(earmark.load(run), tmp_path / "m.onnx")
    assert isinstance(load_runtime(exported, "onnx"), OnnxClassifier)
    with pytest.raises(ParameterError, match="give the run directory"):
        load_runtime(exported, "int8")
    with pytest.raises(ParameterError, match="calibrates on audio"):  # (no earlier export)
        load_runtime(run, "int8", calibration_data=[], cache_dir=tmp_path / "empty")
    # the frontend-less graph is the runtime's, not a model to load
    load_runtime(run, "onnx")  # (exports the frontend-less graph into the cache)
    frames = next(cache.glob("onnx/*/frames.onnx"))
    with pytest.raises(earmark.artifact.ArtifactError, match="without its frontend"):
        earmark.load(frames)


def test_detect_and_predict_cli_take_the_runtime(
    run: Path, recording: Path, demo_digits: Path, tmp_path: Path
) -> None:
    cli = CliRunner()
    base = ["detect", str(run), str(recording), "--quiet", "--hop", "0.5", "--threshold", "0.3"]
    outs = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / runtime
        res = cli.invoke(app, [*base, "--out", str(out), "--runtime", runtime, "--threads", "1"])
        assert res.exit_code == 0, res.output
        outs[runtime] = [
            line.split(",")[1:4] for line in (out / "events.csv").read_text().splitlines()
        ]
    assert outs["onnx"] == outs["torch"]
    clips = [str(p) for p in sorted(demo_digits.rglob("v004.wav"))]
    res = cli.invoke(app, ["predict", str(run), *clips, "--json", "--runtime", "int8"])
    assert res.exit_code == 0, res.output
    got = [p["labels"][0] for p in json.loads(res.stdout)["predictions"]]
    assert got == [p.labels[0] for p in earmark.load(run).predict_files(clips)]
    for bad, hint in (
        (["--runtime", "jax"], "--runtime"),
        (["--runtime", "onnx", "--device", "cuda"], "runs on the CPU"),
    ):
        res = cli.invoke(app, [*base, "--out", str(tmp_path / "x"), *bad])
        assert res.exit_code == 2 and hint in res.output, res.output


def _pooling_net(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A float ONNX graph with the poolings the rewrite takes (2x2 rounding up over odd
    sizes, 3x3 rounding down) and one it leaves (padded), and an input for it."""
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2, ceil_mode=True),
        torch.nn.Conv2d(4, 8, 3, padding=1),
        torch.nn.AvgPool2d(3),
        torch.nn.AvgPool2d(2, padding=1),
    ).eval()
    x = torch.randn(2, 1, 19, 25)
    path = tmp_path / "pools.onnx"
    torch.onnx.export(
        net, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False,
        dynamic_axes={"x": {0: "batch", 3: "frames"}},
    )  # fmt: skip
    return path, x.numpy()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript exporter
def test_poolings_become_the_depthwise_convolutions_they_equal(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from earmark.runtimes import pools_as_convolutions

    path, x = _pooling_net(tmp_path)
    proto = onnx.load(str(path))
    assert pools_as_convolutions(proto) == 2  # the padded pooling stays
    assert [n.op_type for n in proto.graph.node].count("AveragePool") == 1
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(proto, str(rewritten))
    for batch in (x, x[:1, :, :, :20]):  # odd and even widths
        want = ort.InferenceSession(str(path)).run(None, {"x": batch})[0]
        got = ort.InferenceSession(str(rewritten)).run(None, {"x": batch})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_int8_cnn_pools_and_pads_on_8_bit_values(
    demo_digits: Path, recording: Path, tmp_path: Path
) -> None:
    """The demo's ``cnn`` family (average poolings): quantized with its poolings as
    depthwise convolutions and their edge padding on the 8-bit values, scoring the
    scene's windows as the float graph does."""
    import onnx

    from earmark import data
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier
    from earmark.training import TrainConfig

    cfg = TrainConfig(epochs=2, batch_size=16, device="cpu", seed=0, augment="none")
    audio = AudioConfig(duration=1.0)
    clf = Classifier("cnn", audio=audio, train=cfg, params={"widths": [8, 16]})
    run = clf.fit(data.load(demo_digits)).save(tmp_path / "cnn")
    float_model = load_runtime(run, "onnx", lanes=1)
    int8 = load_runtime(run, "int8", calibration_data=[recording], lanes=1)
    (graph,) = int8.path.parent.glob("frames-int8-*.onnx")  # beside its waveform graph
    proto = onnx.load(str(graph))
    ops = [n.op_type for n in proto.graph.node]
    assert "AveragePool" not in ops and ops.count("Pad") == 2
    producers = {o: n.op_type for n in proto.graph.node for o in n.output}
    # 7-bit weights (reduce_range): u8 x s8 products summed in pairs stay within int16 on
    # AVX2 without VNNI, where 8-bit weights saturate and scramble the scores
    weights = [
        onnx.numpy_helper.to_array(t)
        for t in proto.graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    assert {producers[n.input[0]] for n in proto.graph.node if n.op_type == "Pad"} == {
        "QuantizeLinear"  # a convolution's output, still 8-bit (QDQ: fused at load)
    }
    want = float_model.predictor.score_track(recording, WINDOWING).scores
    got = int8.predictor.score_track(recording, WINDOWING).scores
    assert np.abs(got - want).max() < 0.1
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.9


def test_lanes_score_batches_at_once_and_give_the_same_scores(
    run: Path, recording: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import torch

    one = load_runtime(run, "onnx", lanes=1)
    two = load_runtime(run, "onnx", lanes=2)
    assert two.frames_session.get_session_options().intra_op_num_threads == 1
    lanes_seen: set[str] = set()
    run_frames = two.run_frames

    def spy(features: np.ndarray) -> np.ndarray:  # which thread scores, at what torch threads
        lanes_seen.add(threading.current_thread().name.split("_")[0])
        assert torch.get_num_threads() == 1
        return run_frames(features)

    monkeypatch.setattr(two, "run_frames", spy)
    threads = torch.get_num_threads()
    want = one.predictor.score_track(recording, WINDOWING, batch_size=8)
    got = two.predictor.score_track(recording, WINDOWING, batch_size=8)
    assert lanes_seen == {"earmark-lane"} and torch.get_num_threads() == threads
    np.testing.assert_array_equal(got.starts, want.starts)
    np.testing.assert_array_equal(got.scores, want.scores)  # one thread a call: exact
    # a batch of clips split across the lanes: the same scores, in order
    segments = [np.asarray(s) for s in np.split(np.zeros((1, 16000 * 40), np.float32), 40, 1)]
    segments = [s + 0.01 * k for k, s in enumerate(segments)]
    np.testing.assert_array_equal(
        two.predictor.score_windows(segments), one.predictor.score_windows(segments)
    )


def test_lanes_default_to_the_cores_for_scans_and_one_for_a_server(run: Path) -> None:
    from earmark.prefetch import usable_cores

    assert load_runtime(run, "onnx").lanes == usable_cores()
    assert load_runtime(run, "onnx", threads=3).lanes == 3
    served = load_runtime(run, "onnx", threads=2, spin=False)
    assert served.lanes == 1 and served.session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(ParameterError, match="lanes must be"):
        load_runtime(run, "onnx", lanes=0)


def test_a_short_recording_is_scored_on_every_lane(
    run: Path, recording: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recording of one batch (its last) is split across the lanes, not left on one."""
    import threading
    import time

    two = load_runtime(run, "onnx", lanes=2)
    one = load_runtime(run, "onnx", lanes=1)
    busy, most, guard = [0], [0], threading.Lock()
    run_frames = two.run_frames

    def spy(features: np.ndarray) -> np.ndarray:
        with guard:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(0.2)  # long enough for the other lane to start
        try:
            return run_frames(features)
        finally:
            with guard:
                busy[0] -= 1

    monkeypatch.setattr(two, "run_frames", spy)
    got = two.predictor.score_track(recording, WINDOWING)  # 39 windows: one batch of 256
    assert most[0] == 2
    want = one.predictor.score_track(recording, WINDOWING)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.starts, want.starts)


def test_lanes_take_any_whole_number_and_torch_threads_come_back(run: Path) -> None:
    import threading

    import torch

    from earmark.predict import one_torch_thread

    assert load_runtime(run, "onnx", threads=np.int64(2)).lanes == 2

    def fresh() -> int:  # what a thread started now (a lane) runs torch on
        got = []
        t = threading.Thread(target=lambda: got.append(torch.get_num_threads()))
        t.start()
        t.join()
        return got[0]

    before = fresh()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with one_torch_thread():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    errors: list[str] = []

    def b() -> None:
        a_in.wait(5)
        with one_torch_thread():
            b_in.set()
            a_out.wait(5)
            if fresh() != 1:  # A left; B's lanes must still score on one thread
                errors.append(f"a lane started after A left runs on {fresh()} threads")

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and fresh() == before  # A in, B in, A out, B out: restored


def test_a_cache_folder_that_refuses_writes_is_one_line(
    run: Path, cache: Path, demo_digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache the user cannot write into (another user's, read-only) fails with the one
    line that says so, whether the export, the quantization or the removal of a damaged
    file hits it, never a traceback; an intact cache reads without writing."""
    import shutil
    import tempfile

    from earmark.runtimes import _run_digest

    load_runtime(run, "onnx")  # the float exports, in the module's cache
    digest = _run_digest(run)
    mkstemp, unlink = tempfile.mkstemp, Path.unlink

    def under(path: object) -> bool:
        return str(path).startswith(str(tmp_path))

    def no_new_file(*args, **kwargs):  # (root writes anywhere: the rights are simulated)
        if under(kwargs.get("dir")):
            raise PermissionError(13, "Permission denied")
        return mkstemp(*args, **kwargs)

    def no_removal(self: Path, *args, **kwargs) -> None:
        if under(self):
            raise PermissionError(13, "Permission denied", str(self))
        return unlink(self, *args, **kwargs)

    clip = str(demo_digits / "seven" / "v004.wav")
    cli = CliRunner()

    def predict(folder: Path):
        monkeypatch.setenv("EARMARK_CACHE", str(folder))
        with monkeypatch.context() as m:
            m.setattr(tempfile, "mkstemp", no_new_file)
            m.setattr(Path, "unlink", no_removal)
            return cli.invoke(app, ["predict", str(run), clip, "--runtime", "int8", "--json"])

    fresh = predict(tmp_path / "fresh")  # nothing exported yet
    exported = tmp_path / "exported"  # the float graphs there, int8 to be written
    shutil.copytree(
        cache / "onnx" / digest, exported / "onnx" / digest, ignore=shutil.ignore_patterns("*int8*")
    )
    quantize = predict(exported)
    for res in (fresh, quantize):
        assert res.exit_code == 1, res.output
        assert "cannot keep the ONNX export in" in res.output
        assert "EARMARK_CACHE" in res.output and "Traceback" not in res.output
        assert not isinstance(res.exception, OSError)
    # the int8 files made where writes are allowed, then one torn: it cannot be replaced
    monkeypatch.setenv("EARMARK_CACHE", str(exported))
    load_runtime(run, "int8", calibration_data=[clip])
    (model,) = exported.glob("onnx/*/model-int8-*.onnx")
    intact = model.read_bytes()
    assert predict(exported).exit_code == 0  # read, nothing written
    model.write_bytes(intact[: len(intact) // 2])
    torn = predict(exported)
    assert torn.exit_code == 1 and "cannot keep the ONNX export in" in torn.output, torn.output


def test_int8_finds_training_data_recorded_relative_to_where_training_ran(
    detector, demo_digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`earmark train data -o runs/x` records ``data.root`` as ``data``: a scan or a server
    started elsewhere calibrates on that data all the same (found above the run), not on
    the scanned audio (other int8 files, other scores) or, with no audio (serve), not at
    all; with the data really gone, the message names the folder."""
    from earmark.runtimes import calibration_windows

    project = tmp_path / "project"
    project.mkdir()
    (project / "data").symlink_to(demo_digits, target_is_directory=True)
    run = detector.save(project / "runs" / "x", extra={"data": {"root": "data", "layout": "auto"}})
    model = earmark.load(run)
    monkeypatch.chdir(project)  # where training ran
    want = calibration_windows(model, run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    np.testing.assert_array_equal(calibration_windows(model, run), want)
    (project / "data").unlink()
    with pytest.raises(ParameterError, match=r"training data \(data\) is not there"):
        calibration_windows(model, run)


def test_a_run_directory_named_like_an_export_is_a_run(detector, tmp_path: Path) -> None:
    """``-o runs/cnn.onnx`` is a run directory all the same: loaded as one on every
    runtime (it was taken for an exported file: 'no such ONNX file')."""
    run = detector.save(tmp_path / "cnn.onnx")
    assert earmark.load(run).family == "neural"
    assert load_runtime(run, "torch").family == "neural"
    onnx = load_runtime(run, "onnx", threads=1)
    assert isinstance(onnx, OnnxClassifier) and onnx.path.parent != tmp_path


def test_int8_calibrates_on_the_audio_given_when_the_training_audio_is_unreadable(
    detector, demo_digits: Path, tmp_path: Path
) -> None:
    """The training folder is there but its files are empty (or not audio): int8 calibrates
    on the audio given, as when the folder is gone (it failed: 'none of it could be read'
    of a readable recording); with nothing readable at all, the message names a file."""
    from earmark.runtimes import calibration_windows

    data = tmp_path / "data"
    for label in ("seven", "other"):
        (data / label).mkdir(parents=True)
        for k in range(3):
            (data / label / f"c{k}.wav").write_bytes(b"")
    run = detector.save(tmp_path / "run", extra={"data": {"root": str(data), "layout": "auto"}})
    model = earmark.load(run)
    clip = demo_digits / "seven" / "v004.wav"
    np.testing.assert_array_equal(
        calibration_windows(model, run, [clip]), calibration_windows(model, None, [clip])
    )
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(ParameterError, match=r"none of the 7 files tried .* \(.*c0\.wav"):
        calibration_windows(model, run, [bad])


def test_without_training_data_the_first_int8_export_serves_later_scans(
    detector, demo_digits: Path, recording: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the training data gone, int8 calibrates on the audio scanned, once: a later scan
    of other audio reuses that export (the same scores for the same recording whatever else
    is scanned; one export in the cache, not one per call), until it is damaged."""
    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path / "cache"))
    gone = {"data": {"root": str(tmp_path / "gone"), "layout": "auto"}}
    run = detector.save(tmp_path / "run", extra=gone)
    first = load_runtime(run, "int8", calibration_data=[recording], lanes=1)
    clip = demo_digits / "seven" / "v004.wav"
    later = load_runtime(run, "int8", calibration_data=[clip], lanes=1)
    assert later.path == first.path
    (folder,) = (tmp_path / "cache" / "onnx").iterdir()
    assert len(list(folder.glob("model-int8-*.onnx"))) == 1
    assert len(list(folder.glob("frames-int8-*.onnx"))) == 1
    np.testing.assert_array_equal(
        later.predictor.score_track(recording, WINDOWING).scores,
        first.predictor.score_track(recording, WINDOWING).scores,
    )
    first.path.write_bytes(first.path.read_bytes()[:100])  # damaged: made again, from the clip
    again = load_runtime(run, "int8", calibration_data=[clip], lanes=1)
    assert again.path != first.path and not first.path.exists()


def test_temporary_exports_a_killed_process_left_are_removed(run: Path, cache: Path) -> None:
    """A kill -9 during an export leaves its hidden temporary file: the next load removes
    it once it is old (a young one may be another process's export under way)."""
    import os
    import time

    folder = load_runtime(run, "onnx").path.parent  # the run's folder in the cache
    assert folder.parent == cache / "onnx"
    old, young = folder / ".model.abc123.onnx", folder / ".frames.def456.onnx"
    for tmp in (old, young):
        tmp.write_bytes(b"half an export")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    load_runtime(run, "onnx")
    assert not old.exists() and young.exists()
    young.unlink()
