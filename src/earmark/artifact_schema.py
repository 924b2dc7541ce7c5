"""The schema of ``earmark.json``: every field typed and bounded, checked before anything is
allocated or any weight file is read.

An artifact is a file a user hands over, so nothing in it is trusted: a number becomes an
array size (``n_fft``, ``duration``, a network's ``widths``), a name becomes a path (``files``,
an ensemble's ``member_names``), a list becomes the output columns (``classes``). Each is
checked here, in this order:

1. the raw file: at most :data:`MAX_META_BYTES`, nested at most :data:`MAX_DEPTH` deep
   (counted on the bytes, before the JSON parser recurses into them);
2. the JSON: ``schema_version`` (an integer this earmark reads), ``family`` and the names in
   ``files`` (plain names: no separator, no ``..``) first, then the pydantic model of that
   family (strict types, bounds, unknown keys refused in the settings sections);
3. the relations between fields: ``win_length <= n_fft``, ``fmin < fmax <= sample_rate / 2``,
   a mel filterbank of at most 2**22 values, a window of at most :data:`MAX_WINDOW_SAMPLES`
   samples, unique class names, the hyper-parameters against the model's declared ones
   (:func:`earmark.checks.check_params`) and, for networks, against :data:`NEURAL_BOUNDS`,
   plain and unique member names and one finite, non-negative weight per ensemble member.

The bounds accept everything earmark writes itself (every registered model with its
defaults, every setting the command line takes); a violation is one
:class:`~earmark.artifact.ArtifactError` line naming the file and the field::

    runs/x/earmark.json: features.n_fft: must be <= 65536, got 1000000000

:func:`validate_meta` checks an artifact's ``earmark.json``, :func:`validate_onnx_meta` the
settings inside an exported ``.onnx`` file, :func:`validate_checkpoint_meta` a training
checkpoint's ``earmark.json`` (what ``train --resume`` reads), and :func:`check_sections`
the audio and feature settings a training run records (its ``settings.json``). pydantic (and
this module) loads only when an artifact is read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from earmark.errors import EarmarkError

__all__ = [
    "MAX_CLASSES",
    "MAX_DEPTH",
    "MAX_META_BYTES",
    "MAX_WINDOW_SAMPLES",
    "NEURAL_BOUNDS",
    "SchemaError",
    "check_param_bounds",
    "check_plain_name",
    "check_sections",
    "check_weights",
    "parse_json",
    "validate_checkpoint_meta",
    "validate_meta",
    "validate_onnx_meta",
]

#: The largest ``earmark.json`` read (earmark writes a few kB: settings, a training summary
#: with at most 50 skipped files, scalar metrics, one row per epoch).
MAX_META_BYTES = 16 * 2**20
#: The deepest nesting of arrays and objects read (earmark writes at most 5 levels).
MAX_DEPTH = 32
#: The most samples (all channels) in one window of the model: what ``predict`` allocates per
#: window (float32: 1 GiB). An hour at 74 kHz; earmark's clips are seconds long.
MAX_WINDOW_SAMPLES = 2**28
#: The most classes a model may have.
MAX_CLASSES = 100_000
_MAX_SECONDS = 86_400.0  # a day: the longest clip, window or accepted file
_MAX_NAME = 255  # characters of a file name, as on every file system earmark runs on
_MAX_LABEL = 1_024  # characters of a class name
_MAX_MEMBERS = 256
# mel bands x FFT bins of a mel filterbank (built when the features are): 512 bands of a
# 16384-point FFT; earmark's own are 40-64 bands of 512-1024 points
_MAX_FILTERBANK = 2**22

#: Bounds of the numeric hyper-parameters of the registered networks (a list's bounds hold
#: for each item; ``widths`` may have at most :data:`_MAX_BLOCKS` items). They decide how
#: large a network :meth:`earmark.Classifier.load` builds, so every int and float
#: hyper-parameter of a neural model has one (tested); the defaults are far inside them.
NEURAL_BOUNDS: dict[str, tuple[float, float]] = {
    "width": (1, 1024),
    "widths": (1, 1024),
    "hidden": (0, 4096),  # 0: the embedding head without a hidden layer
    "layers": (1, 32),
    "dim": (1, 4096),
    "heads": (1, 64),
    "patch_freq": (1, 1024),
    "patch_time": (1, 1024),
    "dropout": (0.0, 1.0),
    "groups": (0, 1024),
    "noise_dim": (1, 4096),
    "gen_width": (4, 1024),
    "unsupervised_weight": (0.0, 1e6),
    "real_label": (0.5, 1.0),
    "g_lr_ratio": (0.0, 1e6),
    "entropy_weight": (0.0, 1e6),
    "rampup_epochs": (0, 1_000_000),
    "sample_every": (0, 1_000_000),
    "collapse_ratio": (0.0, 1e6),
    "head_hidden": (0, 65_536),
    "backbone_lr_scale": (0.0, 1e6),
    "freeze_epochs": (0, 1_000_000),
    "min_frames": (8, 100_000),
}
_MAX_BLOCKS = 16


class SchemaError(EarmarkError):
    """One field of an artifact's settings is wrong: ``field`` is its dotted name
    (``features.n_fft``, ``classes[3]``; empty for the whole file), ``problem`` says what is
    wrong in a few words. Raised as :class:`~earmark.artifact.ArtifactError` by the loaders."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}" if field else problem)


