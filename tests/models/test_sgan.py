"""The semi-supervised GAN: losses, labelled vs unlabelled data, artifact, samples, CLI."""

from __future__ import annotations

import copy
import dataclasses
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
    SGANObjective,
    collapse_check,
    discriminator_loss,
    feature_matching_loss,
    load_generator,
    sample,
)
from earmark.training import FitContext, TrainConfig, Trainer, WaveBank, read_meta_checkpoint

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


@pytest.fixture(scope="module")
def banks(tones: Path) -> tuple[WaveBank, Tensor, WaveBank]:
    """The labelled tones (with their class ids) and the unlabelled folder, decoded as
    ``fit`` decodes them."""
    audio = AudioConfig(duration=0.5)
    m = data.load(tones / "data")
    bank, y, _ = WaveBank.from_manifest(m, audio, m.classes)
    more, _, _ = WaveBank.from_manifest(data.unlabelled_folder(tones / "more"), audio, m.classes)
    return bank, y, more


N_SAMPLES = SR // 2


def _frontend() -> torch.nn.Module:
    return build_frontend(FeatureConfig(**registry.get("sgan").default_features), SR)


def _prepared(
    banks, config: TrainConfig | None = None, **gan: float
) -> tuple[SGANObjective, Discriminator, Tensor, Tensor, Tensor]:
    """An SGAN objective prepared on the labelled tones plus the unlabelled folder, as
    ``fit`` prepares it before the first step (the full objective: no ramp-up); with its
    discriminator, the labelled clips as log-mel, their one-hot targets, and the unlabelled
    clips as log-mel."""
    from earmark.augment import from_spec

    bank, y, more = banks
    torch.manual_seed(0)
    d = Discriminator(3, width=8, groups=4, dropout=0.0)
    settings = GanSettings(**{"noise_dim": 16, "gen_width": 8, "rampup_epochs": 0, **gan})
    objective = SGANObjective(settings, unlabelled=more)
    context = FitContext(
        config=config or _config(batch_size=64),
        device=torch.device("cpu"),
        frontend=_frontend(),
        aug=from_spec("none", sample_rate=SR),
        train=bank,
        y_train=y,
        n_classes=3,
        n_samples=N_SAMPLES,
        sample_rate=SR,
        amp=False,
    )
    objective.prepare(d, context)
    with torch.no_grad():
        feats = context.frontend(bank.batch(torch.arange(len(bank)), N_SAMPLES))
        real = context.frontend(more.batch(torch.arange(len(more)), N_SAMPLES))
    return objective, d, feats, torch.nn.functional.one_hot(y, 3).float(), real


def test_the_losses_are_the_formulas(banks) -> None:
    objective, d, feats, targets, real = _prepared(banks)
    g = objective.generator
    z = g.noise(len(real), torch.Generator().manual_seed(1))
    weight = torch.tensor([0.5, 1.0, 2.0])
    settings = dataclasses.replace(
        objective.gan, unsupervised_weight=0.7, real_label=0.9, entropy_weight=0.3
    )
    d.eval()
    with torch.no_grad():
        loss, parts = discriminator_loss(
            d, g, feats, targets, real, z, settings=settings, weight=weight, scale=0.5
        )
        # the same, written out independently: weighted cross-entropy on the labelled clips;
        # D(x) = Z / (Z + 1), Z = sum(exp(logits)); real target 0.9 (one-sided smoothing)
        y = targets.argmax(dim=1)
        ce = -(weight[y] * torch.log_softmax(d(feats), -1)[torch.arange(len(y)), y]).mean()
        z_real, z_fake = torch.exp(d(real)).sum(-1), torch.exp(d(g(z))).sum(-1)
        d_real, d_fake = z_real / (z_real + 1), z_fake / (z_fake + 1)
        gan = -(0.9 * torch.log(d_real) + 0.1 * torch.log(1 - d_real)).mean()
        gan = gan - torch.log(1 - d_fake).mean()
        p = torch.softmax(d(real), -1)
        entropy = -(p * torch.log(p)).sum(-1).mean()
        unsup = gan + 0.3 * entropy
        h_real, h_fake = d.features(real), d.features(g(z))
        fm = ((h_fake.mean(0) - h_real.mean(0)) ** 2).mean()
        g_loss = feature_matching_loss(d, g, parts["h_real"], z)
        alone, alone_parts = discriminator_loss(
            d, g, feats, targets, None, None, settings=settings, weight=weight
        )
    assert float(loss) == pytest.approx(float(ce + 0.5 * 0.7 * unsup), rel=1e-5)
    assert parts["sup_loss"] == pytest.approx(float(ce), rel=1e-5)
    assert parts["unsup_loss"] == pytest.approx(float(unsup), rel=1e-5)
    assert parts["entropy"] == pytest.approx(float(entropy), rel=1e-5)
    assert 0 < parts["entropy"] <= np.log(3) + 1e-6
    assert parts["d_real"] == pytest.approx(float(d_real.mean()), rel=1e-5)
    assert parts["d_fake"] == pytest.approx(float(d_fake.mean()), rel=1e-5)
    torch.testing.assert_close(parts["h_real"], h_real)
    assert float(g_loss) == pytest.approx(float(fm), rel=1e-5) and float(fm) > 0
    # no unlabelled batch: the labelled loss alone
    assert float(alone) == pytest.approx(float(ce), rel=1e-6) and set(alone_parts) == {"sup_loss"}


