"""The top-level functions match the commands: ``earmark.detect``, ``cross_validate``,
``tune``, ``ensemble`` and ``export`` give what ``earmark detect`` / ``cv`` / ``tune`` /
``ensemble`` / ``export`` give."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import earmark
from earmark import data
from earmark.cli import app
from earmark.errors import EarmarkError


@pytest.fixture(scope="module")
def runs(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("api-runs")
    m = data.load(demo_digits)
    return [
        earmark.Classifier(name, features="handcrafted").fit(m).save(root / name)
        for name in ("logreg", "gnb")
    ]


def test_cross_validate_matches_the_cv_command(demo_digits: Path, tmp_path: Path) -> None:
    result = earmark.cross_validate(demo_digits, "logreg", features="handcrafted", folds=3)
    assert len(result.folds) == 3 and result.kind == "group k-fold"
    out = tmp_path / "cv.json"
    res = CliRunner().invoke(
        app,
        [
            *("cv", str(demo_digits), "--model", "logreg", "--features", "handcrafted"),
            *("--folds", "3", "--out", str(out), "--no-cache", "-q"),
        ],
    )
    assert res.exit_code == 0, res.output
    written = json.loads(out.read_text())
    assert written["files"] == 80
    assert written["mean"]["accuracy"] == pytest.approx(result.mean["accuracy"])


def test_ensemble_and_detect_match_their_commands(
    runs: list[Path], recording: Path, tmp_path: Path
) -> None:
    ens = earmark.ensemble(runs, out=tmp_path / "ens")
    assert isinstance(earmark.load(tmp_path / "ens"), earmark.Ensemble)
    with pytest.raises(EarmarkError, match="overwrite"):
        earmark.ensemble(runs, out=tmp_path / "ens")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(EarmarkError):
        earmark.ensemble(runs, out=notes, overwrite=True)
    assert notes.read_text() == "mine"
    summary = earmark.detect(ens, [recording], tmp_path / "lib", settings={"hop": 0.5})
    res = CliRunner().invoke(
        app,
        [
            *("detect", str(tmp_path / "ens"), str(recording)),
            *("--out", str(tmp_path / "cli"), "--hop", "0.5", "-q"),
        ],
    )
    assert res.exit_code == 0, res.output
    lib = pd.read_csv(tmp_path / "lib" / "events.csv")
    cli = pd.read_csv(tmp_path / "cli" / "events.csv")
    assert len(lib) == len(summary.events)
    pd.testing.assert_frame_equal(lib, cli)
    np.testing.assert_array_equal(
        earmark.load(tmp_path / "ens").predict_proba([recording]), ens.predict_proba([recording])
    )


@pytest.mark.slow
def test_tune_matches_the_tune_command(demo_digits: Path, tmp_path: Path) -> None:
    space = {"params": {"var_smoothing": {"low": 1e-9, "high": 1e-3, "log": True}}}
    result = earmark.tune(
        demo_digits, tmp_path / "t", model="gnb", space=space, trials=2, folds=2,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert [t.state for t in result.trials] == ["complete", "complete"]
    (tmp_path / "space.yaml").write_text(json.dumps(space))
    res = CliRunner().invoke(
        app,
        [
            "tune", str(demo_digits), "--model", "gnb", "--space", str(tmp_path / "space.yaml"),
            "--trials", "2", "--folds", "2", "--out", str(tmp_path / "cli"),
            "--cache-dir", str(tmp_path / "cache"), "-q",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    columns = ["number", "state", "score", "params.var_smoothing"]
    by_api = pd.read_csv(tmp_path / "t" / "trials.csv")[columns]
    pd.testing.assert_frame_equal(by_api, pd.read_csv(tmp_path / "cli" / "trials.csv")[columns])
    assert (tmp_path / "t" / "best.yaml").read_text().splitlines()[2:] == (
        (tmp_path / "cli" / "best.yaml").read_text().splitlines()[2:]
    )
