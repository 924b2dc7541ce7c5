"""A network behind the same Classifier, artifact, predict and CLI paths as classical models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import earmark
from earmark import data
from earmark.classifier import Classifier
from earmark.cli import app
from earmark.training import TrainConfig


@pytest.fixture(scope="module")
def splits(demo_digits: Path):
    return data.load(demo_digits).split(valid_size=0.0, test_size=0.25)


@pytest.fixture(scope="module")
def trained(splits) -> Classifier:
    cfg = TrainConfig(epochs=3, batch_size=16, device="cpu", seed=0)
    return Classifier("seed-cnn", train=cfg).fit(splits.train)


def test_fit_records_history_and_the_clip_length(trained: Classifier) -> None:
    assert len(trained.history_) == 3 and trained.training_["stopped"] == "completed"
    assert trained.audio.duration == pytest.approx(trained.clip_seconds_)
    assert 0.5 <= trained.clip_seconds_ <= 1.7
    assert trained.training_["valid_files"] > 0 and trained.training_["files"] > 0


def test_artifact_round_trip_is_identical(trained: Classifier, splits, tmp_path: Path) -> None:
    out = trained.save(tmp_path / "net")
    assert {"model.safetensors", "earmark.json", "history.csv", "curves.png"} <= {
        p.name for p in out.iterdir()
    }
    back = earmark.load(out)
    files = splits.test.filepaths[:6]
    np.testing.assert_array_equal(back.predict_proba(files), trained.predict_proba(files))
    assert back.family == "neural" and len(back.history_) == 3
    ev = back.evaluate(splits.test)
    assert len(ev.y_true) == len(splits.test)


def test_any_length_is_windowed(trained: Classifier, demo_digits: Path, tmp_path: Path) -> None:
    long = np.concatenate([sf.read(demo_digits / "four" / f"v00{i}.wav")[0] for i in range(5)])
    sf.write(tmp_path / "long.wav", long, 16_000)
    sf.write(tmp_path / "short.wav", long[:6400], 16_000)  # 0.4 s
    p = trained.predict_file(tmp_path / "long.wav")
    assert len(p.window_starts) > 1 and p.window_scores.shape[1] == 10
    assert trained.predict_file(tmp_path / "short.wav").window_starts == [0.0]


def test_batched_prediction_equals_one_file_at_a_time(
    trained: Classifier, splits, demo_digits: Path, broken_dir: Path, tmp_path: Path
) -> None:
    long = np.concatenate([sf.read(demo_digits / "four" / f"v00{i}.wav")[0] for i in range(4)])
    sf.write(tmp_path / "long.wav", long, 16_000)
    files = [*splits.test.filepaths[:9], str(broken_dir / "cut.wav"), str(tmp_path / "long.wav")]
    batched = trained.predict_files(files, top_k=10, batch_size=4, workers=3)
    assert [p.path for p in batched] == files
    assert batched[9].error is not None and "cut.wav" in batched[9].error
    for path, p in zip(files, batched, strict=True):
        if p.error is None:
            one = trained.predict_file(path, top_k=10)
            assert p.labels == one.labels and p.window_starts == one.window_starts
            np.testing.assert_allclose(p.window_scores, one.window_scores, atol=1e-6)
    assert len(batched[-1].window_starts) > 1


def test_cli_trains_a_network_and_resumes(demo_digits: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cnn"
    res = runner.invoke(
        app,
        [
            "train",
            str(demo_digits),
            "--model",
            "seed-cnn",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--no-cache",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "epoch 2:" in res.output and (out / "checkpoint" / "earmark.json").is_file()
    meta = json.loads((out / "earmark.json").read_text())
    assert meta["family"] == "neural" and meta["training"]["epochs"] == 2
    res = runner.invoke(
        app,
        [
            "train",
            str(demo_digits),
            "--model",
            "seed-cnn",
            "--resume",
            str(out),
            "--no-cache",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "earmark.json").read_text())["training"]["epochs"] == 2
    res = runner.invoke(
        app, ["predict", str(out), str(demo_digits / "nine" / "v001.wav"), "--json"]
    )
    assert res.exit_code == 0 and json.loads(res.stdout)["predictions"][0]["labels"]


def test_recipes(demo_digits: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: seed-cnn\nparams: {width: 4}\ntrain: {epochs: 1, batch_size: 32}\n"
        "audio: {duration: 1.0}\n"
    )
    res = CliRunner().invoke(
        app,
        [
            "train",
            str(demo_digits),
            "--config",
            str(recipe),
            "--out",
            str(tmp_path / "m"),
            "--no-cache",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "m" / "earmark.json").read_text())
    assert meta["params"]["width"] == 4 and meta["audio"]["duration"] == 1.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: cnn\n")
    res = CliRunner().invoke(
        app, ["train", str(demo_digits), "--config", str(bad), "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "modle: unknown recipe key" in res.output


def test_a_second_fit_reads_waveforms_from_the_cache(splits, tmp_path: Path, monkeypatch) -> None:
    from earmark.data import dataset as dataset_module

    cfg = TrainConfig(epochs=1, batch_size=32, device="cpu")
    Classifier("seed-cnn", train=cfg, cache_dir=tmp_path).fit(splits.train)
    calls = []
    real = dataset_module.load_clip
    monkeypatch.setattr(
        dataset_module, "load_clip", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    Classifier("seed-cnn", train=cfg, cache_dir=tmp_path).fit(splits.train)
    assert calls == []
