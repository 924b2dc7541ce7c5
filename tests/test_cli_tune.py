"""`earmark tune` and `earmark cv` for networks on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from earmark.cli import app

runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _error_lines(res) -> list[str]:
    return [line for line in res.stderr.strip().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def small(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four digits by eight voices (32 files, voices as groups), as a manifest CSV."""
    frame = pd.read_csv(demo_digits / "manifest.csv")
    frame = frame[frame["label"].isin(["one", "two", "three", "four"])].copy()
    frame["filepath"] = [str(demo_digits / p) for p in frame["filepath"]]
    path = tmp_path_factory.mktemp("small") / "manifest.csv"
    frame[["filepath", "label", "group"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def no_audio_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything decodes audio or computes features."""
    from earmark.classifier import Classifier
    from earmark.training import WaveBank

    def boom(*args, **kwargs):
        raise AssertionError("audio was read")

    monkeypatch.setattr(Classifier, "features_of", boom)
    monkeypatch.setattr(WaveBank, "from_manifest", classmethod(boom))


@pytest.mark.slow
def test_tune_writes_a_recipe_that_train_accepts(small: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "search"
    args = ["tune", small, "--model", "logreg", "--folds", 2, "--out", out, "--cache-dir", cache]
    res = run(*args, "--trials", 3)
    assert res.exit_code == 0, res.output
    assert "trial 0 (1/3): f1_macro" in res.stderr and "trial 2 (3/3)" in res.stderr
    assert "best trials of 3: logreg, group k-fold" in res.stdout and "params.C=" in res.stdout
    trials = pd.read_csv(out / "trials.csv")
    best = trials[trials["state"] == "complete"].sort_values("score").iloc[-1]
    res = run("train", small, "--config", out / "best.yaml", "--out", tmp_path / "run", "-q")
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "run" / "earmark.json").read_text())
    assert meta["model"] == "logreg" and meta["params"]["C"] == pytest.approx(best["params.C"])

    # the same command with a larger total continues the study
    res = run(*args, "--trials", 4, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["trials"] == 4 and doc["complete"] + doc["pruned"] == 4
    assert pd.read_csv(out / "trials.csv").iloc[:3].equals(trials)


def test_ctrl_c_keeps_the_study_and_the_same_command_continues(
    small: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earmark import workflows

    real, calls = workflows.run_cv, []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(workflows, "run_cv", interrupted_second)
    args = ["tune", small, "--model", "logreg", "--folds", 2, "--trials", 3, "--out", tmp_path]
    res = run(*args, "--cache-dir", cache)
    assert res.exit_code == 130, res.output
    assert _error_lines(res)[-1].startswith("interrupted: search interrupted in trial 1; 1 of 3")
    assert "run the same command again" in res.stderr
    monkeypatch.undo()
    res = run(*args, "--cache-dir", cache, "-q")
    assert res.exit_code == 0, res.output
    states = pd.read_csv(tmp_path / "trials.csv")["state"].tolist()
    assert states == ["complete", "failed", "complete", "complete"]


def test_a_bad_space_file_is_a_usage_error_before_any_audio_is_read(
    small: Path, tmp_path: Path, no_audio_read
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("params: {C: {low: 5, high: 1}}\n")
    out = tmp_path / "search"
    res = run("tune", small, "--model", "logreg", "--space", space, "--out", out)
    assert res.exit_code == 2, res.output
    assert _error_lines(res) == [
        f"error: {space}: params.C: low must be below high, got 5.0 and 1.0"
    ]
    assert not out.exists()
    res = run("tune", small, "--model", "logreg", "--space", tmp_path / "nope.yaml", "--out", out)
    assert res.exit_code == 1 and len(_error_lines(res)) == 1
    assert "cannot read the search space" in res.stderr
    res = run("tune", small, "--model", "logreg", "--metric", "loss", "--out", out)
    assert res.exit_code == 2 and "--metric" in res.output
    res = run("tune", small, "--out", out)
    assert res.exit_code == 2 and "give the model to tune" in res.stderr


def test_a_folder_holding_another_study_is_refused(
    small: Path, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "search"
    args = ["--folds", 2, "--trials", 1, "--out", out, "--cache-dir", cache, "-q"]
    assert run("tune", small, "--model", "logreg", *args).exit_code == 0
    res = run("tune", small, "--model", "gnb", *args)
    assert res.exit_code == 1, res.output
    lines = _error_lines(res)
    assert len(lines) == 1 and "holds a tune study of logreg" in lines[0]
    assert "model: logreg then, gnb now" in lines[0] and "--overwrite" in lines[0]
    res = run("tune", small, "--model", "gnb", *args, "--overwrite")
    assert res.exit_code == 0, res.output
    assert "model: gnb" in (out / "best.yaml").read_text()


@pytest.mark.slow
def test_cv_trains_a_network_per_fold_from_a_recipe(small: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "net.yaml"
    recipe.write_text(
        "model: seed-cnn\nparams: {width: 4}\n"
        "train: {epochs: 1, batch_size: 16, augment: none, device: cpu}\nseed: 2\n"
    )
    args = ["cv", small, "--config", recipe, "--folds", 2, "--no-cache"]
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "fold 1/2, epoch 1: loss" in res.stderr and "fold 2/2: accuracy" in res.stderr
    assert "seed-cnn: group k-fold" in res.stdout and "accuracy:" in res.stdout
    res = run(*args, "--epochs", 2, "--json")
    doc = json.loads(res.stdout)
    assert doc["model"] == "seed-cnn" and doc["kind"] == "group k-fold"
    assert len(doc["folds"]) == 2 and doc["files"] == 32 and doc["unreadable"] == 0
