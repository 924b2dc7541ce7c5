from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from earmark.cli import app
from earmark.features import FeatureTable

runner = CliRunner()


def run(*args: str) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder_set(
    tmp_path_factory: pytest.TempPathFactory, demo_digits: Path, broken_dir: Path
) -> Path:
    """Two digit classes as plain class folders, with one unreadable file among them."""
    root = tmp_path_factory.mktemp("folder_set")
    for digit in ("one", "two"):
        shutil.copytree(demo_digits / digit, root / digit)
    shutil.copy(broken_dir / "cut.wav", root / "one" / "broken.wav")
    return root


def test_demo_data_command_writes_the_data_set(tmp_path: Path, espeak: str) -> None:
    res = run("demo-data", tmp_path / "d", "--voices", 2, "--quiet")
    assert res.exit_code == 0, res.output
    assert "wrote 20 clips by 2 voices" in res.output
    assert len(list((tmp_path / "d").rglob("*.wav"))) == 20


def test_inspect_reports_classes_and_carries_on_past_bad_files(folder_set: Path) -> None:
    res = run("inspect", folder_set, "-q")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "layout folder" in out and "17 files" in out and "2 classes" in out
    assert "1 unreadable files" in out and "broken.wav" in out and "truncated" in out
    assert "16000: 16" in out


def test_inspect_json(folder_set: Path) -> None:
    res = run("inspect", folder_set, "--json")
    summary = json.loads(res.output)
    assert summary["classes"] == {"one": 8, "two": 8} and summary["unreadable"] == 1
    assert summary["bad_files"][0]["filepath"].endswith("broken.wav")


FEATURE_SHAPES = [
    ("logmel", (80, 1, 64, 101)),
    ("mfcc", (80, 1, 13, 101)),
    ("handcrafted", (80, 455)),
]


@pytest.mark.parametrize(("kind", "shape"), FEATURE_SHAPES)
def test_features_command_writes_a_table(
    demo_digits: Path, tmp_path: Path, kind: str, shape
) -> None:
    out = tmp_path / "f.npz"
    res = run(
        "features",
        demo_digits,
        "--kind",
        kind,
        "--duration",
        1.0,
        "--n-mfcc",
        13,
        "--out",
        out,
        "-q",
    )
    assert res.exit_code == 0, res.output
    table = FeatureTable.load(out)
    assert table.X.shape == shape and np.isfinite(table.X).all()
    assert table.classes == sorted(table.classes) and len(table.classes) == 10
    assert len(set(table.groups)) == 8 and table.features.kind == kind
    assert (kind == "handcrafted") == bool(table.names)


def test_features_default_length_is_the_longest_clip_and_bad_files_are_skipped(
    folder_set: Path, tmp_path: Path
) -> None:
    res = run("features", folder_set, "--out", tmp_path / "f.npz")
    assert res.exit_code == 0, res.output
    assert "clip length:" in res.output and "1 files skipped" in res.output
    assert FeatureTable.load(tmp_path / "f.npz").X.shape[0] == 16


def test_plot_command(demo_digits: Path, tmp_path: Path) -> None:
    res = run("plot", demo_digits / "three" / "v002.wav", "--out", tmp_path / "p.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_errors_are_one_clear_line_not_a_traceback(tmp_path: Path, broken_dir: Path) -> None:
    res = run("plot", broken_dir / "text.wav", "--out", tmp_path / "x.png")
    assert res.exit_code == 1
    assert "error:" in res.output and "text.wav" in res.output and "not an audio" in res.output
    assert "Traceback" not in res.output
    res = run("inspect", tmp_path / "nowhere")
    assert res.exit_code == 1 and "no such file or folder" in res.output
    res = run("features", tmp_path, "--kind", "spectrum", "--out", tmp_path / "x.npz")
    assert res.exit_code == 2 and "spectrum" in res.output


def test_help_and_version() -> None:
    res = run("--help")
    assert res.exit_code == 0
    for cmd in ("demo-data", "inspect", "features", "plot"):
        assert cmd in res.output
    assert run("--version").output.startswith("earmark ")


# -- train / evaluate / cv / predict ----------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-runs") / "lr"
    cache = tmp_path_factory.mktemp("cli-cache")
    res = run(
        "train",
        demo_digits,
        "--model",
        "logreg",
        "-p",
        "C=0.5",
        "--out",
        out,
        "--cache-dir",
        cache,
        "-q",
    )
    assert res.exit_code == 0, res.output
    assert "trained logreg on 60 files (10 classes), tested on 20 held-out files" in res.output
    assert "accuracy" in res.output
    return out


def test_train_writes_artifact_and_report(run_dir: Path) -> None:
    for name in ("earmark.json", "model.skops", "metrics.json", "confusion.png", "report.md"):
        assert (run_dir / name).is_file()
    assert json.loads((run_dir / "earmark.json").read_text())["params"]["C"] == 0.5


def test_train_on_a_folder_with_a_corrupt_file_says_so(folder_set: Path, tmp_path: Path) -> None:
    res = run("train", folder_set, "--model", "gnb", "--out", tmp_path / "m", "--no-cache")
    assert res.exit_code == 0, res.output
    assert "1 unreadable files skipped" in res.output and "broken.wav" in res.output


def test_evaluate_command(run_dir: Path, demo_digits: Path) -> None:
    res = run("evaluate", run_dir, demo_digits, "--split", "test")
    assert res.exit_code == 0, res.output
    assert "test split: 20 files" in res.output and "per class" in res.output
    assert (run_dir / "evaluation-test" / "confusion.png").is_file()
    assert run("evaluate", run_dir, demo_digits, "--split", "dev").exit_code == 2


def test_cv_command(demo_digits: Path, tmp_path: Path) -> None:
    res = run(
        "cv",
        demo_digits,
        "--model",
        "gnb",
        "--folds",
        4,
        "--out",
        tmp_path / "cv.json",
        "--cache-dir",
        tmp_path,
    )
    assert res.exit_code == 0, res.output
    assert "group k-fold" in res.output and "fold 4/4" in res.output and "accuracy:" in res.output
    assert "±" in res.output
    record = json.loads((tmp_path / "cv.json").read_text())
    assert len(record["folds"]) == 4 and record["kind"] == "group k-fold"


def test_predict_command_formats(run_dir: Path, demo_digits: Path, broken_dir: Path) -> None:
    clip = demo_digits / "five" / "v003.wav"
    res = run("predict", run_dir, clip, "--top-k", 2)
    assert res.exit_code == 0 and "v003.wav" in res.output
    res = run("predict", run_dir, clip, "--json", "--windows")
    line = json.loads(res.output.strip().splitlines()[0])
    assert len(line["labels"]) == 3 and "window_scores" in line
    res = run("predict", run_dir, demo_digits / "five", "--csv", "--top-k", 1)
    rows = [r for r in res.output.strip().splitlines() if r.startswith(str(demo_digits))]
    assert res.output.startswith("path,rank,label,score") and len(rows) == 8
    res = run("predict", run_dir, clip, broken_dir / "text.wav")
    assert res.exit_code == 1 and "unreadable" in res.output and "text.wav" in res.output


def test_models_command() -> None:
    res = run("models")
    assert res.exit_code == 0 and "svm-linear" in res.output and "classical" in res.output
