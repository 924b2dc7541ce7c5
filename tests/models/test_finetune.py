"""``aisfx-finetune``: the pretrained aisfx network fine-tuned end to end through the one
Trainer (frozen backbone first, then a slower backbone), saved, loaded without the
pretrained weights, exported to ONNX with its spectrogram inside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from typer.testing import CliRunner

import earmark
from earmark.audio import AudioConfig
from earmark.classifier import Classifier
from earmark.cli import app
from earmark.errors import EarmarkError, ParameterError
from earmark.features.pretrained import aisfx
from earmark.models.neural import NeuralModel
from earmark.training import (
    OptimizerSpec,
    ParamGroup,
    SupervisedObjective,
    TrainConfig,
    Trainer,
    WaveBank,
    augmented_features,
    read_meta_checkpoint,
)

SR = aisfx.SAMPLE_RATE
MODEL = "aisfx-finetune"
needs_weights = pytest.mark.skipif(
    not aisfx.available(), reason=f"the aisfx weights are not installed ({aisfx.INSTALL})"
)


def clip(label: int, rng: np.random.Generator, seconds: float, sr: int = SR) -> np.ndarray:
    """A tone (label 0, 300-3000 Hz) or white noise (label 1): an easy task."""
    t = np.arange(round(seconds * sr)) / sr
    if label == 0:
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(300, 3000) * t)
        y += 0.01 * rng.standard_normal(t.size)
    else:
        y = 0.1 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def bank(n: int, seed: int) -> tuple[WaveBank, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = [i % 2 for i in range(n)]
    return WaveBank([clip(k, rng, 0.2)[None] for k in labels]), torch.tensor(labels)


def fit(
    epochs: int,
    checkpoint: Path | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    **params,
) -> tuple:
    """Train a fresh (seeded) network on 12 clips of 0.2 s; returns the result, the network,
    its weights before training and after every epoch."""
    torch.manual_seed(0)
    net = NeuralModel(MODEL, {"freeze_epochs": 1, **params}, 2, 1).network
    states = [{k: v.clone() for k, v in net.state_dict().items()}]
    train, y = bank(12, 0)
    valid, vy = bank(4, 1)
    config = TrainConfig(epochs=epochs, batch_size=4, lr=1e-3, device="cpu", keep="last")

    def on_epoch(record: dict) -> None:
        states.append({k: v.clone() for k, v in net.state_dict().items()})
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt

    trainer = Trainer(config, checkpoint_dir=checkpoint, on_epoch=on_epoch)
    result = trainer.fit(
        net,
        nn.Identity(),  # the waveform "frontend": the network computes its spectrogram
        train,
        y,
        valid,
        vy,
        n_classes=2,
        n_samples=round(0.2 * SR),
        sample_rate=SR,
        resume=resume,
    )
    return result, net, states


def changed(a: dict, b: dict, prefix: str) -> list[str]:
    return [k for k in a if k.startswith(prefix) and not torch.equal(a[k], b[k])]


@needs_weights
def test_the_backbone_is_frozen_for_freeze_epochs_then_trains_slower(tmp_path: Path) -> None:
    _, net, (start, first, second) = fit(2, tmp_path / "ck", backbone_lr_scale=0.25)
    backbone = [k for k in start if k.startswith("backbone.")]
    assert any(k.endswith("running_mean") for k in backbone)  # batch-norm statistics too
    assert changed(start, first, "backbone.") == []  # epoch 1: bit-identical
    assert changed(start, first, "head.")  # while the head learned
    moved = changed(first, second, "backbone.")  # epoch 2: weights and statistics move
    assert any(k.endswith("conv1.weight") for k in moved)
    assert any(k.endswith("running_mean") for k in moved)
    groups = read_meta_checkpoint(tmp_path / "ck")["param_groups"]
    assert len(groups) == 2 and groups[0]["lr"] > 0
    assert groups[1]["lr"] == pytest.approx(0.25 * groups[0]["lr"], rel=1e-12)
    n_head = len(list(net.head.parameters()))
    assert groups[0]["params"] == list(range(n_head))  # the head's group comes first
    spec = SupervisedObjective().optimizers(net)[0]
    assert [(g.name, g.lr_scale) for g in spec.groups] == [("head", 1.0), ("backbone", 0.25)]


@needs_weights
@pytest.mark.parametrize("stop_after", [1, 2], ids=["in-the-frozen-epochs", "after-unfreezing"])
def test_resume_across_the_unfreezing_gives_the_uninterrupted_weights(
    tmp_path: Path, stop_after: int
) -> None:
    straight, _, _ = fit(3, tmp_path / "a")
    broken, _, _ = fit(3, tmp_path / "b", stop_after=stop_after)
    assert broken.stopped == "interrupted" and len(broken.history) == stop_after
    resumed, _, _ = fit(3, tmp_path / "b", resume=True)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    for k, v in straight.best_state.items():
        torch.testing.assert_close(resumed.best_state[k], v, rtol=0, atol=0)


def test_parameter_groups_must_hold_every_parameter_once() -> None:
    class Leaky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def parameter_groups(self) -> list[ParamGroup]:
            return [ParamGroup("a", list(self.a.parameters()))]  # b would never train

    with pytest.raises(ParameterError, match="exactly once"):
        SupervisedObjective().optimizers(Leaky())
    layer = nn.Linear(2, 2)
    with pytest.raises(ParameterError, match="groups do not hold"):
        OptimizerSpec("x", [layer.weight], groups=(ParamGroup("g", [layer.bias]),))


def test_waveform_inputs_get_no_spectrogram_masks() -> None:
    from earmark.augment import from_spec

    aug = from_spec({"spectrogram": [{"name": "SpecAugment", "p": 1.0}]}, sample_rate=SR)
    train, _ = bank(4, 0)
    idx, n = torch.arange(4), train.data.shape[-1]
    gen = torch.Generator().manual_seed(0)
    out = augmented_features(train, idx, n, aug, nn.Identity(), torch.device("cpu"), gen)
    torch.testing.assert_close(out, train.batch(idx, n), rtol=0, atol=0)  # no clip silenced


def test_the_model_takes_44k_waveforms_only() -> None:
    from earmark.settings import train_settings

    assert Classifier(MODEL).audio.sample_rate == SR
    with pytest.warns(UserWarning) as caught:
        clf = Classifier(MODEL, audio=AudioConfig(sample_rate=16_000, duration=0.5))
    assert clf.audio.sample_rate == SR and clf.audio.duration == 0.5
    lines = [str(w.message) for w in caught]
    assert lines == [
        f"{MODEL} takes 44100 Hz audio: decoding at 44100 Hz, not the 16000 Hz asked for"
    ]
    with pytest.raises(ParameterError, match="takes waveform features, not logmel"):
        Classifier(MODEL, features="logmel")
    s = train_settings(None, {"model": MODEL})
    assert s.audio.sample_rate == SR and s.features is None
    assert (s.train.epochs, s.train.batch_size) == (6, 16)  # the model's training defaults
    assert train_settings(None, {"model": "cnn"}).audio.sample_rate == 16_000


def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """The aisfx package as if it were not installed."""
    monkeypatch.setattr(aisfx, "PACKAGE", "earmark_no_such_package")
    monkeypatch.setattr(aisfx, "load_backbone_state", aisfx.load_backbone_state.__wrapped__)


def test_a_missing_aisfx_package_is_one_line_before_any_decoding(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_weights(monkeypatch)
    rng = np.random.default_rng(0)
    for label in ("tone", "noise"):
        (tmp_path / label).mkdir()
        sf.write(tmp_path / label / "a.wav", clip(label == "noise", rng, 0.3), SR)
    decoded = []
    with pytest.raises(EarmarkError) as info:
        Classifier(MODEL).fit(tmp_path, on_file=lambda: decoded.append(1))
    assert aisfx.INSTALL in str(info.value) and "\n" not in str(info.value)
    assert decoded == []
    res = CliRunner().invoke(app, ["models"])  # sizes need no pretrained weights
    assert res.exit_code == 0 and MODEL in res.output, res.output


# -- a trained model: save, load, export, predict, detect -----------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tones and noise at 22.05 kHz (the model resamples to 44.1 kHz): 8 + 8 clips of
    0.3-0.5 s to train on, 4 + 4 to test, and a 3 s recording of both."""
    root = tmp_path_factory.mktemp("tones-noise")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for k, label in enumerate(("tone", "noise")):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                y = clip(k, rng, rng.uniform(0.3, 0.5), 22_050)
                sf.write(root / split / label / f"{i}.wav", y, 22_050)
    long = np.concatenate([clip(i % 2, rng, 0.5, 22_050) for i in range(6)])
    sf.write(root / "long.wav", long, 22_050)
    return root


