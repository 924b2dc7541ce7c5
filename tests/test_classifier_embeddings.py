"""Models on pretrained embeddings: a classical learner on ``aisfx`` features and the
``head`` network, through training, caching, the artifact, predict, detect and ONNX."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from signals import SR, tone
from typer.testing import CliRunner

import earmark
from earmark import artifact
from earmark.artifact import ArtifactError
from earmark.audio import AudioConfig
from earmark.classifier import Classifier
from earmark.cli import app
from earmark.errors import ParameterError
from earmark.features import pretrained
from earmark.features.pretrained.frontend import PretrainedFrontend
from earmark.models import registry
from earmark.settings import SettingsError, train_settings
from earmark.training import TrainConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of three half-second clips (a low and a high tone in noise) at 16 kHz, a
    manifest of two of them to validate on, and a 3-s recording (outside the data set) with
    the low tone in its middle."""
    root = tmp_path_factory.mktemp("emb-data")
    rng = np.random.default_rng(0)
    for label, freq in (("low", 300.0), ("high", 2500.0)):
        (root / "set" / label).mkdir(parents=True)
        for i in range(3):
            y = tone(freq * (1 + 0.07 * i), 0.5, amp=0.3)
            y = y + 0.01 * rng.standard_normal(y.size).astype(np.float32)
            sf.write(root / "set" / label / f"c{i}.wav", y, SR)
    valid = "filepath,label\nset/low/c1.wav,low\nset/high/c1.wav,high\n"
    (root / "valid.csv").write_text(valid)  # two clips to validate on
    rec = 0.005 * rng.standard_normal(3 * SR).astype(np.float32)
    rec[SR : SR + SR // 2] += tone(300.0, 0.5, amp=0.3)
    sf.write(root / "recording.wav", rec, SR)
    return root


@pytest.fixture(scope="module")
def logreg(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    cache = tmp_path_factory.mktemp("emb-cache")
    return Classifier("logreg", features="aisfx", cache_dir=cache).fit(data / "set")


@pytest.fixture(scope="module")
def head(data: Path) -> Classifier:
    cfg = TrainConfig(epochs=8, batch_size=4, device="cpu", augment="none", lr=1e-2)
    return Classifier("head", train=cfg, seed=0).fit(data / "set", valid=data / "valid.csv")


def test_a_classical_model_on_aisfx_trains_saves_loads_and_predicts(
    logreg: Classifier, data: Path, tmp_path: Path
) -> None:
    assert logreg.audio.sample_rate == 44_100 and logreg.audio.duration == 0.5
    assert logreg.features.to_dict() == {"kind": "aisfx"}
    run = logreg.save(tmp_path / "run")
    meta = json.loads((run / "earmark.json").read_text())
    assert meta["frontend"] == pretrained.info("aisfx").record()
    assert meta["n_features"] == 512
    loaded = earmark.load(run)
    files = [data / "set" / "low" / "c0.wav", data / "set" / "high" / "c2.wav"]
    assert loaded.predict(files) == ["low", "high"]
    np.testing.assert_allclose(loaded.predict_proba(files), logreg.predict_proba(files), atol=1e-6)


def test_detect_runs_on_a_model_on_aisfx(logreg: Classifier, data: Path, tmp_path: Path) -> None:
    run = logreg.save(tmp_path / "run")
    out = tmp_path / "det"
    args = ["detect", str(run), str(data / "recording.wav"), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    track = logreg.score_track(data / "recording.wav")
    assert track.scores.shape == (len(track.starts), 2) and len(track.starts) >= 5
    assert (out / "events.csv").is_file()


def test_the_cache_is_hit_the_second_time(logreg: Classifier, data: Path, monkeypatch) -> None:
    def never(self, x):
        raise AssertionError("embedded again: the cache was missed")

    monkeypatch.setattr(PretrainedFrontend, "forward", never)
    again = Classifier("logreg", features="aisfx", cache_dir=logreg.cache_dir).fit(data / "set")
    files = [data / "set" / "low" / "c1.wav"]
    monkeypatch.undo()
    np.testing.assert_allclose(again.predict_proba(files), logreg.predict_proba(files), atol=1e-6)


def test_another_rate_asked_for_is_replaced_saying_so() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = Classifier("logreg", features="aisfx", audio=AudioConfig(sample_rate=16_000))
        Classifier("logreg", features="aisfx")  # nothing asked for: nothing to say
    assert clf.audio.sample_rate == 44_100
    assert [str(w.message) for w in caught] == [
        "the aisfx frontend takes 44100 Hz audio: decoding at 44100 Hz, not the 16000 Hz asked for"
    ]


def _edited(run: Path, tmp_path: Path, edit) -> Path:
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(run, copy)
    meta = json.loads((copy / "earmark.json").read_text())
    edit(meta)
    (copy / "earmark.json").write_text(json.dumps(meta))
    return copy


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("frontend"), r"frontend: missing"),
        (lambda m: m["frontend"].update(weights="aisfx 0.2.0"), r"frontend\.weights: trained on"),
        (lambda m: m["frontend"].update(name="birdnet"), r"frontend\.name: must be 'aisfx'"),
        (lambda m: m["audio"].update(sample_rate=16_000), r"audio\.sample_rate: must be the"),
        (lambda m: m["frontend"].update(license=""), r"frontend\.license"),
    ],
)
def test_the_artifact_records_and_checks_its_frontend(
    logreg: Classifier, tmp_path: Path, edit, message: str
) -> None:
    run = _edited(logreg.save(tmp_path / "run"), tmp_path, edit)
    with pytest.raises(ArtifactError, match=message) as err:
        earmark.load(run)
    assert "\n" not in str(err.value)