# -- the raw file ----------------------------------------------------------------------------

# A JSON string (escapes included): its brackets are text, not nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``raw`` (strings skipped)."""
    a = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    step = (a == ord("[")).astype(np.int32) + (a == ord("{"))
    step -= (a == ord("]")).astype(np.int32) + (a == ord("}"))
    return int(np.cumsum(step).max()) if len(step) else 0


def parse_json(raw: bytes | str, *, what: str = "earmark.json") -> Any:
    """``raw`` parsed as JSON once its size and nesting are known to be bounded; raises
    :class:`SchemaError` (the whole file) for anything else."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_META_BYTES:
        raise SchemaError("", f"{len(raw)} bytes: more than an {what} holds ({MAX_META_BYTES})")
    depth = _depth(raw)
    if depth > MAX_DEPTH:
        raise SchemaError("", f"nested {depth} levels deep: more than an {what} holds")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge integers
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchemaError("", f"not valid JSON ({first})") from None


# -- the sections ----------------------------------------------------------------------------

_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Seconds = Annotated[float, Field(gt=0, le=_MAX_SECONDS, allow_inf_nan=False)]
_Hz = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]
_Label = Annotated[str, Field(min_length=1, max_length=_MAX_LABEL)]
_Text = Annotated[str, Field(max_length=1_000)]


class _Section(BaseModel):
    """A settings section: strict types (no ``"512"`` for 512, no ``true`` for 1), unknown
    keys refused (a misspelt or foreign setting is not silently ignored)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class _Open(BaseModel):
    """A record that may carry more keys than earmark reads (``save(extra=...)``)."""

    model_config = ConfigDict(strict=True, extra="allow")


class AudioSection(_Section):
    """:class:`earmark.audio.AudioConfig` as stored."""

    sample_rate: int = Field(16_000, ge=1_000, le=768_000)
    channels: int = Field(1, ge=1, le=64)
    channel_policy: Literal["downmix", "pick", "duplicate"] = "downmix"
    channel: int = Field(0, ge=0, le=1023)
    duration: _Seconds | None = None
    crop: Literal["start", "center", "random"] = "center"
    pad: Literal["end", "both"] = "end"
    normalize: Literal["peak", "rms"] | None = None
    target_db: Annotated[float, Field(ge=-200, le=60, allow_inf_nan=False)] | None = None
    max_duration: Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)] | None = 3600.0


class FeaturesSection(_Section):
    """:class:`earmark.features.FeatureConfig` as stored."""

    kind: Literal["waveform", "stft", "logmel", "mfcc", "handcrafted", "aisfx", "birdnet"] = (
        "logmel"
    )
    n_fft: int = Field(512, ge=1, le=65_536)
    win_length: int | None = Field(400, ge=1, le=65_536)
    hop_length: int = Field(160, ge=1, le=65_536)
    n_mels: int | None = Field(None, ge=1, le=1_024)
    fmin: _Hz = 0.0
    fmax: _Hz | None = None
    top_db: Annotated[float, Field(gt=0, le=1_000, allow_inf_nan=False)] | None = 80.0
    n_mfcc: int | None = Field(None, ge=1, le=1_024)
    deltas: int = Field(0, ge=0, le=2)
    stats: list[Annotated[str, Field(pattern=r"^(mean|std|min|max|p(100|[0-9]{1,2}))$")]] = Field(
        default_factory=lambda: ["mean", "std", "min", "max", "p10", "p50", "p90"],
        min_length=1,
        max_length=32,
    )
    handcrafted_version: Literal[1, 2] = 2


