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
    assert res.exit_code == 3, res.output  # partial: a file could not be read
    out = res.output
    assert "layout folder" in out and "17 files (16 readable, 1 unreadable)" in out
    assert "2 classes" in out
    assert "1 unreadable files" in out and "broken.wav" in out and "truncated" in out
    assert "16000: 16" in out


def test_inspect_json(folder_set: Path) -> None:
    res = run("inspect", folder_set, "--json")
    assert res.exit_code == 3
    summary = json.loads(res.stdout)
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


def test_features_command_uses_the_kinds_own_defaults(demo_digits: Path, tmp_path: Path) -> None:
    """Hand-crafted features from the command are those a classical model trains on."""
    from earmark.features import FeatureConfig

    res = run("features", demo_digits, "--kind", "handcrafted", "--out", tmp_path / "h", "-q")
    assert res.exit_code == 0, res.output
    table = FeatureTable.load(tmp_path / "h")
    want = FeatureConfig(kind="handcrafted")
    assert (table.features.n_mels, table.features.n_mfcc) == (want.n_mels, want.n_mfcc)
    assert table.names == list(want.handcrafted(16_000).names)


def test_features_default_length_is_the_longest_clip_and_bad_files_are_skipped(
    folder_set: Path, tmp_path: Path
) -> None:
    res = run("features", folder_set, "--out", tmp_path / "f.npz")
    assert res.exit_code == 3, res.output
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


def test_error_lines_print_names_as_they_are_not_as_markup(tmp_path: Path) -> None:
    """A file or class name with square brackets is shown verbatim (the console would take
    ``[bold]`` as markup and drop it)."""
    bad = tmp_path / "[bold]clip[red].wav"
    bad.write_text("not audio")
    res = run("plot", bad, "--out", tmp_path / "x.png")
    assert res.exit_code == 1
    assert "[bold]clip[red].wav" in res.output


def test_help_and_version() -> None:
    res = run("--help")
    assert res.exit_code == 0
    for cmd in ("demo-data", "inspect", "features", "plot"):
        assert cmd in res.output
    assert run("--version").output.startswith("earmark ")


def test_python_dash_m_runs_the_same_command_line() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "earmark", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("earmark "), done.stderr


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
    assert res.exit_code == 3, res.output  # partial: the model is there, one file was not read
    assert "1 unreadable files skipped" in res.output and "broken.wav" in res.output
    assert (tmp_path / "m" / "earmark.json").is_file()


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
    doc = json.loads(res.stdout)  # one document
    line = doc["predictions"][0]
    assert len(line["labels"]) == 3 and "window_scores" in line and doc["unreadable"] == 0
    res = run("predict", run_dir, clip, clip, "--jsonl")
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert len(lines) == 2 and lines[0]["labels"]
    res = run("predict", run_dir, demo_digits / "five", "--csv", "--top-k", 1)
    rows = [r for r in res.output.strip().splitlines() if r.startswith(str(demo_digits))]
    assert res.output.startswith("path,rank,label,score") and len(rows) == 8
    res = run("predict", run_dir, clip, broken_dir / "text.wav")
    assert res.exit_code == 3 and "unreadable" in res.output and "text.wav" in res.output
    res = run("predict", run_dir, broken_dir / "text.wav")
    assert res.exit_code == 1  # nothing could be read: an error, not a partial result


def test_models_command() -> None:
    res = run("models")
    assert res.exit_code == 0 and "svm-linear" in res.output and "classical" in res.output
    res = run("models", "svm")
    assert res.exit_code == 0 and "gamma" in res.output and "'scale' | 'auto' | float" in res.output
    assert "inverse regularization strength" in res.output
    doc = json.loads(run("models", "cnn", "--json").stdout)
    widths = next(p for p in doc["params"] if p["name"] == "widths")
    assert widths["type"] == "list[int]" and widths["default"] == [16, 32, 64, 128]
    assert run("models", "nope").exit_code == 2


# -- edges: settings, outputs, exit codes, formats ----------------------------------------------