def test_the_schema_refuses_a_frontend_record_on_other_features(logreg, tmp_path) -> None:
    from earmark.artifact_schema import SchemaError, validate_meta

    meta = json.loads((logreg.save(tmp_path / "run") / "earmark.json").read_text())
    meta["features"] = {"kind": "logmel"}
    with pytest.raises(SchemaError, match="frontend: a logmel model has no pretrained frontend"):
        validate_meta(meta, newest=artifact.SCHEMA_VERSION)


def test_the_head_embeds_each_clip_once(data: Path, monkeypatch) -> None:
    embedded = []
    forward = PretrainedFrontend.forward

    def counting(self, x):
        embedded.append(len(x))
        return forward(self, x)

    monkeypatch.setattr(PretrainedFrontend, "forward", counting)
    cfg = TrainConfig(epochs=4, batch_size=2, device="cpu", augment="none", patience=0)
    clf = Classifier("head", train=cfg, seed=0).fit(data / "set", valid=data / "valid.csv")
    assert clf.training_["epochs"] == 4 and "embedding_seconds" in clf.training_
    assert sum(embedded) == 6 + 2  # six training clips and two validation clips, once each
    assert registry.get("head").train_defaults == {"augment": "none"}  # the head's default


def test_the_head_on_waveform_augmentation_embeds_every_batch(data: Path, monkeypatch) -> None:
    """With waveform augmentation the vectors change every epoch; the preset's
    spectrogram masks are left out (they mean nothing on a vector)."""
    embedded = []
    forward = PretrainedFrontend.forward

    def counting(self, x):
        embedded.append(len(x))
        return forward(self, x)

    monkeypatch.setattr(PretrainedFrontend, "forward", counting)
    cfg = TrainConfig(epochs=2, batch_size=6, device="cpu", augment="default", patience=0)
    clf = Classifier("head", train=cfg).fit(data / "set", valid=data / "valid.csv")
    assert "embedding_seconds" not in clf.training_
    assert sum(embedded) == 2 * (6 + 2)  # every epoch: the training batch and validation


@pytest.mark.slow
def test_cached_embeddings_train_as_the_per_batch_path_would(data: Path) -> None:
    """A gain of 0 dB changes nothing but forces the per-batch path: same weights."""
    still = {"waveform": [{"name": "Gain", "min_gain_db": 0.0, "max_gain_db": 0.0, "p": 1.0}]}
    nets = []
    for augment in ("none", still):
        cfg = TrainConfig(epochs=2, batch_size=4, device="cpu", augment=augment, patience=0)
        clf = Classifier("head", train=cfg, seed=3).fit(data / "set", valid=data / "valid.csv")
        nets.append(clf.estimator_.network.state_dict())
        assert ("embedding_seconds" in clf.training_) == (augment == "none")
    for key, value in nets[0].items():
        torch.testing.assert_close(value, nets[1][key], atol=1e-5, rtol=1e-5)


def test_spectrogram_masks_are_refused_on_embeddings(data: Path) -> None:
    spec = {"spectrogram": [{"name": "SpecAugment"}]}
    cfg = TrainConfig(epochs=1, device="cpu", augment=spec)
    with pytest.raises(ParameterError, match="spectrogram masks do not apply to aisfx"):
        Classifier("head", train=cfg).fit(data / "set")