def test_the_ramp_up_and_the_settings() -> None:
    ramp = GanSettings(rampup_epochs=10)
    scales = [ramp.unsupervised_scale(e) for e in range(12)]
    assert scales[0] < 0.05 and scales[9] == scales[11] == 1.0
    assert all(a < b for a, b in itertools.pairwise(scales[:10]))
    assert GanSettings(rampup_epochs=0).unsupervised_scale(0) == 1.0
    with pytest.raises(ParameterError):
        GanSettings(entropy_weight=-1.0)
    with pytest.raises(ParameterError):
        GanSettings(rampup_epochs=-2)


def _fit(objective: SGANObjective, d: Discriminator, banks, config: TrainConfig) -> list[dict]:
    bank, y, _ = banks
    result = Trainer(config, objective=objective).fit(
        d, _frontend(), bank, y, None, None, n_classes=3, n_samples=N_SAMPLES, sample_rate=SR
    )
    return result.history


def test_in_the_trainer_the_discriminator_learns_real_from_generated(banks) -> None:
    # The generator held still (learning rate 0): 12 steps of the discriminator (6 epochs of
    # 2 batches of 32 over the pool of 60 clips).
    config = _config(epochs=6, batch_size=32, lr=3e-3, schedule="constant")
    objective, d, _, _, real = _prepared(banks, config, g_lr_ratio=0.0)
    g, d0 = objective.generator, copy.deepcopy(d)
    z = g.noise(64, torch.Generator().manual_seed(1))

    def realness(net: Discriminator) -> float:
        """How much more real the unlabelled audio looks than generated patches, in
        log Z (the logit of D)."""
        with torch.no_grad():
            return float(
                torch.logsumexp(net(real), -1).mean() - torch.logsumexp(net(g(z)), -1).mean()
            )

    history = _fit(objective, d, banks, config)
    assert objective.generator is not g  # a fresh one, from the same seed
    for a, b in zip(
        g.state_dict().values(), objective.generator.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # and not moved: lr_scale 0
    assert realness(d0) < 0.05 and realness(d) > 0.2
    assert {"sup_loss", "unsup_loss", "g_loss", "d_real", "d_fake"} <= set(history[-1])


def test_in_the_trainer_the_generator_learns_by_feature_matching(banks) -> None:
    # The discriminator nearly still (learning rate 1e-5; the generator's 300 x that): 8
    # steps of the generator (2 epochs of 4 batches of 16 over the pool of 60 clips).
    config = _config(epochs=2, batch_size=16, lr=1e-5, schedule="constant")
    objective, d, _, _, real = _prepared(banks, config, g_lr_ratio=300.0)
    g0 = copy.deepcopy(objective.generator)
    z = g0.noise(64, torch.Generator().manual_seed(1))

    def distance(g: torch.nn.Module) -> float:
        """Squared distance of the mean features of real audio and generated patches."""
        with torch.no_grad():
            return float(((d.features(g(z)).mean(0) - d.features(real).mean(0)) ** 2).mean())

    history = _fit(objective, d, banks, config)
    assert distance(objective.generator) < 0.5 * distance(g0)
    assert history[-1]["g_loss"] < history[0]["g_loss"]


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
    fit = Trainer.fit

    def capture(self, model, frontend, train, y_train, *args, **kw):
        targets.append((len(train), y_train.clone(), len(self.objective.unlabelled)))
        return fit(self, model, frontend, train, y_train, *args, **kw)

    monkeypatch.setattr(Trainer, "fit", capture)
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
    import earmark.models.sgan.objective as objective_module

    # A threshold no generator can meet: the check must flag every epoch, in the history
    # and the log. (And the unsupervised weight ramps up over the 3 epochs; the labelled
    # loss gets the class weights.)
    params = {**SMALL, "collapse_ratio": 1e9, "sample_every": 2, "rampup_epochs": 3}
    scales: set[float] = set()
    weights: list = []
    loss = objective_module.discriminator_loss

    def spy(*args, **kwargs):
        scales.add(round(kwargs["scale"], 4))
        weights.append(kwargs["weight"])
        return loss(*args, **kwargs)

    monkeypatch.setattr(objective_module, "discriminator_loss", spy)
    clf = Classifier(
        "sgan",
        params=params,
        audio=AudioConfig(duration=0.5),
        train=_config(epochs=3, class_weights=True),
    )
    with caplog.at_level("WARNING", logger="earmark.models.sgan"):
        clf.fit(data.load(tones / "data"), samples_dir=tmp_path / "samples")
    ramp = GanSettings(rampup_epochs=3)
    assert scales == {round(ramp.unsupervised_scale(e), 4) for e in range(3)}
    assert min(scales) < 0.2 and max(scales) == 1.0
    assert all(w is not None and w.shape == (3,) for w in weights)
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


def _generator_edit(change):
    def apply(path: Path) -> None:
        meta = json.loads((path / "earmark.json").read_text())
        change(meta["generator"])
        (path / "earmark.json").write_text(json.dumps(meta))

    return apply


def _garbage_generator(path: Path) -> None:
    """generator.safetensors replaced by bytes that are not safetensors, listed with their
    true checksum and size (as someone crafting an artifact would)."""
    import hashlib

    raw = b"\xff" * (path / "generator.safetensors").stat().st_size  # large enough
    (path / "generator.safetensors").write_bytes(raw)
    meta = json.loads((path / "earmark.json").read_text())
    meta["files"]["generator.safetensors"] = {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
    }
    (path / "earmark.json").write_text(json.dumps(meta))


GENERATOR_EDITS = [
    (
        "wider than its file",
        _generator_edit(lambda g: g.update(width=256)),
        r"generator\.safetensors: the generator earmark\.json describes has \d+ bytes of "
        r"weights; the file holds \d+ \(earmark\.json does not describe it\)",
    ),
    (
        "no larger, but other shapes",
        _generator_edit(lambda g: g.update(noise_dim=4)),
        r"generator\.safetensors: weights do not fit the generator \(.*size mismatch",
    ),
    (
        "not safetensors",
        _garbage_generator,
        r"generator\.safetensors: weights do not fit the generator \(",
    ),
    (
        "beyond the schema",
        _generator_edit(lambda g: g.update(shape=[1, 65536, 65536])),
        r"earmark\.json: generator: a generator of \d+ weights: more than earmark makes",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [e[1:] for e in GENERATOR_EDITS], ids=[e[0] for e in GENERATOR_EDITS]
)
def test_a_generator_that_does_not_fit_its_file_is_refused_unbuilt(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change, message: str
) -> None:
    """The generator section is measured on torch's meta device against generator.safetensors
    before the generator is built for real, as the network is against model.safetensors."""
    from earmark.models.sgan import samples

    clf, _ = trained
    path = clf.save(tmp_path / "m")
    change(path)
    built = []

    class Spy(Generator):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(next(self.parameters()).device.type)

    monkeypatch.setattr(samples, "Generator", Spy)
    with pytest.raises(earmark.artifact.ArtifactError, match=message) as info:
        load_generator(path)
    assert "\n" not in str(info.value)
    if "bytes of weights" in message:
        assert built == ["meta"]  # measured, never allocated


def _a_seed_cnn(tones: Path, tmp_path: Path) -> Path:
    clf = Classifier("seed-cnn", audio=AudioConfig(duration=0.5), train=_config(epochs=1))
    return clf.fit(data.load(tones / "data")).save(tmp_path / "cnn")


def test_the_discriminator_exports_to_onnx(trained, tones: Path, tmp_path) -> None:
    from earmark.onnx_export import export_onnx

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
            "sgan", params=SMALL, audio=AudioConfig(duration=0.5), train=_config(epochs=2)
        )
        return clf.fit(
            m, unlabeled=tones / "more", checkpoint_dir=ckpt, resume=resume, on_epoch=interrupt
        )

    straight = fit(tmp_path / "a")
    assert fit(tmp_path / "b", stop_after=1).training_["stopped"] == "interrupted"
    assert {"objective.safetensors", "optimizer.generator.safetensors"} <= set(
        read_meta_checkpoint(tmp_path / "b")["files"]
    )
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