#: The feature kinds that are pretrained frontends (``earmark.features.pretrained``).
PRETRAINED_KINDS = ("aisfx", "birdnet")


class FrontendSection(_Section):
    """The pretrained frontend a model is built on (``frontend``, with ``aisfx`` /
    ``birdnet`` features): what it is, and the license and attribution of its weights."""

    name: Literal["aisfx", "birdnet"]
    sample_rate: int = Field(ge=1_000, le=768_000)
    window_seconds: _Seconds
    dim: int = Field(ge=1, le=65_536)
    license: Annotated[str, Field(min_length=1, max_length=200)]
    attribution: Annotated[str, Field(min_length=1, max_length=2_000)]
    runtime: Literal["torch", "tflite"]
    weights: Annotated[str, Field(min_length=1, max_length=500)]


class FileEntry(_Section):
    """One entry of ``files``: a weight file's SHA-256 and size, or a folder (ensemble
    members, each an artifact checked on its own)."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    bytes: int | None = Field(None, ge=0, le=2**40)
    directory: Literal[True] | None = None


class GeneratorSection(_Section):
    """An ``sgan``'s generator: the patch shape ``[channels, bins, frames]`` it makes."""

    shape: list[Annotated[int, Field(ge=1, le=65_536)]] = Field(min_length=3, max_length=3)
    noise_dim: int = Field(ge=1, le=4_096)
    width: int = Field(ge=4, le=1_024)


class DataRecord(_Open):
    """How the training data was split (``earmark evaluate`` re-splits with it)."""

    split: dict[str, Any] | None = None
    sizes: dict[str, Any] | None = None
    test_files: list[str] | None = None


class _Meta(_Open):
    schema_version: int = Field(ge=1)
    earmark_version: _Text
    created: _Text | None = None
    family: str
    model: _Text
    classes: list[_Label] = Field(min_length=1, max_length=MAX_CLASSES)
    audio: AudioSection
    features: FeaturesSection
    files: dict[str, FileEntry] = Field(max_length=64)
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: DataRecord | None = None
    # multi-label: sigmoid scores, each class on its own (absent: single-label, softmax)
    multi_label: bool = False
    # per-class decision thresholds on the scores (``earmark calibrate`` writes them)
    thresholds: dict[_Label, Annotated[float, Field(ge=0.0, le=1.0)]] | None = None


class ModelMeta(_Meta):
    """A trained classifier (``classical`` or ``neural``)."""

    family: Literal["classical", "neural"]
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(0, ge=-(2**63), lt=2**64)
    pooling: Literal["mean", "max"] = "mean"
    clip_seconds: _Seconds
    training: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    n_features: int | None = Field(None, ge=1, le=2**24)
    generator: GeneratorSection | None = None
    frontend: FrontendSection | None = None


class EnsembleMeta(_Meta):
    """An ensemble: its members are artifacts in ``members/<name>``."""

    family: Literal["ensemble"]
    method: Literal["mean", "weighted", "vote"]
    weights: list[_Finite] | None = Field(None, max_length=_MAX_MEMBERS)
    member_names: list[str] = Field(min_length=1, max_length=_MAX_MEMBERS)


class OnnxMeta(_Open):
    """The settings inside an exported ``.onnx`` file (or, for older exports, beside it)."""

    family: Literal["onnx"] = "onnx"
    model: _Text
    classes: list[_Label] = Field(min_length=1, max_length=MAX_CLASSES)
    audio: AudioSection
    features: FeaturesSection
    clip_seconds: _Seconds
    pooling: Literal["mean", "max"] = "mean"
    metrics: dict[str, Any] = Field(default_factory=dict)
    multi_label: bool = False
    thresholds: dict[_Label, Annotated[float, Field(ge=0.0, le=1.0)]] | None = None
    export_version: int = Field(1, ge=1, le=100)
    frontend: FrontendSection | None = None