@pytest.fixture(scope="module")
def tuned(data: Path) -> Classifier:
    cfg = TrainConfig(epochs=3, batch_size=4, lr=1e-3, device="cpu", seed=0)
    return Classifier(MODEL, params={"freeze_epochs": 1}, train=cfg).fit(data / "train")


@needs_weights
def test_fine_tuning_learns_an_easy_task(tuned: Classifier, data: Path) -> None:
    assert tuned.audio.sample_rate == SR and tuned.features.kind == "waveform"
    assert tuned.evaluate(data / "test").metrics["accuracy"] >= 0.875  # chance: 0.5
    assert [r["epoch"] for r in tuned.history_] == [1, 2, 3]


@needs_weights
def test_a_saved_model_loads_without_the_pretrained_weights(
    tuned: Classifier, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tuned.save(tmp_path / "run")
    meta = json.loads((run / "earmark.json").read_text())
    assert meta["audio"]["sample_rate"] == SR and meta["features"]["kind"] == "waveform"

    pretrained = aisfx.load_backbone_state()

    def refuse() -> None:
        raise AssertionError("loading a saved model read the pretrained checkpoint")

    monkeypatch.setattr(aisfx, "load_backbone_state", refuse)
    loaded = earmark.load(run)
    files = sorted(str(p) for p in (data / "test").rglob("*.wav"))
    np.testing.assert_allclose(loaded.predict_proba(files), tuned.predict_proba(files), atol=1e-6)
    fine_tuned = loaded.estimator_.network.backbone.state_dict()  # not the package's
    key = "conv_block4.conv2.weight"
    assert not torch.equal(fine_tuned[key], pretrained[key])


@needs_weights
def test_onnx_export_predict_and_detect(tuned: Classifier, data: Path, tmp_path: Path) -> None:
    from earmark.onnx_export import export_onnx

    run = tuned.save(tmp_path / "run")
    path = export_onnx(earmark.load(run), tmp_path / "tuned.onnx")
    onnx = earmark.load(path)
    files = [*sorted(str(p) for p in (data / "test").rglob("*.wav")), str(data / "long.wav")]
    np.testing.assert_allclose(onnx.predict_proba(files), tuned.predict_proba(files), atol=1e-4)
    assert len(onnx.predict_file(data / "long.wav").window_starts) > 1
    runner = CliRunner()
    for model in (run, path):
        res = runner.invoke(app, ["predict", str(model), str(data / "long.wav"), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["predictions"][0]["labels"]
        out = tmp_path / f"detect-{model.name}"
        res = runner.invoke(app, ["detect", str(model), str(data / "long.wav"), "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert (out / "events.csv").is_file()
