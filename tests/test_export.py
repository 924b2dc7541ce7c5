"""ONNX export: one graph from waveform to probabilities, run by onnxruntime without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import earmark
from earmark.cli import app
from earmark.errors import EarmarkError, ParameterError
from earmark.features.spectral import MFCC, STFT, LogMel
from earmark.onnx_export import DFTFrontend, export_onnx
from earmark.onnx_model import read_onnx_meta


@pytest.mark.parametrize(
    "frontend",
    [
        LogMel(16_000, n_fft=1024, win_length=640, hop_length=320, n_mels=40),
        LogMel(22_050, n_fft=512, hop_length=128, n_mels=64, top_db=None),
        STFT(n_fft=512, win_length=400, hop_length=160),
        MFCC(16_000, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40),
    ],
    ids=["logmel", "logmel-22k", "stft", "mfcc"],
)
def test_the_convolutional_dft_frontend_matches_the_fft_one(frontend: torch.nn.Module) -> None:
    x = torch.randn(3, 2, 12_345) * 0.2
    want = frontend(x)
    got = DFTFrontend(frontend)(x)
    assert got.shape == want.shape
    scale = 1.0 if not isinstance(frontend, STFT) else float(want.abs().max())
    torch.testing.assert_close(got / scale, want / scale, rtol=1e-3, atol=2e-3)


def test_export_runs_in_onnxruntime_like_torch(detector, demo_digits: Path, tmp_path: Path) -> None:
    path = export_onnx(detector, tmp_path / "onnx" / "digits.onnx")
    meta = read_onnx_meta(path)  # the settings travel inside the file
    assert meta["classes"] == detector.classes_ and meta["family"] == "onnx"
    assert sorted(p.name for p in path.parent.iterdir()) == ["digits.onnx"]
    onnx = earmark.load(path)
    files = sorted(str(p) for p in demo_digits.rglob("v00[0-2].wav"))
    long = np.concatenate([sf.read(f, dtype="float32")[0] for f in files[:6]])
    sf.write(tmp_path / "long.wav", long, 16_000)
    files.append(str(tmp_path / "long.wav"))
    np.testing.assert_allclose(onnx.predict_proba(files), detector.predict_proba(files), atol=1e-4)
    assert onnx.predict(files) == detector.predict(files)
    p = onnx.predict_file(tmp_path / "long.wav")
    assert len(p.window_starts) > 1
    assert len(onnx.evaluate(demo_digits).y_true) == 80


def test_a_server_style_onnx_session_gives_the_same_answers(
    detector, demo_digits: Path, tmp_path: Path
) -> None:
    from earmark.onnx_model import OnnxClassifier

    path = export_onnx(detector, tmp_path / "m.onnx")
    files = [str(p) for p in sorted(demo_digits.rglob("v001.wav"))]
    server = OnnxClassifier.load(path, threads=1, spin=False)  # as `earmark serve` loads it
    options = server.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    np.testing.assert_allclose(
        server.predict_proba(files), OnnxClassifier.load(path).predict_proba(files), atol=1e-6
    )


def test_predicting_with_onnx_never_imports_torch(
    detector, demo_digits: Path, tmp_path: Path
) -> None:
    path = export_onnx(detector, tmp_path / "m.onnx")
    clip = demo_digits / "five" / "v001.wav"
    code = (
        "import sys, earmark\n"
        f"p = earmark.load({str(path)!r}).predict_file({str(clip)!r})\n"
        "print(p.labels[0], 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    label, torch_loaded = out.stdout.split()
    assert label == detector.predict_file(clip).labels[0] and torch_loaded == "False"


def test_export_cli_and_refusals(detector, demo_digits: Path, tmp_path: Path) -> None:
    run = detector.save(tmp_path / "run")
    res = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "e" / "m.onnx")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        app, ["predict", str(tmp_path / "e" / "m.onnx"), str(demo_digits / "two"), "--csv"]
    )
    assert res.exit_code == 0 and res.output.count(",1,") == 8, res.output
    with pytest.raises(ParameterError, match=r"end in \.onnx"):
        export_onnx(detector, tmp_path / "m.bin")
    classical = earmark.Classifier("gnb").fit(demo_digits)
    with pytest.raises(ParameterError, match="networks"):
        export_onnx(classical, tmp_path / "c.onnx")


def test_exports_carry_their_own_settings_and_replace_nothing_else(
    detector, demo_digits: Path, tmp_path: Path
) -> None:
    from earmark.training import TrainConfig

    run = detector.save(tmp_path / "run")
    quick = TrainConfig(epochs=1, batch_size=8, device="cpu", seed=0, augment="none")
    other = earmark.Classifier("seed-cnn", audio=detector.audio, train=quick)
    digits = earmark.data.load(demo_digits)
    other.fit(digits.subset(digits.frame["label"].isin(["one", "two"]).to_numpy()))
    assert other.classes_ != detector.classes_
    # two exports into one folder, one of them into the run directory itself
    a = earmark.export(run, run / "a.onnx")
    b = earmark.export(other, run / "b.onnx")
    assert earmark.load(a).classes_ == detector.classes_
    assert earmark.load(b).classes_ == other.classes_
    assert earmark.load(run).classes_ == detector.classes_  # the run still loads
    clip = demo_digits / "five" / "v001.wav"
    assert earmark.load(a).predict_file(clip).labels == detector.predict_file(clip).labels
    # an existing export is replaced only when asked; anything else never
    with pytest.raises(EarmarkError, match="overwrite"):
        earmark.export(run, b)
    assert earmark.export(run, b, overwrite=True) == b
    assert earmark.load(b).classes_ == detector.classes_
    notes = tmp_path / "notes.onnx"
    notes.write_text("my notes")
    with pytest.raises(EarmarkError, match="not an earmark export"):
        earmark.export(run, notes, overwrite=True)
    assert notes.read_text() == "my notes"


def test_a_foreign_onnx_file_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(EarmarkError, match="not a loadable ONNX model"):
        earmark.load(bad)


# -- an exported file is checked before it is used ------------------------------------------------


@pytest.fixture(scope="module")
def exported(detector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(detector, tmp_path_factory.mktemp("checked") / "m.onnx")


def test_an_export_carries_its_checksum(exported: Path) -> None:
    import hashlib
    import re

    from earmark.onnx_model import CHECKSUM_KEY, checksum_field

    data = exported.read_bytes()
    (digest,) = re.findall(rb"earmark_sha256\x12\x40([0-9a-f]{64})", data)
    blank = data.replace(checksum_field(digest.decode()), checksum_field("0" * 64))
    assert hashlib.sha256(blank).hexdigest() == digest.decode()
    session_meta = earmark.load(exported).session.get_modelmeta().custom_metadata_map
    assert session_meta[CHECKSUM_KEY] == digest.decode()
    assert read_onnx_meta(exported)["export_version"] == 2


def test_a_modified_export_is_refused_in_one_line(
    exported: Path, demo_digits: Path, tmp_path: Path
) -> None:
    data = exported.read_bytes()
    assert data.count(b'"three"') == 1
    changed = tmp_path / "m.onnx"
    changed.write_bytes(data.replace(b'"three"', b'"trois"'))  # still a valid ONNX file
    assert read_onnx_meta(changed)["classes"].count("trois") == 1
    with pytest.raises(EarmarkError, match=r"m\.onnx: checksum mismatch \(modified after export"):
        earmark.load(changed)
    res = CliRunner().invoke(app, ["predict", str(changed), str(demo_digits / "two" / "v000.wav")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.strip() == f"error: {changed}: checksum mismatch (modified after export?)"
    stripped = tmp_path / "stripped.onnx"  # the checksum entry removed: refused too
    import onnx

    proto = onnx.load(str(exported))
    keep = [p for p in proto.metadata_props if p.key != "earmark_sha256"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    onnx.save(proto, str(stripped))
    with pytest.raises(EarmarkError, match="earmark_sha256 is missing"):
        earmark.load(stripped)


def _graph(path: Path, *, out_shape: list, meta: dict | None, name: str = "probabilities"):
    """A foreign graph: ``waveform`` [batch, 1, samples] -> mean over time, ``out_shape``."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", 1, "samples"])
    y = helper.make_tensor_value_info(name, TensorProto.FLOAT, out_shape)
    node = helper.make_node("ReduceMean", ["waveform"], [name], axes=[2], keepdims=0)
    model = helper.make_model(
        helper.make_graph([node], "foreign", [x], [y]),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 8
    if meta is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "earmark", json.dumps(meta)
    onnx.save(model, str(path))
    return path


def test_a_foreign_graph_is_refused_in_one_line(
    exported: Path, demo_digits: Path, tmp_path: Path
) -> None:
    meta = read_onnx_meta(exported)
    meta.pop("export_version")  # as an export from before checksums (accepted without one)
    cases = [
        (_graph(tmp_path / "bare.onnx", out_shape=["batch", 1], meta=None),
         "no earmark settings inside it or beside it"),
        (_graph(tmp_path / "width.onnx", out_shape=["batch", 1], meta=meta),
         "not an earmark graph: probabilities has shape ['batch', 1], expected ['batch', 10]"),
        (_graph(tmp_path / "names.onnx", out_shape=["batch", 1], meta=meta, name="logits"),
         "not an earmark graph: its outputs are ['logits'], expected ['probabilities']"),
        (_graph(tmp_path / "classes.onnx", out_shape=["batch", 1], meta={**meta, "classes": 5}),
         "metadata 'earmark': classes: expected a list, got 5"),
        (_graph(tmp_path / "n_fft.onnx", out_shape=["batch", 1],
                meta={**meta, "features": {**meta["features"], "n_fft": 10**9}}),
         "features.n_fft: must be <= 65536, got 1000000000"),
    ]  # fmt: skip
    clip = str(demo_digits / "two" / "v000.wav")
    for path, words in cases:
        with pytest.raises(EarmarkError) as info:
            earmark.load(path)
        assert words in str(info.value) and "\n" not in str(info.value), str(info.value)
        res = CliRunner().invoke(app, ["predict", str(path), clip])
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        assert len(res.stderr.strip().splitlines()) == 1 and words in res.stderr, res.stderr
    nan = tmp_path / "nan.onnx"  # declared as earmark's, scores NaN: log(mean - 1)
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", 1, "samples"])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])
    consts = [
        numpy_helper.from_array(np.array([1, 10], np.int64), "reps"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["waveform"], ["m"], axes=[2], keepdims=0),
        helper.make_node("Tile", ["m", "reps"], ["t"]),
        helper.make_node("Sub", ["t", "one"], ["s"]),
        helper.make_node("Log", ["s"], ["probabilities"]),
    ]
    graph = helper.make_graph(nodes, "nan", [x], [y], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "earmark", json.dumps(meta)
    onnx.save(model, str(nan))
    with pytest.raises(EarmarkError, match="a silent window gives NaN scores"):
        earmark.load(nan)