@pytest.fixture
def no_audio_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything decodes audio or computes features."""
    from earmark.classifier import Classifier
    from earmark.training import WaveBank

    def boom(*args, **kwargs):
        raise AssertionError("audio was read")

    monkeypatch.setattr(Classifier, "features_of", boom)
    monkeypatch.setattr(WaveBank, "from_manifest", classmethod(boom))


def _error_lines(res) -> list[str]:
    return [line for line in res.stderr.strip().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "logreg", "-p", "C=abc"], "error: params.C: expected a number, got 'abc'"),
        (
            ["--model", "cnn", "-p", "widht=8"],
            "error: params.widht: unknown hyper-parameter of cnn (known: widths, dropout)",
        ),
        (["--model", "logreg", "--epochs", "3"], "error: --epochs: training settings apply"),
    ],
)
def test_bad_settings_are_one_line_before_any_audio_is_read(
    demo_digits: Path, tmp_path: Path, no_audio_read, args: list[str], message: str
) -> None:
    res = run("train", demo_digits, *args, "--out", tmp_path / "m")
    assert res.exit_code == 2, res.output
    assert _error_lines(res) == [message] or _error_lines(res)[0].startswith(message)
    assert len(_error_lines(res)) == 1 and "Traceback" not in res.output
    assert not (tmp_path / "m").exists()


def test_cv_checks_hyper_parameters_before_features(
    demo_digits: Path, no_audio_read, tmp_path: Path
) -> None:
    res = run("cv", demo_digits, "--model", "svm", "-p", "C=abc")
    assert res.exit_code == 2 and _error_lines(res) == [
        "error: params.C: expected a number, got 'abc'"
    ]


def test_train_refuses_a_folder_of_user_files_and_they_survive(
    demo_digits: Path, tmp_path: Path, no_audio_read
) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("mine")
    (d / "sub" / "thesis.tex").write_text("also mine")
    for extra in ([], ["--overwrite"]):
        res = run("train", demo_digits, "--model", "logreg", "--out", d, *extra)
        assert res.exit_code == 1, res.output
        assert len(_error_lines(res)) == 1 and "earmark did not write" in res.output
    assert (d / "notes.txt").read_text() == "mine"
    assert (d / "sub" / "thesis.tex").read_text() == "also mine"
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt", "sub"]


def test_an_unwritable_out_is_refused_before_any_work(
    demo_digits: Path, tmp_path: Path, no_audio_read
) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("mine")
    res = run("train", demo_digits, "--model", "logreg", "--out", note / "run")
    assert res.exit_code == 1 and "is a file, not a folder" in res.output
    res = run("features", demo_digits, "--out", note, "--duration", 1.0)
    assert res.exit_code == 1 and "already exists; pass --overwrite" in res.output
    assert note.read_text() == "mine"


def test_ensemble_never_replaces_a_regular_file(run_dir: Path, tmp_path: Path) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("my notes")
    for extra in ([], ["--overwrite"]):
        res = run("ensemble", run_dir, run_dir, "--out", note, *extra)
        assert res.exit_code == 1, res.output
        assert "a file is there, not a folder" in res.output and len(_error_lines(res)) == 1
    assert note.read_text() == "my notes"


def test_overwrite_replaces_only_an_earlier_earmark_output(
    run_dir: Path, demo_digits: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ens"
    assert run("ensemble", run_dir, run_dir, "--out", out, "-q").exit_code == 0
    first = (out / "earmark.json").read_text()
    res = run("ensemble", run_dir, run_dir, "--out", out, "--method", "vote")
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert (out / "earmark.json").read_text() == first
    res = run("ensemble", run_dir, run_dir, "--out", out, "--method", "vote", "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "earmark.json").read_text())["method"] == "vote"
    cache = run_dir.parent / "cache-overwrite"
    model = tmp_path / "gnb"
    args = ("train", demo_digits, "--model", "gnb", "--cache-dir", cache, "--out", model, "-q")
    assert run(*args).exit_code == 0
    (model / "report.md").write_text("stale")
    assert run(*args).exit_code == 1 and (model / "report.md").read_text() == "stale"
    assert run(*args, "--overwrite").exit_code == 0
    assert (model / "report.md").read_text() != "stale"
    assert json.loads((model / "settings.json").read_text())["settings"]["model"] == "gnb"


def test_output_formats_exclude_each_other_and_top_k_is_clamped(
    run_dir: Path, demo_digits: Path
) -> None:
    clip = demo_digits / "five" / "v003.wav"
    res = run("predict", run_dir, clip, "--json", "--csv")
    assert res.exit_code == 2 and "--json" in res.output and "--csv" in res.output
    res = run("predict", run_dir, clip, "--top-k", 99, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["top_k"] == 10 and len(doc["predictions"][0]["labels"]) == 10
    res = run("predict", run_dir, clip, "--top-k", 99)
    assert res.exit_code == 0 and "#10" in res.output and "#11" not in res.output


def test_piped_output_is_not_wrapped_and_json_is_one_document(
    demo_digits: Path, tmp_path: Path
) -> None:
    out = tmp_path / ("a-rather-long-folder-name-for-the-model-" * 3) / "run"
    res = run("train", demo_digits, "--model", "gnb", "--no-cache", "--out", out)
    assert res.exit_code == 0, res.output
    assert f"model and report in {out}" in res.stdout.splitlines()
    res = run("evaluate", out, demo_digits, "--json")
    doc = json.loads(res.stdout)
    assert doc["files"] == 20 and "accuracy" in doc["metrics"]


def test_counts_agree_between_console_report_and_tables(folder_set: Path, tmp_path: Path) -> None:
    import re

    out = tmp_path / "m"
    res = run("train", folder_set, "--model", "gnb", "--no-cache", "--out", out, "--test-size", 0.5)
    assert res.exit_code == 3, res.output
    tested = int(re.search(r"tested on (\d+) held-out files", res.stdout).group(1))
    support = sum(int(r.split(",")[-1]) for r in (out / "per_class.csv").read_text().split()[1:])
    assert f"files evaluated**: {tested}" in (out / "report.md").read_text()
    assert support == tested == json.loads((out / "metrics.json").read_text())["n"]
    assert f"test split: {tested} files" in res.stdout
    for name in ("report.md", "metrics.json", "per_class.csv", "settings.json"):
        assert (out / name).stat().st_mode & 0o044 == 0o044  # readable like the rest


# -- networks: recipes, Ctrl-C, --resume ------------------------------------------------------


def _tiny_recipe(tmp_path: Path, epochs: int = 3) -> Path:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "model: seed-cnn\n"
        "params: {width: 4}\n"
        "audio: {duration: 1.0}\n"
        f"train: {{epochs: {epochs}, batch_size: 16, lr: 1e-3, augment: none, device: cpu}}\n"
    )
    return recipe


def test_a_yaml_recipe_with_lr_1e_3_trains_with_a_float(
    demo_digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earmark import training

    seen = []
    original = training.Trainer.__init__

    def spy(self, config, *args, **kwargs):
        seen.append(config.lr)  # what reaches the trainer (and torch's optimizer)
        original(self, config, *args, **kwargs)

    monkeypatch.setattr(training.Trainer, "__init__", spy)
    out = tmp_path / "net"
    recipe = _tiny_recipe(tmp_path, epochs=1)
    res = run("train", demo_digits, "--config", recipe, "--out", out, "--no-cache", "-q")
    assert res.exit_code == 0, res.output
    assert seen == [0.001] and isinstance(seen[0], float)
    meta = json.loads((out / "earmark.json").read_text())
    assert meta["training"]["train_config"]["lr"] == 0.001


@pytest.fixture(scope="module")
def interrupted_run(
    demo_digits: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, object]:
    """A tiny network's run stopped by Ctrl-C after its first epoch's checkpoint."""
    from earmark import training

    root = tmp_path_factory.mktemp("resume")
    recipe = _tiny_recipe(root)
    cache = root / "cache"
    original = training.Trainer._save_checkpoint

    def ctrl_c_after_first(self, model, opt, best, state):
        original(self, model, opt, best, state)
        if state["epoch"] == 0:
            raise KeyboardInterrupt  # what Ctrl-C does between two batches

    mp = pytest.MonkeyPatch()
    mp.setattr(training.Trainer, "_save_checkpoint", ctrl_c_after_first)
    try:
        res = run("train", demo_digits, "--config", recipe, "--out", root / "run",
                  "--cache-dir", cache)  # fmt: skip
    finally:
        mp.undo()
    return root, res


def test_ctrl_c_keeps_the_checkpoint_saves_no_model_and_exits_130(interrupted_run) -> None:
    root, res = interrupted_run
    assert res.exit_code == 130, res.output
    assert f"--resume {root / 'run'}" in res.output and "Traceback" not in res.output
    assert not (root / "run" / "earmark.json").exists()  # no "finished" model
    assert (root / "run" / "checkpoint" / "earmark.json").is_file()
    assert (root / "run" / "settings.json").is_file()


def test_resume_continues_the_network_without_model_options(
    interrupted_run, demo_digits: Path
) -> None:
    root, _ = interrupted_run
    res = run("train", demo_digits, "--resume", root / "run", "--model", "cnn")
    assert res.exit_code == 2 and _error_lines(res) == [
        "error: --model: 'cnn' conflicts with the resumed run's 'seed-cnn' (a resumed run keeps"
        " its settings)"
    ]
    res = run("train", demo_digits, "--resume", root / "run", "--epochs", 5)
    assert res.exit_code == 2 and "--epochs: 5 conflicts with the resumed run's 3" in res.output
    cache = ("--cache-dir", root / "cache")
    res = run("train", demo_digits, "--resume", root / "run", *cache, "-q")
    assert res.exit_code == 0, res.output
    meta = json.loads((root / "run" / "earmark.json").read_text())
    assert meta["model"] == "seed-cnn" and meta["params"]["width"] == 4
    assert len(meta["history"]) == 3
    # the same as training straight through
    straight = root / "straight"
    res = run("train", demo_digits, "--config", root / "tiny.yaml", "--out", straight, *cache, "-q")
    assert res.exit_code == 0, res.output
    again = json.loads((straight / "earmark.json").read_text())["history"]
    assert [r["train_loss"] for r in again] == [r["train_loss"] for r in meta["history"]]


def test_resume_refuses_an_edited_run_in_one_line(
    interrupted_run, demo_digits: Path, tmp_path: Path
) -> None:
    """A run's settings and checkpoint are files like a model's: validated, not trusted.
    What they got wrong is one line naming the file and the key, exit 1 (no option of the
    caller's is at fault), before anything large is built."""
    import hashlib

    import torch
    from safetensors.torch import load_file, save_file

    root, _ = interrupted_run

    def settings(change):
        def apply(run_dir: Path) -> None:
            doc = json.loads((run_dir / "settings.json").read_text())
            change(doc["settings"])
            (run_dir / "settings.json").write_text(json.dumps(doc))

        return apply

    def wider_weights(run_dir: Path) -> None:  # with checksums to match, as crafted
        ckpt = run_dir / "checkpoint"
        tensors = load_file(ckpt / "model.safetensors")
        key = sorted(k for k in tensors if k.endswith(".weight"))[0]
        tensors[key] = torch.zeros(tensors[key].shape[0] * 2, *tensors[key].shape[1:])
        save_file(tensors, ckpt / "model.safetensors")
        meta = json.loads((ckpt / "earmark.json").read_text())
        raw = (ckpt / "model.safetensors").read_bytes()
        meta["files"]["model.safetensors"] = {
            "sha256": hashlib.sha256(raw).hexdigest(),
            "bytes": len(raw),
        }
        (ckpt / "earmark.json").write_text(json.dumps(meta))

    def checkpoint_text(change):
        def apply(run_dir: Path) -> None:
            path = run_dir / "checkpoint" / "earmark.json"
            path.write_text(change(path.read_text()))

        return apply

    cases = [
        (
            settings(lambda s: s["params"].update(width=10**9)),
            "settings.json: params.width: must be in [1, 1024], got 1000000000",
        ),
        (
            settings(lambda s: s["features"].update(n_fft=1e9)),
            "settings.json: features.n_fft: expected an integer, got 1000000000.0",
        ),
        (
            settings(lambda s: s["features"].update(n_fft=10**9)),
            "settings.json: features.n_fft: must be <= 65536, got 1000000000",
        ),
        (
            settings(lambda s: s["params"].update(width=[4])),
            "settings.json: params.width: expected an integer, got [4]",
        ),
        (settings(lambda s: s.update(classes=5)), "settings.json: classes: unknown setting"),
        (
            checkpoint_text(lambda text: text[: len(text) // 2]),
            "checkpoint/earmark.json: not valid JSON",
        ),
        (
            checkpoint_text(lambda text: text.replace('"lr": 0.001', '"lr": "fast"', 1)),
            "checkpoint/earmark.json: state.config.lr: expected a number, got 'fast'",
        ),
        (wider_weights, "model.safetensors: does not fit the network ("),
    ]
    for i, (change, message) in enumerate(cases):
        run_dir = tmp_path / f"run{i}"
        shutil.copytree(root / "run" / "checkpoint", run_dir / "checkpoint")
        shutil.copy(root / "run" / "settings.json", run_dir / "settings.json")
        change(run_dir)
        res = run("train", demo_digits, "--resume", run_dir, "--cache-dir", root / "cache", "-q")
        lines = _error_lines(res)
        assert res.exit_code == 1, (message, res.output)
        assert len(lines) == 1 and lines[0].startswith("error: cannot resume"), res.output
        assert message in lines[0] and "Traceback" not in res.output, (message, lines)
        assert not (run_dir / "earmark.json").exists()  # nothing was trained or saved


def test_detect_and_score_events_edges(
    run_dir: Path, recording: Path, broken_dir: Path, tmp_path: Path
) -> None:
    recs = tmp_path / "recs"
    recs.mkdir()
    shutil.copy(recording, recs / "field.wav")
    shutil.copy(broken_dir / "cut.wav", recs / "cut.wav")
    det = tmp_path / "det"
    res = run("detect", run_dir, recs, "--out", det, "--json")
    assert res.exit_code == 3, res.output  # partial: one recording unreadable
    doc = json.loads(res.stdout)
    assert doc["files"] == 2 and doc["unreadable"] == 1 and doc["scored"] == 1
    res = run("detect", run_dir, broken_dir / "cut.wav", "--out", tmp_path / "det2", "-q")
    assert res.exit_code == 1, res.output  # nothing could be read
    truth = tmp_path / "truth.csv"
    truth.write_text("file,start_s,end_s,label\nfield.wav,1.0,1.6,one\nfield.wav,3.0,3.6,two\n")
    res = run("score-events", det / "events.csv", truth, "--json", "--sweep")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # one document, the sweep inside
    assert "overall" in doc and len(doc["sweep"]) == 19


def test_every_command_takes_quiet() -> None:
    import typer.main

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert len(commands) > 15
    todo = list(commands.items())
    while todo:
        name, command = todo.pop()
        if hasattr(command, "commands"):  # a group (earmark reviews): its commands
            todo += [(f"{name} {n}", c) for n, c in command.commands.items()]
            continue
        flags = {f for p in command.params for f in getattr(p, "opts", [])}
        assert "--quiet" in flags, f"earmark {name} has no --quiet"


# -- one exit-code scheme: a folder with one unreadable file ----------------------------------


@pytest.fixture(scope="module")
def text_set(tmp_path_factory: pytest.TempPathFactory, demo_digits: Path) -> Path:
    """The demo digits as class folders (80 clips) and one .wav that holds text."""
    root = tmp_path_factory.mktemp("text_set")
    for folder in sorted(p for p in demo_digits.iterdir() if p.is_dir()):
        shutil.copytree(folder, root / folder.name)
    (root / "one" / "notes.wav").write_text("a note about the recordings, not audio\n" * 20)
    return root


def _unreadable_lines(res) -> list[str]:
    return [line for line in res.stderr.splitlines() if "notes.wav" in line]


def _many_file_commands(run_dir: Path, text_set: Path, tmp: Path) -> dict[str, tuple]:
    """Each command that reads many files: its arguments, and what says the rest was done."""
    events = tmp / "events.csv"
    good = text_set / "two" / "v000.wav"
    events.write_text(
        "file,start_s,end_s,label,score\n"
        f"{good},0.1,0.4,two,0.9\n{text_set / 'one' / 'notes.wav'},0.1,0.4,one,0.9\n"
    )
    return {
        "inspect": (["inspect", text_set, "--json"], lambda d: d["readable"] == 80),
        "features": (
            ["features", text_set, "--duration", 1.0, "--out", tmp / "f.npz", "--json"],
            lambda d: d["files"] == 80 and len(d["skipped"]) == 1,
        ),
        "train": (
            ["train", text_set, "--model", "gnb", "--no-cache", "--out", tmp / "m", "--json"],
            lambda d: d["train_files"] + d["test_files"] == 80 and d["unreadable"] == 1,
        ),
        "evaluate": (
            ["evaluate", run_dir, text_set, "--split", "all", "--out", tmp / "ev", "--json"],
            lambda d: d["files"] == 80 and d["unreadable"] == 1,
        ),
        "cv": (
            ["cv", text_set, "--model", "gnb", "--folds", 2, "--no-cache", "--json"],
            lambda d: d["files"] == 80 and d["unreadable"] == 1,
        ),
        "predict": (
            ["predict", run_dir, text_set, "--json"],
            lambda d: d["files"] == 81 and d["unreadable"] == 1,
        ),
        "detect": (
            ["detect", run_dir, text_set, "--out", tmp / "det", "--json"],
            lambda d: d["scored"] == 80 and d["unreadable"] == 1,
        ),
        "segments": (
            ["segments", events, "--out", tmp / "cuts", "-q"],
            lambda _: len(list((tmp / "cuts").glob("*.wav"))) == 1,
        ),
    }


COMMANDS = ["inspect", "features", "train", "evaluate", "cv", "predict", "detect", "segments"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_with_one_unreadable_file_exits_3_lists_it_once_and_does_the_rest(
    run_dir: Path, text_set: Path, tmp_path: Path, command: str
) -> None:
    args, rest_done = _many_file_commands(run_dir, text_set, tmp_path)[command]
    res = run(*args)
    assert res.exit_code == 3, res.output  # partial
    lines = _unreadable_lines(res)
    assert len(lines) == 1, res.stderr  # the bad file: one line on stderr
    assert lines[0].startswith(("unreadable:", "skipped:")) and "Traceback" not in res.output
    doc = json.loads(res.stdout) if "--json" in args else None
    assert rest_done(doc), res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["features", ".", "--out", "x.npz", "--duration", "nan"], "--duration: must be a finite"),
        (["features", ".", "--out", "x.npz", "--duration", "1e300"], "duration must be a finite"),
        (["features", ".", "--out", "x.npz", "--duration", "-1"], "duration must be a finite"),
        (["features", ".", "--out", "x.npz", "--sr", "0"], "sample_rate must be between"),
        (["plot", "x.wav", "--out", "p.png", "--offset", "inf"], "--offset: must be a finite"),
        (["plot", "x.wav", "--out", "p.png", "--duration", "nan"], "--duration: must be"),
        (["train", ".", "--out", "m", "--lr", "nan"], "--lr: must be a finite number, got nan"),
        (["train", ".", "--out", "m", "--duration", "inf"], "--duration: must be a finite"),
        (["cv", ".", "--duration", "-inf"], "--duration: must be a finite number, got -inf"),
        (["segments", "e.csv", "--out", "c", "--margin", "nan"], "--margin: must be a finite"),
        (["segments", "e.csv", "--out", "c", "--margin", "-1"], "--margin must be >= 0"),
        (["score-events", "e.csv", "t.csv", "--tolerance", "inf"], "--tolerance: must be"),
        (["score-events", "e.csv", "t.csv", "--tolerance", "-1"], "--tolerance must be >= 0"),
        (["demo-scenes", "o", "--digits", "d", "--seconds", "nan"], "--seconds: must be"),
    ],
)
def test_non_finite_or_absurd_option_values_are_one_line_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing exists there: refused before any file is looked at
    res = run(*args)
    assert res.exit_code == 2, res.output
    assert len(_error_lines(res)) == 1 and _error_lines(res)[0].startswith("error:"), res.output
    assert message in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
