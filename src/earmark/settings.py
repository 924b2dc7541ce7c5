"""The settings of a training job, typed, checked and merged in one place.

A job's settings come from up to three places, merged in this order: the defaults, a YAML
recipe, the options given on the command line (or in Python). A resumed run takes its
settings from the run itself (``settings.json`` beside its checkpoint, and the checkpoint's
training settings) and refuses any option that would change them.

Every value is checked against its declared type before anything is read: a model's
hyper-parameters against the :class:`earmark.models.registry.Param` list of that model, the
sections of a recipe against the fields of :class:`~earmark.audio.AudioConfig`,
:class:`~earmark.features.FeatureConfig`, :class:`~earmark.training.TrainConfig` and
:class:`~earmark.data.splits.SplitSettings`. A wrong type or an unknown key is one
:class:`SettingsError` naming the key::

    params.C: expected a number, got 'abc'
    params.widht: unknown hyper-parameter of cnn (known: widths, dropout)

Numbers are numbers wherever they are written: ``lr: 1e-3`` in YAML (a string to YAML 1.1)
and ``-p C=1e-3`` both give the float 0.001.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earmark.audio import AudioConfig
from earmark.checks import (
    SettingsError,
    check_params,
    check_section,
    check_value,
    describe_type,
    type_name,
)
from earmark.errors import EarmarkError, ParameterError
from earmark.features.config import FeatureConfig
from earmark.features.pretrained import info as frontend_info
from earmark.features.pretrained import is_frontend
from earmark.models import registry

__all__ = [
    "RECIPE_KEYS",
    "SETTINGS_FILE",
    "SettingsError",
    "TrainSettings",
    "check_params",
    "check_section",
    "check_value",
    "describe_type",
    "load_yaml",
    "parse_params",
    "read_recipe",
    "run_settings",
    "train_settings",
    "type_name",
]

#: The sections a recipe may have.
RECIPE_KEYS = ("model", "params", "features", "audio", "train", "split", "seed")
#: Where a training run records its resolved settings (beside the model and its checkpoint).
SETTINGS_FILE = "settings.json"
#: Settings a resumed run may change: where it runs, not what it computes.
RESUME_FREE = frozenset({"train.device"})


# -- YAML and NAME=VALUE ------------------------------------------------------------------------


def _yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML 1.1 reads ``1e-3`` (no dot) as text; here it is a number, as in YAML 1.2."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def load_yaml(text: str) -> Any:
    """YAML as plain data, with ``1e-3`` read as a float."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