def test_networks_refuse_features_they_cannot_take() -> None:
    with pytest.raises(ParameterError, match="cnn takes spectrograms; aisfx features"):
        Classifier("cnn", features="aisfx")
    with pytest.raises(ParameterError, match="head takes pretrained embeddings"):
        Classifier("head", features="logmel")
    with pytest.raises(SettingsError, match=r"features\.kind: cnn takes spectrograms"):
        train_settings(None, {"model": "cnn", "features": {"kind": "aisfx"}})


def test_settings_take_the_frontends_rate_and_the_heads_training_defaults() -> None:
    s = train_settings(None, {"model": "head"})
    assert s.audio.sample_rate == 44_100 and s.train.augment == "none"
    s = train_settings(None, {"model": "logreg", "features": {"kind": "aisfx"}})
    assert s.audio.sample_rate == 44_100
    s = train_settings(None, {"model": "head", "train": {"augment": "default"}})
    assert s.train.augment == "default"  # what is asked for wins
    s = train_settings(None, {"model": "logreg", "audio": {"sample_rate": 16_000}})
    assert s.audio.sample_rate == 16_000


@pytest.mark.slow
def test_a_head_exports_to_onnx_with_its_frontend(head: Classifier, data, tmp_path) -> None:
    from earmark.onnx_export import export_onnx
    from earmark.onnx_model import read_onnx_meta

    out = export_onnx(head, tmp_path / "head.onnx")
    assert read_onnx_meta(out)["frontend"] == pretrained.info("aisfx").record()
    onnx = earmark.load(out)
    files = [data / "set" / "low" / "c0.wav", data / "set" / "high" / "c1.wav"]
    np.testing.assert_allclose(onnx.predict_proba(files), head.predict_proba(files), atol=1e-4)
    # windows longer than the network's 100 frames: the graph's length is dynamic
    from earmark.detection.windows import Windowing

    windowing = Windowing(window=2.8, hop=2.8)
    ours = onnx.score_track(data / "recording.wav", windowing).scores
    theirs = head.score_track(data / "recording.wav", windowing).scores
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_a_birdnet_model_is_not_exported(tmp_path: Path) -> None:
    from earmark.onnx_export import export_onnx

    with pytest.raises(ParameterError, match="runs on tflite, which an ONNX graph cannot hold"):
        export_onnx(Classifier("head", features="birdnet"), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_the_cli_trains_on_aisfx_and_says_which_rate_it_used(data: Path, tmp_path) -> None:
    out = tmp_path / "run"
    args = ["train", str(data / "set"), "--model", "logreg", "--features", "aisfx"]
    result = CliRunner().invoke(app, [*args, "--sr", "16000", "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "note: the aisfx frontend takes 44100 Hz audio" in result.output
    assert json.loads((out / "earmark.json").read_text())["audio"]["sample_rate"] == 44_100


def test_models_lists_the_frontends(monkeypatch) -> None:
    import earmark.cli

    size = earmark.cli._network_size
    monkeypatch.setattr(
        earmark.cli, "_network_size", lambda name: size(name) if name == "head" else {}
    )
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    rows = {f["name"]: f for f in doc["frontends"]}
    assert rows["aisfx"]["installed"] is True and rows["aisfx"]["license"] == "CC BY 4.0"
    assert rows["aisfx"]["sample_rate"] == 44_100 and rows["aisfx"]["dim"] == 512
    assert rows["birdnet"]["install"] == "pip install 'earmark[birdnet]'"
    head = next(m for m in doc["models"] if m["name"] == "head")
    assert head["features"] == "aisfx" and head["parameters"] > 0
    monkeypatch.setattr(
        earmark.cli, "_network_size", lambda name: {"parameters": 1, "macs_per_s": 1}
    )
    from earmark.features import pretrained

    monkeypatch.setattr(pretrained, "available", lambda name: name == "aisfx")
    table = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert "pretrained frontends" in table.output and "earmark[birdnet]" in table.output


def test_cross_validation_on_aisfx_features(logreg: Classifier, data: Path) -> None:
    from earmark.workflows import run_cv

    clf = Classifier("logreg", features="aisfx", cache_dir=logreg.cache_dir)  # cached vectors
    result, skipped = run_cv(data / "set", clf, folds=3, seed=0)
    assert clf.audio.duration == 0.5 and not skipped
    assert len(result.fold_sizes) == 3 and result.mean["accuracy"] > 0.5
