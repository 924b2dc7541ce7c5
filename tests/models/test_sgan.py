"""The semi-supervised GAN: losses, labelled vs unlabelled data, artifact, samples, CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor
from typer.testing import CliRunner

import earmark
from earmark import data
from earmark.audio import AudioConfig
from earmark.classifier import Classifier
from earmark.cli import app
from earmark.data.manifest import Manifest
from earmark.data.splits import hide_labels
from earmark.errors import ParameterError
from earmark.features import FeatureConfig
from earmark.features.frontend import build_frontend
from earmark.models import registry
from earmark.models.sgan import (
    Discriminator,
    GanSettings,
    Generator,
    SGANTrainer,
    collapse_check,
    discriminator_loss,
    feature_matching_loss,
    load_generator,
    sample,
)
from earmark.training import TrainConfig, WaveBank

SR = 16_000
SMALL = {"width": 8, "gen_width": 8, "noise_dim": 16, "dropout": 0.0}


def _clip(kind: str, rng: np.random.Generator, seconds: float = 0.5) -> np.ndarray:
    """A tone low (250-450 Hz) or high (2-3 kHz) with a little noise, or pink-ish noise."""
    t = np.arange(int(SR * seconds)) / SR
    noise = 0.02 * rng.standard_normal(len(t))
    if kind == "noise":
        return (0.3 * np.cumsum(rng.standard_normal(len(t))) / np.sqrt(len(t)) + noise).astype(
            np.float32
        )
    f = rng.uniform(250, 450) if kind == "low" else rng.uniform(2000, 3000)
    return (0.4 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder per class (low, high, noise; 12 clips each) and a folder of 24 unlabelled
    clips of the same kinds."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(7)
    for kind in ("low", "high", "noise"):
        for i in range(12):
            path = root / "data" / kind / f"{kind}{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(kind, rng), SR)
    for i in range(24):
        path = root / "more" / f"u{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _clip(("low", "high", "noise")[i % 3], rng), SR)
    return root


def _config(**kw) -> TrainConfig:
    base = {"epochs": 6, "batch_size": 16, "device": "cpu", "seed": 0, "augment": "none"}
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tones: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Classifier, Path]:
    out = tmp_path_factory.mktemp("sgan-run")
    clf = Classifier("sgan", params=SMALL, audio=AudioConfig(duration=0.5), train=_config())
    clf.fit(
        data.load(tones / "data"),
        unlabeled=tones / "more",
        checkpoint_dir=out / "checkpoint",
    )
    return clf, out


def test_sgan_is_in_the_zoo_with_its_gan_settings() -> None:
    spec = registry.get("sgan")
    assert spec.family == "neural" and spec.semi_supervised
    gan, own = GanSettings.split(spec.defaults)
    assert gan == GanSettings() and set(own) == {"width", "dropout", "norm", "groups"}
    with pytest.raises(ParameterError, match="real_label"):
        GanSettings(real_label=0.3)
    with pytest.raises(ParameterError, match="norm"):
        Discriminator(3, norm="batch")


def _prepared(tones: Path) -> tuple[SGANTrainer, Discriminator, Tensor, Tensor, Tensor]:
    """An SGAN trainer prepared on the labelled tones plus the unlabelled folder, as ``fit``
    prepares it before the first step; with the discriminator, a labelled batch of log-mel
    features, its one-hot targets, and an unlabelled batch."""
    from earmark.augment import from_spec

    audio = AudioConfig(duration=0.5)
    m = data.load(tones / "data")
    bank, y, _ = WaveBank.from_manifest(m, audio, m.classes)
    more, _, _ = WaveBank.from_manifest(data.unlabelled_folder(tones / "more"), audio, m.classes)
    torch.manual_seed(0)
    d = Discriminator(3, width=8, groups=4, dropout=0.0)
    frontend = build_frontend(FeatureConfig(**registry.get("sgan").default_features), SR)
    gan = GanSettings(noise_dim=16, gen_width=8, rampup_epochs=0)  # the full objective
    trainer = SGANTrainer(_config(batch_size=64, lr=1e-3), gan=gan, unlabelled=more)
    facts = {"n_samples": audio.n_samples, "n_classes": 3, "sample_rate": SR, "weight": None}
    facts["train"] = bank
    trainer._prepare(d, frontend, from_spec("none", sample_rate=SR), torch.device("cpu"), **facts)
    with torch.no_grad():
        feats = frontend(bank.batch(torch.arange(len(bank)), audio.n_samples))
        real = frontend(more.batch(torch.arange(len(more)), audio.n_samples))
    return trainer, d, feats, torch.nn.functional.one_hot(y, 3).float(), real


def _losses(trainer: SGANTrainer, d: Discriminator, feats, targets, real) -> tuple[float, float]:
    """(discriminator loss, generator loss) on fixed batches and fixed noise, without dropout
    and without changing anything."""
    g = trainer.generator
    z = g.noise(len(real), torch.Generator().manual_seed(1))
    d.eval()
    with torch.no_grad():
        loss, parts = discriminator_loss(d, g, feats, targets, real, z, settings=trainer.gan)
        g_loss = feature_matching_loss(d, g, parts["h_real"], z)
    d.train()
    return float(loss), float(g_loss)


def test_entropy_term_and_ramp_up_weigh_the_unsupervised_loss(tones: Path) -> None:
    import dataclasses

    trainer, d, feats, targets, real = _prepared(tones)
    g = trainer.generator
    z = g.noise(len(real), torch.Generator().manual_seed(1))
    d.eval()

    def loss(scale: float = 1.0, **change: float) -> tuple[float, dict]:
        settings = dataclasses.replace(trainer.gan, **change)
        with torch.no_grad():
            out, parts = discriminator_loss(
                d, g, feats, targets, real, z, settings=settings, scale=scale
            )
        return float(out), parts

    plain, parts = loss()
    assert "entropy" not in parts
    with_entropy, parts = loss(entropy_weight=0.5)
    # the class entropy of the unlabelled batch: between 0 and ln(3) for 3 classes
    assert 0 < parts["entropy"] <= np.log(3) + 1e-6
    assert with_entropy == pytest.approx(plain + 0.5 * parts["entropy"], rel=1e-5)
    # scale 0 (the very start of a ramp-up) leaves the supervised loss alone
    assert loss(scale=0.0)[0] == pytest.approx(parts["sup_loss"], rel=1e-6)
    ramp = GanSettings(rampup_epochs=10)
    scales = [ramp.unsupervised_scale(e) for e in range(12)]
    assert scales[0] < 0.05 and scales[9] == scales[11] == 1.0
    assert all(a < b for a, b in itertools.pairwise(scales[:10]))
    assert GanSettings(rampup_epochs=0).unsupervised_scale(0) == 1.0
    with pytest.raises(ParameterError):
        GanSettings(entropy_weight=-1.0)
    with pytest.raises(ParameterError):
        GanSettings(rampup_epochs=-2)


def test_training_steps_on_a_tiny_batch_move_both_losses(tones: Path) -> None:
    trainer, d, feats, targets, real = _prepared(tones)
    # the input statistics come from the training audio: normalized input ~ zero mean
    assert d.mean.abs().sum() > 0 and float(((real - d.mean) / d.std).mean()) == pytest.approx(
        0, abs=0.5
    )
    d_before, g_before = _losses(trainer, d, feats, targets, real)
    gen_before = [p.detach().clone() for p in trainer.generator.parameters()]
    opt = trainer._make_optimizer(d)
    y = targets.argmax(dim=1)
    torch.manual_seed(0)
    for step in range(15):
        gen = torch.Generator().manual_seed(step)
        trainer._epoch_order(y, torch.bincount(y).float(), gen)
        trainer._train_step(d, opt, feats, targets, batch=0, amp=False, generator=gen)
    d_after, g_after = _losses(trainer, d, feats, targets, real)
    assert d_after < d_before * 0.9
    assert g_after != g_before
    assert any(
        not torch.equal(a, b)
        for a, b in zip(gen_before, trainer.generator.parameters(), strict=True)
    )
    assert {"sup_loss", "unsup_loss", "g_loss", "d_real", "d_fake"} <= set(trainer._stats)


def test_with_all_labels_it_is_a_supervised_classifier(tones: Path) -> None:
    m = data.load(tones / "data")
    parts = m.split(test_size=0.25, valid_size=0.0, seed=0)
    clf = Classifier(
        "sgan", params=SMALL, audio=AudioConfig(duration=0.5), train=_config(epochs=12)
    )
    clf.fit(parts.train)
    assert clf.training_["unlabelled_files"] == 0
    assert clf.classes_ == ["high", "low", "noise"]
    assert clf.evaluate(parts.test).metrics["accuracy"] >= 0.9
    hist = clf.history_[-1]
    assert {"sup_loss", "unsup_loss", "g_loss", "gen_diversity"} <= set(hist)


def test_unlabelled_rows_are_never_used_as_labelled(tones: Path, monkeypatch) -> None:
    m = data.load(tones / "data")
    hidden = hide_labels(m, 0.25, seed=3)
    # 25% of 12 per class keep their label; the rest are unlabelled, none relabelled
    assert hidden.counts() == {"high": 3, "low": 3, "noise": 3}
    kept = hidden.labelled
    assert (hidden.labels[kept] == m.labels[kept]).all() and (hidden.labels[~kept] == None).all()  # noqa: E711
    assert hide_labels(m, 0.25, seed=3).frame.equals(hidden.frame)  # seeded
    seen: list[tuple[list[str], list]] = []
    real = WaveBank.from_manifest.__func__

    def spy(cls, manifest, *args, **kw):
        seen.append((manifest.filepaths, list(manifest.labels)))
        return real(cls, manifest, *args, **kw)

    monkeypatch.setattr(WaveBank, "from_manifest", classmethod(spy))
    targets: list = []
    fit = SGANTrainer.fit

    def capture(self, model, frontend, train, y_train, *args, **kw):
        targets.append((len(train), y_train.clone(), len(self.unlabelled)))
        return fit(self, model, frontend, train, y_train, *args, **kw)

    monkeypatch.setattr(SGANTrainer, "fit", capture)
    clf = Classifier("sgan", params=SMALL, audio=AudioConfig(duration=0.5), train=_config(epochs=1))
    clf.fit(m, unlabeled=tones / "more", label_fraction=0.25)
    (train_files, train_labels), (valid_files, _), (pool_files, pool_labels) = seen
    hidden = hide_labels(m, 0.25, seed=clf.seed)  # what fit hid
    kept = hidden.labelled
    assert all(lab is not None for lab in train_labels)
    assert all(lab is None for lab in pool_labels)
    labelled_files = set(np.asarray(hidden.filepaths)[kept])
    assert set(train_files) | set(valid_files) <= labelled_files
    assert not set(pool_files) & labelled_files
    unlabelled_here = set(np.asarray(hidden.filepaths)[~kept])
    more = {str(p.resolve()) for p in (tones / "more").glob("*.wav")}
    assert set(pool_files) == unlabelled_here | more
    n_train, y, n_pool = targets[0]
    assert n_train == len(train_files) and (y >= 0).all() and n_pool == len(pool_files)
    assert clf.training_["label_fraction"] == 0.25
    assert clf.training_["unlabelled_files"] == len(pool_files) == 27 + 24


def test_unlabelled_audio_needs_a_semi_supervised_model(tones: Path) -> None:
    with pytest.raises(ParameterError, match="sgan"):
        Classifier("seed-cnn").fit(data.load(tones / "data"), unlabeled=tones / "more")


def test_a_manifest_with_empty_labels_feeds_the_unlabelled_pool(tones: Path, tmp_path) -> None:
    m = data.load(tones / "data")
    rows = [(p, lab) for p, lab in zip(m.filepaths, m.labels, strict=True)]
    rows += [(str(p), None) for p in sorted((tones / "more").glob("*.wav"))]
    csv = Manifest.from_records([r[0] for r in rows], [r[1] for r in rows]).to_csv(
        tmp_path / "data.csv"
    )
    clf = Classifier("sgan", params=SMALL, audio=AudioConfig(duration=0.5), train=_config(epochs=1))
    clf.fit(data.load(csv))
    assert clf.training_["unlabelled_files"] == 24
    assert clf.training_["files"] + clf.training_["valid_files"] == 36


def test_mode_collapse_is_measured() -> None:
    torch.manual_seed(0)
    d = Discriminator(3, width=8, groups=4)
    g = Generator((1, 40, 26), noise_dim=16, width=8)
    real = torch.randn(32, 1, 40, 26)
    healthy = collapse_check(g, d, real)
    assert healthy["gen_diversity"] > 0.2 and 0 < healthy["gen_class_coverage"] <= 1
    with torch.no_grad():  # every noise vector to the same patch
        g.body[-1].weight.zero_()
    collapsed = collapse_check(g, d, real)
    assert collapsed["gen_diversity"] < 1e-6 and collapsed["gen_class_coverage"] == 1 / 3


def test_training_flags_collapse_and_draws_samples(
    tones: Path, tmp_path, caplog, monkeypatch
) -> None:
    import earmark.models.sgan as sgan_module

    # A threshold no generator can meet: the check must flag every epoch, in the history
    # and the log. (And the unsupervised weight ramps up over the 3 epochs.)
    params = {**SMALL, "collapse_ratio": 1e9, "sample_every": 2, "rampup_epochs": 3}
    scales: set[float] = set()
    loss = sgan_module.discriminator_loss

    def spy(*args, **kwargs):
        scales.add(round(kwargs["scale"], 4))
        return loss(*args, **kwargs)

    monkeypatch.setattr(sgan_module, "discriminator_loss", spy)
    clf = Classifier(
        "sgan", params=params, audio=AudioConfig(duration=0.5), train=_config(epochs=3)
    )
    with caplog.at_level("WARNING", logger="earmark.models.sgan"):
        clf.fit(data.load(tones / "data"), samples_dir=tmp_path / "samples")
    ramp = GanSettings(rampup_epochs=3)
    assert scales == {round(ramp.unsupervised_scale(e), 4) for e in range(3)}
    assert min(scales) < 0.2 and max(scales) == 1.0
    assert all(r["mode_collapse"] == 1.0 for r in clf.history_)
    assert "mode collapse" in caplog.text
    # every second epoch and the last
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_002.png",
        "epoch_003.png",
    ]


def test_artifact_round_trip_keeps_the_generator(trained, tones: Path, tmp_path) -> None:
    clf, run = trained
    assert sorted(p.name for p in (run / "samples").iterdir())  # drawn during training
    path = clf.save(run)
    meta = json.loads((path / "earmark.json").read_text())
    assert {"model.safetensors", "generator.safetensors"} <= set(meta["files"])
    assert meta["generator"]["noise_dim"] == 16 and (path / "samples").is_dir()
    files = sorted(str(p) for p in (tones / "data" / "low").glob("*.wav"))[:4]
    loaded = earmark.load(path)
    np.testing.assert_allclose(loaded.predict_proba(files), clf.predict_proba(files), atol=1e-6)
    assert isinstance(loaded.estimator_.network, Discriminator)
    g = load_generator(path)
    x = sample(path, 5, seed=1)
    assert x.shape == (5, *g.shape) and torch.isfinite(x).all()
    torch.testing.assert_close(x, sample(path, 5, seed=1))
    # the generator's patches are in the discriminator's dB scale
    assert abs(float(x.mean()) - float(loaded.estimator_.network.mean.mean())) < 30
    with pytest.raises(earmark.artifact.ArtifactError, match="sgan"):
        load_generator(_a_seed_cnn(tones, tmp_path))


def _a_seed_cnn(tones: Path, tmp_path: Path) -> Path:
    clf = Classifier("seed-cnn", audio=AudioConfig(duration=0.5), train=_config(epochs=1))
    return clf.fit(data.load(tones / "data")).save(tmp_path / "cnn")


def test_the_discriminator_exports_to_onnx(trained, tones: Path, tmp_path) -> None:
    from earmark.export import export_onnx

    clf, _ = trained
    onnx_path = export_onnx(clf, tmp_path / "sgan.onnx")
    files = sorted(str(p) for p in (tones / "data" / "high").glob("*.wav"))[:4]
    np.testing.assert_allclose(
        earmark.load(onnx_path).predict_proba(files), clf.predict_proba(files), atol=1e-4
    )


def test_cli_trains_with_unlabelled_audio_and_draws_samples(tones: Path, tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", str(tones / "data"), "--model", "sgan", "--unlabeled", str(tones / "more")]
    args += ["--out", str(out), "--epochs", "2", "--batch-size", "16", "--duration", "0.5"]
    args += ["--augment", "none", "--device", "cpu", "-q", "--no-cache"]
    for k, v in SMALL.items():
        args += ["--param", f"{k}={v}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "earmark.json").read_text())
    assert meta["model"] == "sgan" and meta["training"]["unlabelled_files"] == 24
    png = tmp_path / "s.png"
    result = runner.invoke(app, ["sgan-samples", str(out), "--n", "4", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(
        app,
        [
            "train",
            str(tones / "data"),
            "--model",
            "svm",
            "--unlabeled",
            str(tones / "more"),
            "--out",
            str(tmp_path / "svm"),
            "-q",
        ],
    )
    assert result.exit_code != 0 and "semi-supervised" in result.output


def test_detect_and_serve_use_the_discriminator(trained, tones: Path, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from earmark.detection import Windowing, score_file
    from earmark.serve import create_app

    clf, _ = trained
    rng = np.random.default_rng(3)
    y = np.concatenate([_clip(k, rng, 1.0) for k in ("low", "high", "noise", "low")])
    long = tmp_path / "long.wav"
    sf.write(long, y, SR)
    track = score_file(clf, long, Windowing(window=0.5, hop=0.5))
    assert track.scores.shape == (8, 3) and np.allclose(track.scores.sum(axis=1), 1, atol=1e-5)
    with TestClient(create_app(clf, name="sgan")) as client:
        res = client.post(
            "/v1/predict", content=long.read_bytes(), headers={"content-type": "audio/wav"}
        )
    assert res.status_code == 200 and res.json()["labels"][0] in clf.classes_


def test_resume_continues_the_gan_exactly(tones: Path, tmp_path) -> None:
    m = data.load(tones / "data")

    def fit(ckpt: Path, *, resume: bool = False, stop_after: int | None = None) -> Classifier:
        def interrupt(record: dict) -> None:
            if record["epoch"] == stop_after:
                raise KeyboardInterrupt

        clf = Classifier(
            "sgan", params=SMALL, audio=AudioConfig(duration=0.5), train=_config(epochs=3)
        )
        return clf.fit(
            m, unlabeled=tones / "more", checkpoint_dir=ckpt, resume=resume, on_epoch=interrupt
        )

    straight = fit(tmp_path / "a")
    assert fit(tmp_path / "b", stop_after=2).training_["stopped"] == "interrupted"
    assert (tmp_path / "b" / "generator.safetensors").is_file()
    resumed = fit(tmp_path / "b", resume=True)
    assert [r["g_loss"] for r in resumed.history_] == [r["g_loss"] for r in straight.history_]
    for net in ("estimator_", "generator_"):
        a = getattr(straight, net)
        b = getattr(resumed, net)
        a = a.network if net == "estimator_" else a
        b = b.network if net == "estimator_" else b
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_the_supervised_baseline_has_no_generator(tones: Path, tmp_path) -> None:
    params = {**SMALL, "adversarial": False}
    clf = Classifier(
        "sgan", params=params, audio=AudioConfig(duration=0.5), train=_config(epochs=1)
    )
    clf.fit(data.load(tones / "data"), unlabeled=tones / "more")
    assert clf.generator_ is None and "unsup_loss" not in clf.history_[0]
    meta = json.loads((clf.save(tmp_path / "sup") / "earmark.json").read_text())
    assert "generator.safetensors" not in meta["files"] and "generator" not in meta
