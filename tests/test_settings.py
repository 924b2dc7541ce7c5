"""Settings: typed, merged in one order, one line naming the key when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from earmark import artifact
from earmark.errors import EarmarkError
from earmark.models import registry
from earmark.settings import (
    SETTINGS_FILE,
    SettingsError,
    check_params,
    check_value,
    describe_type,
    load_yaml,
    parse_params,
    read_recipe,
    run_settings,
    train_settings,
    type_name,
)


def test_numbers_in_yaml_and_params_are_numbers() -> None:
    assert load_yaml("lr: 1e-3\nx: -2.5E+2\nn: 10\ns: 1e\nt: 1.5") == {
        "lr": 0.001,
        "x": -250.0,
        "n": 10,
        "s": "1e",
        "t": 1.5,
    }
    params = parse_params(["C=1e-3", "kernel=linear", "class_weight=null", "widths=[8, 16]"])
    assert params == {"C": 0.001, "kernel": "linear", "class_weight": None, "widths": [8, 16]}
    assert isinstance(params["C"], float)
    with pytest.raises(SettingsError, match="NAME=VALUE"):
        parse_params(["C"])


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        ("logreg", {"C": "abc"}, "params.C: expected a number, got 'abc'"),
        ("cnn", {"widht": 8}, "params.widht: unknown hyper-parameter of cnn (known: widths, "),
        ("seed-cnn", {"width": 2.5}, "params.width: expected an integer, got 2.5"),
        ("svm", {"C": True}, "params.C: expected a number, got True"),
        ("svm", {"kernel": "cubic"}, "params.kernel: expected one of rbf, linear, poly"),
        ("cnn", {"widths": "wide"}, "params.widths: expected a list of integers, got 'wide'"),
    ],
)
def test_wrong_hyper_parameters_are_one_line_naming_the_key(
    model: str, params: dict, message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        check_params(model, params)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_hyper_parameters_are_converted_to_their_types() -> None:
    assert check_params("svm", {"C": 1, "gamma": "1e-3"}) == {"C": 1.0, "gamma": 0.001}
    assert check_params("svm", {"gamma": "scale"}) == {"gamma": "scale"}
    assert check_params("cnn", {"widths": (8, 16)}) == {"widths": [8, 16]}
    assert check_params("rf", {"max_depth": None, "class_weight": "balanced"})["max_depth"] is None


@pytest.mark.parametrize("name", registry.names())
def test_every_model_declares_typed_hyper_parameters(name: str) -> None:
    spec = registry.get(name)
    assert spec.params, f"{name} declares no hyper-parameters"
    assert set(spec.defaults) == {p.name for p in spec.params}
    for p in spec.params:
        assert p.help and "\n" not in p.help and type_name(p.type) and describe_type(p.type)
        assert check_value(p.type, p.default, p.name) == p.default  # defaults fit their types


def test_merge_order_defaults_recipe_options() -> None:
    recipe = {"model": "cnn", "train": {"epochs": 60, "lr": "1e-3"}, "seed": 3}
    s = train_settings(recipe, {"train": {"epochs": 2, "lr": None}, "features": {"kind": None}})
    assert s.model == "cnn" and s.train.epochs == 2 and s.train.lr == 0.001
    assert isinstance(s.train.lr, float) and s.train.seed == 3 and s.split.seed == 3
    assert s.features is None and s.audio.sample_rate == 16_000
    s = train_settings(None, {"model": "logreg", "params": {"C": "2"}})
    assert s.params == {"C": 2.0} and s.train is None and s.split.test_size == 0.2


@pytest.mark.parametrize(
    ("recipe", "options", "message"),
    [
        ({"train": {"epochs": 2}}, {"model": "logreg"}, "train.epochs: training settings apply"),
        ({}, {"model": "logreg", "train": {"epochs": 2}}, "--epochs: training settings apply"),
        ({}, {"model": "cnn", "train": {"lr": "fast"}}, "--lr: expected a number, got 'fast'"),
        ({"model": "cnn", "train": {"lr": "fast"}}, {}, "train.lr: expected a number"),
        ({"model": "cnn", "train": {"epoch": 2}}, {}, "train.epoch: unknown setting (known: "),
        ({}, {"model": "nope"}, "--model: unknown model 'nope'"),
        ({}, {"model": "logreg", "unlabeled": "x"}, "--unlabeled: logreg learns from labelled"),
        ({"model": "cnn", "audio": {"sample_rate": 0}}, {}, "audio: sample_rate must be"),
    ],
)
def test_bad_settings_name_the_option_or_the_key(recipe: dict, options: dict, message) -> None:
    names = {"model": "--model", "train.epochs": "--epochs", "train.lr": "--lr"}
    names["unlabeled"] = "--unlabeled"
    with pytest.raises(SettingsError) as info:
        train_settings(recipe, options, names=names)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_recipe_is_checked_when_read(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("model: cnn\ntrain: {lr: 1e-3, epochs: 2}\n")
    assert read_recipe(path) == {"model": "cnn", "train": {"lr": 0.001, "epochs": 2}}
    path.write_text("model: cnn\noptimiser: adam\n")
    with pytest.raises(SettingsError, match="optimiser: unknown recipe key"):
        read_recipe(path)
    path.write_text("train: [1, 2]\n")
    with pytest.raises(SettingsError, match="train: expected a mapping"):
        read_recipe(path)


def _fake_run(run: Path, settings: dict, config: dict) -> Path:
    """A run directory as train_run leaves it after an interruption (no real weights)."""
    state = {"epoch": 0, "history": [], "best_value": 0, "best_epoch": 1, "bad_epochs": 0}
    meta = {"schema_version": 1, "kind": "checkpoint", "state": {**state, "config": config}}
    artifact.write_artifact(
        run / "checkpoint", meta, {"model.safetensors": lambda p: p.write_bytes(b"w")}
    )
    doc = {"kind": "train-settings", "settings": settings}
    (run / SETTINGS_FILE).write_text(json.dumps(doc))
    return run


def test_a_resumed_run_keeps_its_settings_and_refuses_others(tmp_path: Path) -> None:
    first = train_settings(None, {"model": "seed-cnn", "params": {"width": 4}, "seed": 5})
    config = {**first.train.to_dict(), "epochs": 3}
    run = _fake_run(tmp_path / "run", first.to_dict(), config)
    assert run_settings(run)["train"]["epochs"] == 3
    names = {"model": "--model", "train.epochs": "--epochs", "train.device": "--device"}
    again = train_settings(None, {"model": None, "train": {"epochs": None}}, resume=run)
    assert again.model == "seed-cnn" and again.params == {"width": 4} and again.train.epochs == 3
    assert again.seed == 5
    same = train_settings(None, {"model": "seed-cnn", "params": {"width": "4"}}, resume=run)
    assert same == again
    moved = train_settings(None, {"train": {"device": "cpu"}}, resume=run, names=names)
    assert moved.train.device == "cpu"  # where it runs may change
    for options, message in [
        ({"model": "cnn"}, "--model: 'cnn' conflicts with the resumed run's 'seed-cnn'"),
        ({"train": {"epochs": 5}}, "--epochs: 5 conflicts with the resumed run's 3"),
        ({"params": {"width": 8}}, "params.width: 8 conflicts with the resumed run's 4"),
    ]:
        with pytest.raises(SettingsError) as info:
            train_settings(None, options, resume=run, names=names)
        assert str(info.value).startswith(message)
    with pytest.raises(SettingsError, match=r"--config train.epochs: 9 conflicts"):
        train_settings({"train": {"epochs": 9}}, None, resume=run, names={"recipe": "--config"})


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(EarmarkError, match=r"cannot resume .*no checkpoint"):
        train_settings(None, {}, resume=tmp_path)