_MAX_EPOCHS = 1_000_000
_SlotName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
_OptimizerName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")]


class ParamGroup(_Open):
    """One parameter group of a checkpointed optimizer: the indices of its parameters (its
    hyper-parameters are the run's training settings, not read from here)."""

    params: list[Annotated[int, Field(ge=0, lt=2**31)]] = Field(max_length=1_000_000)


class OptimizerRecord(_Section):
    """What restores an optimizer beside its tensors: its groups, and the state slots
    (``exp_avg``, ``step``, ...) of each parameter index that has state."""

    param_groups: list[ParamGroup] = Field(min_length=1, max_length=64)
    slots: dict[Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], list[_SlotName]] = Field(
        max_length=1_000_000
    )


class CheckpointState(_Section):
    """Where training stopped: the last finished epoch (0-based), the history of every
    epoch, early stopping's bookkeeping and the training settings."""

    epoch: int = Field(ge=0, lt=_MAX_EPOCHS)
    history: list[dict[str, Any]] = Field(max_length=_MAX_EPOCHS)
    best_value: float  # -inf until an epoch improves on nothing (a NaN loss)
    best_epoch: int = Field(ge=0, le=_MAX_EPOCHS)
    bad_epochs: int = Field(ge=0, le=_MAX_EPOCHS)
    config: dict[str, Any]


class CheckpointMeta(_Open):
    """A training checkpoint's ``earmark.json``: the state, the first optimizer's record at
    the top level (as it always was), the others by name, and the files' checksums."""

    schema_version: int = Field(ge=1)
    kind: Literal["checkpoint"]
    state: CheckpointState
    param_groups: list[ParamGroup] | None = Field(None, min_length=1, max_length=64)
    slots: dict[Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], list[_SlotName]] | None = Field(
        None, max_length=1_000_000
    )
    optimizers: dict[_OptimizerName, OptimizerRecord] = Field(default_factory=dict, max_length=16)
    files: dict[str, FileEntry] = Field(max_length=64)


_FAMILIES: dict[str, type[_Meta]] = {
    "classical": ModelMeta,
    "neural": ModelMeta,
    "ensemble": EnsembleMeta,
}
#: The weight file each family must list.
WEIGHT_FILES = {"classical": "model.skops", "neural": "model.safetensors", "ensemble": "members"}


