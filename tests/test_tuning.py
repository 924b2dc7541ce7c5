"""`earmark.tuning`: search spaces, the trial loop over grouped cross-validation, pruning,
and a study that survives Ctrl-C and kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from earmark import data
from earmark.errors import EarmarkError, Interrupted
from earmark.models import registry
from earmark.settings import SettingsError, read_recipe, train_settings
from earmark.tuning import (
    BEST_FILE,
    STUDY_FILE,
    TRIALS_FILE,
    default_space,
    read_space,
    space_from_dict,
    tune,
)

DIGITS = ("one", "two", "three", "four")


@pytest.fixture(scope="module")
def small(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four digits by eight voices (32 files, voices as groups), as a manifest CSV."""
    frame = pd.read_csv(demo_digits / "manifest.csv")
    frame = frame[frame["label"].isin(DIGITS)].copy()
    frame["filepath"] = [str(demo_digits / p) for p in frame["filepath"]]
    path = tmp_path_factory.mktemp("small") / "manifest.csv"
    frame[["filepath", "label", "group"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def logreg(**over):
    return train_settings(None, {"model": "logreg", **over})


C_SPACE = {"params": {"C": {"low": 1e-6, "high": 10.0, "log": True}}}


# -- search spaces -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", registry.names())
def test_every_model_has_a_default_space_its_settings_accept(model: str) -> None:
    settings = train_settings(None, {"model": model})
    space = default_space(settings)
    keys = {d.key for d in space}
    assert keys and all(k.startswith(("params.", "train.")) for k in keys)
    if registry.get(model).family == "neural":
        assert {"train.lr", "train.weight_decay", "train.augment", "train.epochs"} <= keys
        assert ("params.dropout" in keys) == (registry.get(model).param("dropout") is not None)


def test_default_spaces_follow_the_models_declared_params() -> None:
    svm = {d.key: d for d in default_space(train_settings(None, {"model": "svm"}))}
    assert set(svm) == {"params.C", "params.gamma"} and svm["params.C"].log
    assert (svm["params.C"].low, svm["params.C"].high) == (0.1, 1000.0)  # around C=10
    rf = {d.key for d in default_space(train_settings(None, {"model": "rf"}))}
    assert {"params.n_estimators", "params.max_depth"} <= rf
    cnn = {d.key: d for d in default_space(train_settings(None, {"model": "cnn"}))}
    assert cnn["params.widths"].choices[1] == [16, 32, 64, 128]  # the default, half, double
    epochs = default_space(train_settings(None, {"model": "cnn", "train": {"epochs": 8}}))
    assert {d.key: (d.low, d.high) for d in epochs}["train.epochs"] == (2, 8)


def test_a_space_file_is_typed_by_the_settings_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(
        "params: {widths: [[8, 16], [16, 32]], dropout: {low: 0, high: 0.5}}\n"
        "train: {lr: {low: 1e-4, high: 1e-2, log: true}, epochs: {low: 1, high: 3},"
        " augment: {choices: [none, default]}}\n"
    )
    settings = train_settings(None, {"model": "cnn"})
    dims = {d.key: d for d in read_space(path, settings)}
    assert dims["train.epochs"].kind == "int" and dims["train.lr"].kind == "float"
    assert dims["params.dropout"].kind == "float" and dims["params.dropout"].high == 0.5
    assert dims["params.widths"].choices == ([8, 16], [16, 32])
    assert dims["train.augment"].choices == ("none", "default")
    applied = read_space(path, settings).apply(
        settings, {"params.widths": [8, 16], "train.epochs": 2}
    )
    assert applied.params["widths"] == [8, 16] and applied.train.epochs == 2


BAD_SPACES = [
    ("params: {C: {low: 10, high: 1}}", "params.C: low must be below high, got 10.0 and 1.0"),
    ("params: {C: {low: 0, high: 1, log: true}}", "params.C: a log scale needs low above 0"),
    ("params: {Cee: [1, 2]}", "params.Cee: unknown hyper-parameter of logreg"),
    ("params: {C: {low: a, high: 1}}", "params.C.low: expected a finite number, got 'a'"),
    ("params: {C: {low: 1, high: .inf}}", "params.C.high: expected a finite number"),
    ("params: {C: {low: 1}}", "params.C: a range needs low and high; high is missing"),
    ("params: {C: {low: 1, high: 2, sigma: 3}}", "params.C.sigma: unknown key"),
    ("params: {C: 3}", "params.C: expected {low, high[, log, step]} or a list of choices"),
    ("params: {C: []}", "params.C: an empty list of choices"),
    ("params: {C: [1, abc]}", "params.C: expected a number, got 'abc'"),
    ("params: {class_weight: {low: 1, high: 2}}", "not a number: give a list of choices"),
    ("params: {max_iter: {low: 10.5, high: 20}}", "params.max_iter.low: max_iter takes integers"),
    ("train: {lr: [0.1]}", "train.lr: training settings apply to networks; logreg is classical"),
    ("features: {n_mels: [20, 40]}", "features: unknown section (known: params, train)"),
    ("- params", "a search space is a mapping of params, train"),
    ("params: [C]", "params: expected a mapping of settings, got ['C']"),
    ("params: {}", "nothing to search"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SPACES)
def test_bad_space_files_are_one_line_errors_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text + "\n")
    with pytest.raises(SettingsError) as info:
        read_space(path, logreg())
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_space_values_the_settings_refuse_are_caught_before_any_trial() -> None:
    cnn = train_settings(None, {"model": "cnn"})
    with pytest.raises(SettingsError, match=r"train.epochs: 0: .*epochs >= 1"):
        space_from_dict({"train": {"epochs": {"low": 0, "high": 3}}}, cnn)
    with pytest.raises(SettingsError, match=r"train.augment: 'loud'.*unknown augmentation"):
        space_from_dict({"train": {"augment": ["none", "loud"]}}, cnn)


def test_an_unreadable_space_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EarmarkError, match="cannot read the search space") as info:
        read_space(tmp_path / "missing.yaml", logreg())
    assert not isinstance(info.value, SettingsError)
    (tmp_path / "bad.yaml").write_text("params: {C: [1, 2\n")
    with pytest.raises(EarmarkError, match="cannot read the search space"):
        read_space(tmp_path / "bad.yaml", logreg())


# -- the search ------------------------------------------------------------------------------------


def _search(small: Path, cache: Path, out: Path, trials: int, **kw):
    kw.setdefault("space", space_from_dict(C_SPACE, logreg()))
    return tune(small, logreg(), out, trials=trials, folds=2, cache_dir=cache, **kw)


def test_a_classical_search_writes_its_trials_and_a_recipe_train_accepts(
    small: Path, cache: Path, tmp_path: Path
) -> None:
    result = _search(small, cache, tmp_path / "t", 3)
    assert [t.state for t in result.trials] == ["complete"] * 3
    assert result.fold_kind == "group k-fold" and all(t.folds == 2 for t in result.trials)
    best = result.best
    assert best.score == max(t.score for t in result.trials)
    frame = pd.read_csv(tmp_path / "t" / TRIALS_FILE)
    assert list(frame.columns) == [
        "number", "state", "score", "score_std", "folds", "duration_s", "params.C",
    ]  # fmt: skip
    assert frame["number"].tolist() == [0, 1, 2] and (frame["duration_s"] > 0).all()
    assert frame["score"].round(6).tolist() == [round(t.score, 6) for t in result.trials]
    recipe = read_recipe(tmp_path / "t" / BEST_FILE)
    assert recipe["model"] == "logreg" and recipe["params"]["C"] == best.values["params.C"]
    assert train_settings(recipe) == result.best_settings  # the same settings, read back


def test_pruning_stops_a_clearly_worse_trial_after_its_first_fold(
    small: Path, cache: Path, tmp_path: Path
) -> None:
    """Two good settings finish; the third (an RBF kernel far too narrow: every clip is its
    own island, the SVM predicts one class) scores far below their first fold and is stopped
    there; the fourth, as good as the first, runs to the end."""
    svm = train_settings(None, {"model": "svm"})
    space = space_from_dict({"params": {"gamma": {"low": 1e-5, "high": 10.0, "log": True}}}, svm)
    good, bad = {"params.gamma": 1e-3}, {"params.gamma": 10.0}

    def search(out: Path, trials: int, **kw):
        return tune(
            small, svm, out, trials=trials, folds=2, space=space, cache_dir=cache,
            prune_after=2, **kw,
        )  # fmt: skip

    result = search(tmp_path / "t", 4, enqueue=[good, good, bad, good])
    states = [(t.state, t.folds, t.values["params.gamma"]) for t in result.trials]
    assert states == [
        ("complete", 2, 1e-3), ("complete", 2, 1e-3), ("pruned", 1, 10.0), ("complete", 2, 1e-3),
    ]  # fmt: skip
    assert result.trials[2].score < result.trials[0].score - 0.3
    # without pruning the same trial runs all its folds
    flat = search(tmp_path / "flat", 3, prune=False, enqueue=[good, good, bad])
    assert [(t.state, t.folds) for t in flat.trials] == [("complete", 2)] * 3


def test_a_search_interrupted_by_ctrl_c_resumes_where_it_stopped(
    small: Path, cache: Path, tmp_path: Path
) -> None:
    """Ctrl-C in trial 2's second fold: the two finished trials are kept, trial 2 is failed
    and run again, and the search ends with the trials an uninterrupted one proposes."""
    out = tmp_path / "t"

    def ctrl_c(trial: int, fold: int, metrics: dict) -> None:
        if (trial, fold) == (2, 1):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted in trial 2; 2 of 4 trials done"):
        _search(small, cache, out, 4, on_fold=ctrl_c)
    first = pd.read_csv(out / TRIALS_FILE)
    assert first["state"].tolist() == ["complete", "complete", "failed"]

    again = _search(small, cache, out, 4)
    states = ["complete", "complete", "failed", "complete", "complete"]
    assert [t.state for t in again.trials] == states
    assert again.trials[2].interrupted and again.trials[2].error == "interrupted"
    kept = pd.read_csv(out / TRIALS_FILE).iloc[:2]
    pd.testing.assert_frame_equal(kept, first.iloc[:2])  # the finished trials, untouched
    straight = _search(small, cache, tmp_path / "straight", 4)
    resumed = [t.values for t in again.trials if t.state == "complete"]
    assert resumed == [t.values for t in straight.trials]
    assert again.trials[3].values == again.trials[2].values  # the interrupted one, re-run
    # the study is complete: the same command again runs nothing more
    assert len(_search(small, cache, out, 4).trials) == 5


@pytest.mark.slow
def test_a_search_killed_with_sigkill_resumes(small: Path, cache: Path, tmp_path: Path) -> None:
    """A real SIGKILL in the middle of trial 1 leaves it running in the database; the next
    search marks it failed and completes the total."""
    out = tmp_path / "t"
    script = textwrap.dedent(
        f"""
        import os, signal
        from earmark.settings import train_settings
        from earmark.tuning import space_from_dict, tune

        def kill(trial, fold, metrics):
            if trial == 1:
                os.kill(os.getpid(), signal.SIGKILL)

        s = train_settings(None, {{"model": "logreg"}})
        tune({str(small)!r}, s, {str(out)!r}, trials=3, folds=2, cache_dir={str(cache)!r},
             space=space_from_dict({C_SPACE!r}, s), on_fold=kill)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    import optuna

    study = optuna.load_study(study_name="earmark-tune", storage=f"sqlite:///{out / STUDY_FILE}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    result = _search(small, cache, out, 3)
    assert [(t.state, t.interrupted) for t in result.trials] == [
        ("complete", False), ("failed", True), ("complete", False), ("complete", False),
    ]  # fmt: skip
    assert result.trials[0].score == study.trials[0].value


def test_another_study_in_the_folder_is_refused_unless_overwritten(
    small: Path, demo_digits: Path, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "t"
    _search(small, cache, out, 1)
    gnb = train_settings(None, {"model": "gnb"})
    refused = r"holds a tune study of logreg on .* \(model: logreg then, gnb now\)"
    with pytest.raises(EarmarkError, match=refused) as e:
        tune(small, gnb, out, trials=1, folds=2, cache_dir=cache)
    assert "\n" not in str(e.value) and "--overwrite" in str(e.value)
    with pytest.raises(EarmarkError, match=r"data: .* then, .* now"):
        _search(demo_digits, cache, out, 1)
    with pytest.raises(EarmarkError, match="metric: f1_macro then, accuracy now"):
        _search(small, cache, out, 1, metric="accuracy")
    result = tune(small, gnb, out, trials=1, folds=2, cache_dir=cache, overwrite=True)
    assert len(result.trials) == 1 and read_recipe(out / BEST_FILE)["model"] == "gnb"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(EarmarkError, match="not an earmark tune study"):
        _search(small, cache, tmp_path / "mine", 1, overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_a_second_search_into_a_busy_folder_is_refused(small: Path, tmp_path: Path) -> None:
    import fcntl

    with open(tmp_path / ".tune.lock", "a+") as held:  # what a running search holds
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(EarmarkError, match="another earmark tune is searching into it"):
            tune(small, logreg(), tmp_path, trials=1, folds=2)
    assert not (tmp_path / STUDY_FILE).exists()


def test_a_study_file_that_is_not_one_is_refused(small: Path, tmp_path: Path) -> None:
    (tmp_path / STUDY_FILE).write_bytes(b"not a database, just bytes " * 40)
    with pytest.raises(EarmarkError, match=r"study\.db: not a study earmark can read") as info:
        tune(small, logreg(), tmp_path, trials=1, folds=2)
    assert "\n" not in str(info.value)


def test_a_changed_data_set_is_another_study(small: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    _search(small, cache, out, 1)
    frame = pd.read_csv(small)
    frame = frame[frame["group"] != "v007"]
    changed = tmp_path / "manifest.csv"
    frame.to_csv(changed, index=False)
    moved = data.load(changed)
    moved.root = data.load(small).root  # the same folder, other contents
    with pytest.raises(EarmarkError, match="the data changed since it started"):
        _search(moved, cache, out, 1)


@pytest.mark.slow
def test_a_network_search_cross_validates_each_trial(small: Path, tmp_path: Path) -> None:
    base = train_settings(
        None,
        {
            "model": "seed-cnn",
            "train": {"epochs": 2, "batch_size": 16, "device": "cpu", "augment": "none"},
        },
    )
    space = space_from_dict(
        {"params": {"width": [4, 8]}, "train": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}}},
        base,
    )
    epochs = []
    result = tune(
        small, base, tmp_path / "t", trials=2, folds=2, space=space,
        on_epoch=lambda trial, fold, record: epochs.append((trial, fold)),
    )  # fmt: skip
    assert [t.state for t in result.trials] == ["complete", "complete"]
    assert sorted(set(epochs)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    best = train_settings(read_recipe(tmp_path / "t" / BEST_FILE))
    assert best == result.best_settings and best.train.epochs == 2
    assert best.params["width"] in (4, 8) and best.train.lr == result.best.values["train.lr"]
