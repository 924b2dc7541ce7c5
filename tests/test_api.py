"""The top-level functions match the commands: ``earmark.detect``, ``cross_validate``,
``ensemble`` and ``export`` give what ``earmark detect`` / ``cv`` / ``ensemble`` /
``export`` give."""

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
