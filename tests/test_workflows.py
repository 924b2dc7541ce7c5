from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from earmark import data
from earmark.classifier import Classifier
from earmark.errors import ParameterError
from earmark.workflows import SplitSettings, evaluate_run, parse_params, run_cv, train_run


@pytest.fixture(scope="module")
def trained(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("runs") / "lr"
    clf = Classifier("logreg", cache_dir=tmp_path_factory.mktemp("cache"))
    return train_run(demo_digits, clf, out, split=SplitSettings(test_size=0.25, seed=2))


def test_train_run_writes_the_model_and_its_report(trained) -> None:
    names = {p.name for p in trained.out.iterdir()}
    assert {
        "earmark.json",
        "model.skops",
        "metrics.json",
        "per_class.csv",
        "confusion.png",
        "report.md",
    } <= names
    meta = json.loads((trained.out / "earmark.json").read_text())
    assert meta["data"]["sizes"] == trained.sizes and len(meta["data"]["test_files"]) == 20
    assert meta["metrics"]["test"]["accuracy"] == trained.evaluation.metrics["accuracy"]
    metrics = json.loads((trained.out / "metrics.json").read_text())
    assert metrics["metrics"] == trained.evaluation.metrics and len(metrics["confusion"]) == 10
    per_class = pd.read_csv(trained.out / "per_class.csv")
    assert list(per_class.columns) == ["class", "precision", "recall", "f1", "support"]
    assert "| accuracy |" in (trained.out / "report.md").read_text()


def test_evaluate_run_scores_the_same_held_out_files(trained, demo_digits: Path) -> None:
    result = evaluate_run(trained.out, demo_digits)
    assert result.warnings == []
    assert result.evaluation.metrics == trained.evaluation.metrics
    assert (trained.out / "evaluation-test" / "confusion.png").is_file()
    everything = evaluate_run(trained.out, demo_digits, split="all", out=trained.out / "all")
    assert len(everything.evaluation.y_true) == 80


def test_evaluate_run_warns_when_the_data_changed(
    trained, demo_digits: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "digits"
    shutil.copytree(demo_digits, copy)
    manifest = pd.read_csv(copy / "manifest.csv")
    manifest[manifest["group"] != "v007"].to_csv(copy / "manifest.csv", index=False)
    result = evaluate_run(trained.out, copy, out=tmp_path / "eval")
    assert result.warnings and "changed since training" in result.warnings[0]


def test_cv_is_grouped_and_never_leaks(
    demo_digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watch what the learners are really trained and tested on, file by file."""
    from earmark import workflows
    from earmark.models.classical import ClassicalModel

    clf = Classifier("gnb", cache_dir=tmp_path)
    seen: dict = {"fit": [], "scored": []}
    features_of, cross_validate = clf.features_of, workflows.cross_validate
    fit, predict_proba = ClassicalModel.fit, ClassicalModel.predict_proba

    def spy_features(*args, **kwargs):
        seen["table"] = features_of(*args, **kwargs)  # its files are the rows of X
        return seen["table"]

    def spy_cv(X, *args, **kwargs):
        seen["X"] = np.array(X, copy=True)
        return cross_validate(X, *args, **kwargs)

    def spy_fit(self, X, y):
        seen["fit"].append(np.array(X, copy=True))
        return fit(self, X, y)

    def spy_proba(self, X):
        seen["scored"].append(np.array(X, copy=True))
        return predict_proba(self, X)

    monkeypatch.setattr(clf, "features_of", spy_features)
    monkeypatch.setattr(workflows, "cross_validate", spy_cv)
    monkeypatch.setattr(ClassicalModel, "fit", spy_fit)
    monkeypatch.setattr(ClassicalModel, "predict_proba", spy_proba)
    result, skipped = run_cv(demo_digits, clf, folds=4)
    assert result.kind == "group k-fold" and len(result.folds) == 4 and skipped == []

    # Map every row a learner saw back to its file, and the file to its group (voice).
    row_of = {row.tobytes(): i for i, row in enumerate(seen["X"])}
    assert len(row_of) == len(seen["X"]) == 80  # one distinct vector per file
    m = data.load(demo_digits)
    group_of = dict(zip(m.filepaths, m.groups, strict=True))
    groups = [group_of[p] for p in seen["table"].filepaths]

    def files(X: np.ndarray) -> set[int]:
        rows = [row_of[r.tobytes()] for r in X]  # KeyError: a row that is no file's
        assert len(set(rows)) == len(rows)
        return set(rows)

    assert len(seen["fit"]) == len(seen["scored"]) == 4
    tested: list[int] = []
    for k, (train_X, test_X) in enumerate(zip(seen["fit"], seen["scored"], strict=True)):
        train, test = files(train_X), files(test_X)
        assert train | test == set(range(80)) and not train & test, k
        train_groups, test_groups = {groups[i] for i in train}, {groups[i] for i in test}
        assert train_groups.isdisjoint(test_groups), (k, train_groups & test_groups)
        assert len(test) == result.fold_sizes[k]
        tested += test
    assert sorted(tested) == list(range(80))  # every file tested once
    assert sorted(len({groups[i] for i in files(X)}) for X in seen["scored"]) == [2, 2, 2, 2]


def test_cv_uses_predefined_folds_when_the_data_set_has_them(
    demo_digits: Path, tmp_path: Path
) -> None:
    manifest = pd.read_csv(demo_digits / "manifest.csv")
    manifest["fold"] = manifest["group"].str[-1].astype(int) % 3 + 1
    manifest["filepath"] = [str(demo_digits / p) for p in manifest["filepath"]]
    manifest.to_csv(tmp_path / "folds.csv", index=False)
    result, _ = run_cv(tmp_path / "folds.csv", Classifier("gnb", cache_dir=tmp_path))
    assert result.kind == "predefined folds" and len(result.folds) == 3


def test_parse_params() -> None:
    assert parse_params(["C=10", "kernel=linear", "class_weight=null", "x=1.5"]) == {
        "C": 10,
        "kernel": "linear",
        "class_weight": None,
        "x": 1.5,
    }
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_params(["C"])


@pytest.fixture(scope="module")
def four_digits(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four digits by eight voices (32 files, voices as groups), as a manifest CSV."""
    frame = pd.read_csv(demo_digits / "manifest.csv")
    frame = frame[frame["label"].isin(["one", "two", "three", "four"])].copy()
    frame["filepath"] = [str(demo_digits / p) for p in frame["filepath"]]
    path = tmp_path_factory.mktemp("four") / "manifest.csv"
    frame[["filepath", "label", "group"]].to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_networks_cross_validate_one_training_per_fold_without_leaks(
    four_digits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each fold trains a network through Classifier.fit: what it decodes for training and
    for early stopping, and what it is scored on, never share a voice; the same seed gives
    the same metrics."""
    from earmark.training import TrainConfig, WaveBank

    decoded: list[list[str]] = []
    scored: list[list[str]] = []
    from_manifest, predict_files = WaveBank.from_manifest.__func__, Classifier.predict_files

    def spy_decode(cls, manifest, *args, **kwargs):
        decoded.append(list(manifest.filepaths))
        return from_manifest(cls, manifest, *args, **kwargs)

    def spy_predict(self, inputs, **kwargs):
        scored.append(list(inputs.filepaths))
        return predict_files(self, inputs, **kwargs)

    monkeypatch.setattr(WaveBank, "from_manifest", classmethod(spy_decode))
    monkeypatch.setattr(Classifier, "predict_files", spy_predict)
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", augment="none", seed=3)
    epochs: list[tuple[int, int]] = []
    clf = Classifier("seed-cnn", train=cfg, seed=3)
    result, skipped = run_cv(
        four_digits,
        clf,
        folds=2,
        on_epoch=lambda fold, record: epochs.append((fold, int(record["epoch"]))),
    )
    assert result.kind == "group k-fold" and len(result.folds) == 2 and skipped == []
    assert epochs == [(0, 1), (1, 1)] and clf.estimator_ is None  # fresh classifiers per fold
    m = data.load(four_digits)
    group_of = dict(zip(m.filepaths, m.groups, strict=True))
    assert len(decoded) == 4 and len(scored) == 2  # (train, early stopping) per fold; a test
    tested = []
    for k in range(2):
        train, valid, test = decoded[2 * k], decoded[2 * k + 1], scored[k]
        assert valid and sorted(train + valid + test) == sorted(m.filepaths), k
        voices = [{group_of[p] for p in part} for part in (train, valid, test)]
        assert not (voices[0] & voices[1] or voices[0] & voices[2] or voices[1] & voices[2]), k
        assert len(test) == result.fold_sizes[k]
        tested += test
    assert sorted(tested) == sorted(m.filepaths)
    monkeypatch.undo()
    again, _ = run_cv(four_digits, Classifier("seed-cnn", train=cfg, seed=3), folds=2)
    assert again.folds == result.folds
    assert set(result.mean) >= {"accuracy", "f1_macro"} and len(result.std) == len(result.mean)