# -- errors in one line ----------------------------------------------------------------------


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(loc: tuple[Any, ...]) -> str:
    """A pydantic location as earmark names fields: ``features.n_fft``, ``classes[2]``,
    ``files['../x']`` (a key that is not a plain word is quoted)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).isidentifier():
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _problem(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    got = f", got {_short(err.get('input'))}"
    words = {
        "less_than_equal": lambda: f"must be <= {ctx.get('le')}{got}",
        "less_than": lambda: f"must be < {ctx.get('lt')}{got}",
        "greater_than_equal": lambda: f"must be >= {ctx.get('ge')}{got}",
        "greater_than": lambda: f"must be > {ctx.get('gt')}{got}",
        "finite_number": lambda: f"must be a finite number{got}",
        "int_type": lambda: f"expected an integer{got}",
        "float_type": lambda: f"expected a number{got}",
        "bool_type": lambda: f"expected true or false{got}",
        "string_type": lambda: f"expected text{got}",
        "list_type": lambda: f"expected a list{got}",
        "dict_type": lambda: f"expected a mapping (a JSON object){got}",
        "model_type": lambda: f"expected a mapping (a JSON object){got}",
        "literal_error": lambda: f"expected {ctx.get('expected')}{got}",
        "missing": lambda: "missing",
        "extra_forbidden": lambda: f"unknown setting{got}",
        "too_short": lambda: f"expected at least {ctx.get('min_length')} item(s){got}",
        "too_long": lambda: f"expected at most {ctx.get('max_length')} items",
        "string_too_short": lambda: "must not be empty",
        "string_too_long": lambda: f"longer than {ctx.get('max_length')} characters",
        "string_pattern_mismatch": lambda: f"not a valid value{got}",
    }
    make = words.get(kind)
    return make() if make else f"{err.get('msg', kind)}{got}"


def _first_error(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> SchemaError:
    err = exc.errors(include_url=False)[0]
    problem = _problem(err).replace("\n", " ")
    return SchemaError(_where((*prefix, *err["loc"])), problem)


def _validate(model: type[BaseModel], data: Any, prefix: tuple[Any, ...] = ()) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, prefix) from None


# -- the relations between fields ------------------------------------------------------------


def check_plain_name(name: Any, field: str) -> str:
    """``name`` is a plain file name inside its folder: text, not empty, not ``.`` or
    ``..``, no separator or NUL, at most 255 characters. Raises :class:`SchemaError`."""
    if not isinstance(name, str):
        raise SchemaError(field, f"expected a file name, got {_short(name)}")
    if (
        name in ("", ".", "..")
        or any(c in name for c in "/\\\0")
        or len(name) > _MAX_NAME
        or Path(name).is_absolute()
    ):
        raise SchemaError(field, f"{_short(name)} is not a plain name inside the artifact")
    return name


def _check_audio_features(
    audio: AudioSection, features: FeaturesSection, seconds: list[tuple[str, float | None]]
) -> None:
    if features.win_length is not None and features.win_length > features.n_fft:
        raise SchemaError(
            "features.win_length",
            f"must be <= n_fft ({features.n_fft}), got {features.win_length}",
        )
    if features.kind in ("logmel", "mfcc"):
        nyquist = audio.sample_rate / 2
        fmax = nyquist if features.fmax is None else features.fmax
        if fmax > nyquist + 1e-6:
            raise SchemaError(
                "features.fmax", f"must be <= sample_rate / 2 ({nyquist:g}), got {fmax:g}"
            )
        if features.fmin >= fmax:
            raise SchemaError("features.fmin", f"must be < fmax ({fmax:g}), got {features.fmin:g}")
    if features.kind in ("logmel", "mfcc", "handcrafted"):
        n_mels = features.n_mels if features.n_mels is not None else 64
        cells = n_mels * (features.n_fft // 2 + 1)
        if cells > _MAX_FILTERBANK:
            raise SchemaError(
                "features.n_mels",
                f"{n_mels} mel bands of {features.n_fft // 2 + 1} FFT bins is a filterbank of "
                f"{cells} values: more than {_MAX_FILTERBANK}",
            )
    if features.kind == "mfcc" and features.n_mfcc is not None:
        n_mels = features.n_mels if features.n_mels is not None else 64
        if features.n_mfcc > n_mels:
            raise SchemaError(
                "features.n_mfcc", f"must be <= n_mels ({n_mels}), got {features.n_mfcc}"
            )
    for field, value in seconds:
        if value is None:
            continue
        samples = math.ceil(value * audio.sample_rate) * audio.channels
        if samples > MAX_WINDOW_SAMPLES:
            raise SchemaError(
                field,
                f"{value:g} s at {audio.sample_rate} Hz x {audio.channels} channel(s) is "
                f"{samples} samples per window: more than {MAX_WINDOW_SAMPLES}",
            )


def _check_frontend(
    audio: AudioSection, features: FeaturesSection, frontend: FrontendSection | None
) -> None:
    """Features of a pretrained frontend need its record (``frontend``), of that frontend,
    at its rate; other features have none."""
    if features.kind not in PRETRAINED_KINDS:
        if frontend is not None:
            raise SchemaError("frontend", f"a {features.kind} model has no pretrained frontend")
        return
    if frontend is None:
        raise SchemaError("frontend", f"missing ({features.kind} features record their frontend)")
    if frontend.name != features.kind:
        raise SchemaError("frontend.name", f"must be {features.kind!r}, got {frontend.name!r}")
    if audio.sample_rate != frontend.sample_rate:
        raise SchemaError(
            "audio.sample_rate",
            f"must be the {frontend.name} frontend's {frontend.sample_rate} Hz, "
            f"got {audio.sample_rate}",
        )


def _check_classes(classes: list[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(classes):
        if name in seen:
            raise SchemaError(f"classes[{i}]", f"{_short(name)} is listed twice")
        seen.add(name)


def check_param_bounds(family: str, params: dict[str, Any]) -> None:
    """A model's hyper-parameters, already checked against its declared types
    (:func:`earmark.checks.check_params`, which the loader calls: this module imports
    nothing of the model registry), within bounds: no NaN or infinite number, and a
    network's numbers within :data:`NEURAL_BOUNDS` (lists: each item, at most 16 items).
    Raises :class:`SchemaError` naming ``params.<name>``."""
    for name, value in params.items():
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            field = f"params.{name}" + (f"[{i}]" if isinstance(value, list) else "")
            if isinstance(item, float) and not math.isfinite(item):
                raise SchemaError(field, f"must be a finite number, got {item}")
            bounds = NEURAL_BOUNDS.get(name) if family == "neural" else None
            numeric = isinstance(item, int | float) and not isinstance(item, bool)
            if bounds is not None and numeric and not bounds[0] <= item <= bounds[1]:
                lo, hi = bounds
                raise SchemaError(field, f"must be in [{lo:g}, {hi:g}], got {item}")
        if isinstance(value, list) and family == "neural" and len(value) > _MAX_BLOCKS:
            raise SchemaError(f"params.{name}", f"at most {_MAX_BLOCKS} items, got {len(value)}")
        if isinstance(value, list) and family == "neural" and not value:
            raise SchemaError(f"params.{name}", "must not be empty")


def _check_generator(g: GeneratorSection) -> None:
    c, f, t = g.shape
    units = 2 * g.width * math.ceil(f / 4) * math.ceil(t / 4) * (g.noise_dim + 1)
    if c > 64 or units > 2**26:  # earmark's: 5 million (32 wide, 40 x 501 patches)
        raise SchemaError("generator", f"a generator of {units} weights: more than earmark makes")


def _check_files(files: dict[str, FileEntry], family: str) -> None:
    for name, entry in files.items():
        check_plain_name(name, f"files[{name!r}]")
        if (entry.sha256 is None) == (entry.directory is None):
            raise SchemaError(f"files[{name!r}]", "expected either a sha256 or directory: true")
    weights = WEIGHT_FILES[family]
    entry = files.get(weights)
    if entry is None or (entry.directory is None) == (family == "ensemble"):
        what = "folder" if family == "ensemble" else "file"
        raise SchemaError("files", f"a {family} model lists no {weights} {what}")


def _check_ensemble(meta: EnsembleMeta) -> None:
    seen: set[str] = set()
    for i, name in enumerate(meta.member_names):
        check_plain_name(name, f"member_names[{i}]")
        if name in seen:
            raise SchemaError(f"member_names[{i}]", f"{name!r} is listed twice")
        seen.add(name)
    if meta.weights is not None:
        check_weights(meta.weights, len(meta.member_names), field="weights")
    elif meta.method == "weighted":
        raise SchemaError("weights", "the weighted method needs one weight per member")


def check_weights(weights: Any, members: int, *, field: str = "weights") -> list[float]:
    """``weights`` as floats: one finite, non-negative number per member, not all zero.
    Raises :class:`SchemaError` naming ``field``."""
    if isinstance(weights, str | bytes) or not isinstance(weights, Sequence | np.ndarray):
        raise SchemaError(field, f"expected one number per member, got {_short(weights)}")
    out = []
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int | float | np.integer | np.floating):
            raise SchemaError(f"{field}[{i}]", f"expected a number, got {_short(w)}")
        if not math.isfinite(w) or w < 0:
            raise SchemaError(f"{field}[{i}]", f"must be a finite number >= 0, got {w}")
        out.append(float(w))
    if len(out) != members:
        raise SchemaError(field, f"expected one weight per member ({members}), got {len(out)}")
    if sum(out) <= 0:
        raise SchemaError(field, "the weights must not all be zero")
    return out


# -- entry points ----------------------------------------------------------------------------


def _check_version(meta: dict[str, Any], newest: int) -> None:
    version = meta.get("schema_version")
    if "schema_version" not in meta:
        raise SchemaError("schema_version", "missing")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SchemaError("schema_version", f"expected a positive integer, got {_short(version)}")
    if version > newest:
        raise SchemaError(
            "schema_version",
            f"{version} is newer than this earmark reads ({newest}); upgrade earmark",
        )


def validate_meta(meta: Any, *, newest: int) -> _Meta:
    """Check a parsed ``earmark.json`` (``newest``: the schema version this earmark writes);
    return its validated model. Raises :class:`SchemaError`."""
    if not isinstance(meta, dict):
        raise SchemaError("", f"expected a JSON object, got {type(meta).__name__}")
    _check_version(meta, newest)
    family = meta.get("family")
    if family not in _FAMILIES:
        if "family" not in meta:
            raise SchemaError("family", "missing")
        raise SchemaError("family", f"expected one of {', '.join(_FAMILIES)}, got {_short(family)}")
    if isinstance(meta.get("files"), dict):  # a name is a path: refused before anything else
        for name in meta["files"]:
            check_plain_name(name, f"files[{name!r}]")
    model = _validate(_FAMILIES[family], meta)
    _check_classes(model.classes)
    _check_files(model.files, family)
    _check_thresholds(model.thresholds, model.classes)
    seconds = [("audio.duration", model.audio.duration)]
    if isinstance(model, ModelMeta):
        seconds.append(("clip_seconds", model.clip_seconds))
        if model.generator is not None:
            _check_generator(model.generator)
        if family == "classical" and model.n_features is None:
            raise SchemaError("n_features", "missing")
        _check_frontend(model.audio, model.features, model.frontend)
    else:
        _check_ensemble(model)  # type: ignore[arg-type]
    _check_audio_features(model.audio, model.features, seconds)
    return model


def _check_thresholds(thresholds: dict[str, float] | None, classes: list[str]) -> None:
    """Per-class thresholds name classes of the model (each at most once, by construction)."""
    unknown = sorted(set(thresholds or {}) - set(classes))
    if unknown:
        raise SchemaError("thresholds", f"{_short(unknown[0])} is not one of the classes")


def validate_onnx_meta(meta: Any) -> OnnxMeta:
    """Check the earmark settings of an exported ONNX model. Raises :class:`SchemaError`."""
    if not isinstance(meta, dict):
        raise SchemaError("", f"expected a JSON object, got {type(meta).__name__}")
    model = _validate(OnnxMeta, meta)
    _check_classes(model.classes)
    _check_thresholds(model.thresholds, model.classes)
    seconds = [("audio.duration", model.audio.duration), ("clip_seconds", model.clip_seconds)]
    _check_audio_features(model.audio, model.features, seconds)
    _check_frontend(model.audio, model.features, model.frontend)
    return model


def validate_checkpoint_meta(meta: Any, *, newest: int) -> CheckpointMeta:
    """Check a parsed training checkpoint's ``earmark.json`` (``newest``: the schema version
    this earmark writes): its kind, state, optimizer records and files (plain names, each a
    file with its SHA-256; no folders). Raises :class:`SchemaError`."""
    if not isinstance(meta, dict):
        raise SchemaError("", f"expected a JSON object, got {type(meta).__name__}")
    _check_version(meta, newest)
    if meta.get("kind") != "checkpoint":
        raise SchemaError("kind", f"not a training checkpoint, got {_short(meta.get('kind'))}")
    if isinstance(meta.get("files"), dict):
        for name in meta["files"]:
            check_plain_name(name, f"files[{name!r}]")
    model = _validate(CheckpointMeta, meta)
    for name, entry in model.files.items():
        if entry.sha256 is None or entry.directory is not None:
            raise SchemaError(f"files[{name!r}]", "expected a file with its sha256")
    if (model.param_groups is None) != (model.slots is None):
        raise SchemaError("slots" if model.slots is None else "param_groups", "missing")
    return model


def check_sections(audio: Any, features: Any = None) -> None:
    """The audio and feature settings a training run records (``settings.json``; ``features``
    ``None``: the model's own), checked as an artifact's are: types, bounds and the relations
    between them. Raises :class:`SchemaError` naming ``audio.<key>`` / ``features.<key>``."""
    a = _validate(AudioSection, audio, ("audio",))
    f = None if features is None else _validate(FeaturesSection, features, ("features",))
    seconds = [("audio.duration", a.duration)]
    if f is None:  # the model's own feature settings are earmark's: only the window
        f = FeaturesSection(kind="waveform")
    _check_audio_features(a, f, seconds)