def parse_params(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["C=10", "kernel=linear", "class_weight=null", "widths=[8, 16]"]`` -> values read as
    YAML scalars and lists (``1e-3`` a float, ``null`` None, anything else text). The types
    are checked later, against the model (:func:`check_params`)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError("params", f"hyper-parameters are NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = load_yaml(value) if value.strip() else value
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def read_recipe(path: str | Path) -> dict[str, Any]:
    """A YAML recipe as a dict of its sections (all optional: :data:`RECIPE_KEYS`); an
    unreadable file, unknown top-level keys or a section that is not a mapping is one
    error naming the file."""
    import yaml

    path = Path(path)
    try:
        recipe = load_yaml(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EarmarkError(f"{path}: cannot read the recipe ({first})") from None
    if not isinstance(recipe, dict):
        raise EarmarkError(f"{path}: a recipe is a mapping of {', '.join(RECIPE_KEYS)}")
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise SettingsError(
            str(unknown[0]), f"unknown recipe key in {path} (known: {', '.join(RECIPE_KEYS)})"
        )
    for key in ("params", "features", "audio", "train", "split"):
        if recipe.get(key) is None:
            recipe.pop(key, None)
        elif not isinstance(recipe[key], dict):
            raise SettingsError(key, f"expected a mapping in {path}, got {recipe[key]!r}")
    return recipe


# -- the settings of a training job --------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides what ``train`` computes: the model and its hyper-parameters,
    the audio and feature settings (``features=None``: the model's own), the training
    settings of a network (``train``; ``None`` for classical learners), how the data is split,
    the seed, and where unlabelled audio comes from (semi-supervised models)."""

    model: str = "svm"
    params: dict[str, Any] = field(default_factory=dict)
    features: FeatureConfig | None = None
    audio: AudioConfig = field(default_factory=AudioConfig)
    train: Any = None  # TrainConfig | None (not imported here: it imports torch)
    split: Any = None  # SplitSettings
    seed: int = 0
    unlabeled: str | None = None
    label_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the shape of a recipe (round-trips through :func:`train_settings`)."""
        return {
            "model": self.model,
            "params": dict(self.params),
            "features": self.features.to_dict() if self.features is not None else None,
            "audio": self.audio.to_dict(),
            "train": self.train.to_dict() if self.train is not None else None,
            "split": self.split.to_dict() if self.split is not None else None,
            "seed": self.seed,
            "unlabeled": self.unlabeled,
            "label_fraction": self.label_fraction,
        }

    def fit_options(self) -> dict[str, Any]:
        """What ``Classifier.fit`` takes besides the data: ``unlabeled``, ``label_fraction``."""
        out: dict[str, Any] = {}
        if self.unlabeled is not None:
            out["unlabeled"] = self.unlabeled
        if self.label_fraction is not None:
            out["label_fraction"] = self.label_fraction
        return out

    def classifier(self, *, cache_dir: str | Path | None = None, workers: int | None = None):
        """An unfitted :class:`earmark.Classifier` with these settings."""
        from earmark.classifier import Classifier

        return Classifier(
            self.model,
            features=self.features,
            audio=self.audio,
            params=self.params,
            seed=self.seed,
            cache_dir=cache_dir,
            workers=workers,
            train=self.train,
        )


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (one level: the sections)."""
    out = {}
    for key, value in d.items():
        if isinstance(value, Mapping) and not prefix and key in RECIPE_KEYS and key != "model":
            out |= _flat(value, f"{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out


def _build(d: Mapping[str, Any]) -> TrainSettings:
    from earmark.data.splits import SplitSettings

    unknown = sorted(set(d) - {*RECIPE_KEYS, "unlabeled", "label_fraction"})
    if unknown:
        raise SettingsError(unknown[0], "unknown setting")
    model = d.get("model") or "svm"
    if not isinstance(model, str):
        raise SettingsError("model", f"expected a model name, got {model!r}")
    try:
        spec = registry.get(model)
    except ParameterError as exc:
        raise SettingsError("model", str(exc)) from None
    seed = check_value(int, d.get("seed", 0), "seed")
    params = check_params(model, d.get("params") or {})
    features = None
    if d.get("features"):
        features = check_section(
            FeatureConfig, {**spec.default_features, **d["features"]}, prefix="features"
        )
    kind = features.kind if features is not None else spec.default_features.get("kind", "")
    try:
        registry.check_features(model, kind)
    except ParameterError as exc:
        raise SettingsError("features.kind", str(exc)) from None
    rate = spec.sample_rate or 16_000  # a model that takes one rate only: that rate
    if is_frontend(kind):  # a pretrained frontend's own rate
        rate = frontend_info(kind).sample_rate
    audio = check_section(
        AudioConfig, {"sample_rate": rate, "crop": "center", **(d.get("audio") or {})},
        prefix="audio",
    )  # fmt: skip
    train = None
    if spec.family == "neural":
        from earmark.training import TrainConfig

        train = check_section(
            TrainConfig,
            {"seed": seed, **spec.train_defaults, **(d.get("train") or {})},
            prefix="train",
        )
    elif d.get("train"):
        first = next(iter(d["train"]))
        raise SettingsError(
            f"train.{first}", f"training settings apply to networks; {model} is {spec.family}"
        )
    split = check_section(SplitSettings, {"seed": seed, **(d.get("split") or {})}, prefix="split")
    unlabeled = d.get("unlabeled")
    if unlabeled is not None:
        unlabeled = str(unlabeled)
        if not spec.semi_supervised:
            semi = ", ".join(n for n in registry.names() if registry.get(n).semi_supervised)
            raise SettingsError(
                "unlabeled",
                f"{model} learns from labelled audio only; unlabelled audio needs a "
                f"semi-supervised model ({semi})",
            )
    fraction = d.get("label_fraction")
    if fraction is not None:
        fraction = check_value(float, fraction, "label_fraction")
        if not 0.0 < fraction <= 1.0:
            raise SettingsError("label_fraction", f"expected a fraction in (0, 1], got {fraction}")
    return TrainSettings(
        model=model,
        params=params,
        features=features,
        audio=audio,
        train=train,
        split=split,
        seed=seed,
        unlabeled=unlabeled,
        label_fraction=fraction,
    )


def run_settings(run: str | Path) -> dict[str, Any]:
    """What the training run in directory ``run`` was started with, in the shape of a
    recipe: its :data:`SETTINGS_FILE`, with the training settings of its checkpoint
    (``run/checkpoint``) over them. Raises :class:`EarmarkError` when ``run`` holds no
    checkpoint (only networks write one).

    Both files are validated rather than trusted, as a model's are: the checkpoint by
    :func:`earmark.training.read_meta_checkpoint`; the settings file's size and nesting
    before it is parsed, its audio and feature settings against the artifact schema
    (:func:`earmark.artifact_schema.check_sections`: types, bounds and their relations), a
    network's hyper-parameters against :data:`earmark.artifact_schema.NEURAL_BOUNDS` (they
    size the network a resumed run builds), and every section against its declared types.
    A value the run's own files got wrong is one :class:`EarmarkError` line naming the file
    and the key (not a :class:`SettingsError`: no option of the caller's is at fault)."""
    from earmark.artifact import read_json
    from earmark.classifier import CHECKPOINT_DIR
    from earmark.training import read_meta_checkpoint

    run = Path(run)
    try:
        checkpoint = read_meta_checkpoint(run / CHECKPOINT_DIR)
    except (EarmarkError, OSError) as exc:
        raise EarmarkError(f"cannot resume {run}: {exc}") from None
    saved: dict[str, Any] = {}
    path = run / SETTINGS_FILE
    if path.is_file():
        try:
            doc = read_json(path, what=SETTINGS_FILE)
        except EarmarkError as exc:
            raise EarmarkError(f"cannot resume {run}: {exc}") from None
        saved = doc.get("settings") if isinstance(doc, dict) else None
        if not isinstance(saved, dict):
            raise EarmarkError(
                f"cannot resume {run}: {path}: settings: expected a mapping of the run's settings"
            )
    saved = {k: v for k, v in saved.items() if v is not None}
    saved["train"] = checkpoint["state"]["config"]
    _check_saved(run, saved, path)
    return saved


def _check_saved(run: Path, saved: dict[str, Any], path: Path) -> None:
    """The settings a run recorded (``saved``: its settings file's, with its checkpoint's
    training settings), checked as :func:`run_settings` says."""
    from earmark import artifact_schema as schema
    from earmark.classifier import CHECKPOINT_DIR
    from earmark.training import TrainConfig

    checkpoint = run / CHECKPOINT_DIR / "earmark.json"

    def refuse(where: Path, problem: object) -> EarmarkError:
        text = " ".join(str(problem).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        return EarmarkError(f"cannot resume {run}: {where}: {text}")

    try:
        if "model" not in saved:  # no settings file: only the checkpoint's training settings
            check_section(TrainConfig, saved["train"], prefix="state.config")
            return
        if "audio" in saved or "features" in saved:
            schema.check_sections(saved.get("audio", {}), saved.get("features"))
        model = saved["model"]
        if isinstance(model, str) and model in registry.names():
            family = registry.get(model).family
            schema.check_param_bounds(family, check_params(model, saved.get("params") or {}))
    except (SettingsError, schema.SchemaError) as exc:
        raise refuse(checkpoint if "model" not in saved else path, exc) from None
    try:
        _build(saved)
    except SettingsError as exc:
        if exc.key.startswith("train"):  # the checkpoint's training settings
            key = "state.config" + exc.key.removeprefix("train")
            raise refuse(checkpoint, f"{key}: {exc.problem}") from None
        raise refuse(path, exc) from None


def train_settings(
    recipe: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    resume: str | Path | None = None,
    names: Mapping[str, str] | None = None,
) -> TrainSettings:
    """The checked settings of a training job: the defaults, then ``recipe`` (a dict in the
    shape :func:`read_recipe` returns), then ``options`` (the same shape, plus
    ``unlabeled`` / ``label_fraction``; ``None`` values mean "not given").

    With ``resume`` (a run directory), the settings are the run's own
    (:func:`run_settings`); a recipe or option that differs from them (other than
    :data:`RESUME_FREE`) is refused. ``names`` maps dotted keys to what the caller calls
    them (``{"train.lr": "--lr"}``), for the error messages."""
    names = names or {}
    recipe = dict(recipe or {})
    given = _given(options or {})
    from_options = set(_flat(given)) - set(_flat(recipe))
    try:
        if resume is None:
            return _build(_merge(recipe, given))
        saved = run_settings(resume)
        if "model" not in saved:
            if "model" not in given and "model" not in recipe:
                raise SettingsError(
                    "model", f"{resume} records no {SETTINGS_FILE}; give the model it trained"
                )
            saved = _merge(recipe, given, saved)
        base = _build(saved)
        _refuse_changes(base, recipe, lambda key: f"{names.get('recipe', 'recipe')} {key}")
        _refuse_changes(base, given, lambda key: names.get(key, key))
        free = {k: v for k, v in _flat(given).items() if k in RESUME_FREE}
        if not free:
            return base
        d = base.to_dict()
        for key, value in free.items():
            section, name = key.split(".")
            d[section][name] = value
        return _build({k: v for k, v in d.items() if v is not None})
    except SettingsError as exc:
        if exc.key in names and exc.key in from_options:
            raise SettingsError(names[exc.key], exc.problem) from None
        raise


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the values that were not given (``None``, empty sections)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if v is not None}
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def _refuse_changes(
    base: TrainSettings, layer: Mapping[str, Any], label: Callable[[str], str]
) -> None:
    """Refuse the keys of ``layer`` whose checked value differs from ``base`` (a resumed run)."""
    if not layer:
        return
    conflict = "conflicts with the resumed run's {!r} (a resumed run keeps its settings)"
    if layer.get("model", base.model) != base.model:
        raise SettingsError(label("model"), f"{layer['model']!r} {conflict.format(base.model)}")
    merged = _build(_merge(base.to_dict() | {"features": base.to_dict()["features"] or {}}, layer))
    now, then = _flat(merged.to_dict()), _flat(base.to_dict())
    spec = registry.get(base.model)
    for key in _flat(layer):
        if key in RESUME_FREE:
            continue
        if key.startswith("params."):
            name = key.split(".", 1)[1]
            old = base.params.get(name, spec.defaults.get(name))
            new = merged.params.get(name)
        elif key.startswith("features.") and base.features is None:
            old = spec.default_features.get(key.split(".", 1)[1])
            new = now.get(key)
        else:
            old, new = then.get(key), now.get(key)
        if new != old:
            raise SettingsError(label(key), f"{new!r} {conflict.format(old)}")
