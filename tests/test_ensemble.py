from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import earmark
from earmark import data
from earmark.classifier import Classifier
from earmark.cli import app
from earmark.ensembles import Ensemble
from earmark.errors import EarmarkError, ParameterError
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings, train_run


@pytest.fixture(scope="module")
def runs(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ens-runs")
    split = SplitSettings(test_size=0.25, seed=4)
    out = {}
    for name, clf in (
        ("lr", Classifier("logreg", cache_dir=root / "cache")),
        ("gnb", Classifier("gnb", cache_dir=root / "cache")),
        ("net", Classifier("seed-cnn", train=TrainConfig(epochs=2, batch_size=16, device="cpu"))),
    ):
        out[name] = train_run(demo_digits, clf, root / name, split=split).out
    return out


@pytest.fixture(scope="module")
def test_files(demo_digits: Path) -> list[str]:
    return SplitSettings(test_size=0.25, seed=4).apply(data.load(demo_digits)).test.filepaths


def test_a_model_with_itself_equals_the_model(runs, test_files) -> None:
    single = earmark.load(runs["lr"])
    for method in ("mean", "vote"):
        ens = Ensemble([single, earmark.load(runs["lr"])], method=method)
        assert ens.predict(test_files) == single.predict(test_files)
    ens = Ensemble([single, earmark.load(runs["lr"])])
    np.testing.assert_allclose(ens.predict_proba(test_files), single.predict_proba(test_files))


def test_methods_combine_classical_and_neural_members(runs, test_files, tmp_path: Path) -> None:
    members = [earmark.load(runs[k]) for k in ("lr", "gnb", "net")]
    per = [m.predict_proba(test_files[:5]) for m in members]
    mean = Ensemble(members).predict_proba(test_files[:5])
    np.testing.assert_allclose(mean, np.mean(per, axis=0), rtol=1e-6)
    weighted = Ensemble(members, method="weighted", weights=[2, 1, 1]).predict_proba(test_files[:5])
    np.testing.assert_allclose(weighted, (2 * per[0] + per[1] + per[2]) / 4, rtol=1e-6)
    vote = Ensemble(members, method="vote").predict_proba(test_files[:5])
    assert np.all(vote.max(axis=1) >= 1 / 3)
    with pytest.raises(ParameterError, match="one non-negative weight per member"):
        Ensemble(members, method="weighted", weights=[1, 1])


def test_ensemble_artifact_round_trip_and_evaluate(runs, demo_digits: Path, tmp_path: Path) -> None:
    ens, record = Ensemble.from_runs([runs["lr"], runs["net"]], method="mean")
    out = ens.save(tmp_path / "ens", extra=record)
    back = earmark.load(out)
    assert isinstance(back, Ensemble) and back.method == "mean" and len(back.members) == 2
    files = [str(p) for p in sorted((demo_digits / "one").glob("*.wav"))][:4]
    np.testing.assert_allclose(back.predict_proba(files), ens.predict_proba(files))
    assert json.loads((out / "earmark.json").read_text())["data"]["split"]["seed"] == 4
    res = CliRunner().invoke(app, ["evaluate", str(out), str(demo_digits), "--split", "test"])
    assert res.exit_code == 0, res.output
    assert "test split: 20 files" in res.output


def test_cli_ensemble_and_predict(runs, demo_digits: Path, tmp_path: Path) -> None:
    out = tmp_path / "vote"
    res = CliRunner().invoke(
        app,
        [
            "ensemble",
            str(runs["lr"]),
            str(runs["gnb"]),
            str(runs["net"]),
            "--method",
            "vote",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "3 members (vote)" in res.output
    res = CliRunner().invoke(
        app, ["predict", str(out), str(demo_digits / "two" / "v000.wav"), "--json"]
    )
    assert res.exit_code == 0 and json.loads(res.output.strip())["labels"]


def test_members_must_know_the_same_classes(runs) -> None:
    a = earmark.load(runs["lr"])
    b = earmark.load(runs["gnb"])
    b.classes_ = b.classes_[:-1]
    with pytest.raises(EarmarkError, match="different classes"):
        Ensemble([a, b])
