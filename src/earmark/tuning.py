"""Model selection: a hyper-parameter search (Optuna) scored by grouped cross-validation.

``earmark tune`` asks Optuna's TPE sampler for a setting of the search space, scores it by
k-fold cross-validation on the data (:func:`earmark.workflows.run_cv`: group k-fold when the
data has groups, the data set's own folds when it has them), and reports the running mean
after each fold, so the median pruner can stop a setting that is clearly worse than the
finished ones before its last fold. The study lives in SQLite (``DIR/study.db``):

* an interrupted search (Ctrl-C, a kill) resumes when the same command runs again: the
  finished trials are kept, the one that was running is marked failed and run again, and
  ``trials`` is the total wanted. Each trial's sampler is seeded by ``seed`` and the number
  of trials before it, so a resumed search proposes what an uninterrupted one would have;
* the study records what it was started with (data, model, settings, space, metric,
  folds, seed); another search into the same folder is refused unless ``overwrite``.

After every trial ``DIR/trials.csv`` (one row per trial) and ``DIR/best.yaml`` (the best
setting as a recipe for ``earmark train --config``) are rewritten atomically.

A search space maps settings (``params.C``, ``train.lr``) to a range (``low``, ``high``,
``log``, ``step``) or a list of choices; whether a range is of integers or of numbers comes
from the setting's declared type. :func:`default_space` derives one from the model's
declared hyper-parameters (their defaults set the ranges) and, for networks, the training
settings; :func:`read_space` reads a user's YAML file. Both are checked the same way: every
key known, every bound and choice of the setting's type and accepted by the settings it
builds, one line naming the key otherwise.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from earmark.atomic import folder_lock
from earmark.checks import SettingsError, check_value
from earmark.errors import EarmarkError, Interrupted, ParameterError
from earmark.evaluation import METRICS
from earmark.models import registry
from earmark.settings import TrainSettings, load_yaml, train_settings

if TYPE_CHECKING:
    from earmark.data.manifest import Manifest
    from earmark.models.spec import Param

__all__ = [
    "BEST_FILE",
    "STUDY_FILE",
    "TRIALS_FILE",
    "Dimension",
    "SearchSpace",
    "TrialRecord",
    "TuneResult",
    "default_space",
    "read_space",
    "trial_seed",
    "tune",
]

STUDY_FILE = "study.db"
BEST_FILE = "best.yaml"
TRIALS_FILE = "trials.csv"
LOCK_FILE = ".tune.lock"
#: What a tune folder may hold (SQLite adds its journal beside the database).
TUNE_FILES = frozenset({STUDY_FILE, f"{STUDY_FILE}-journal", BEST_FILE, TRIALS_FILE, LOCK_FILE})
STUDY_NAME = "earmark-tune"
#: Sections of a search space (``train``: networks only).
SPACE_SECTIONS = ("params", "train")
#: Failed trials in a row (errors, not interruptions) after which a search stops.
MAX_FAILURES = 3

_PRIMITIVE = (type(None), bool, int, float, str)


# -- the search space ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """One searched setting: ``key`` (``params.C``, ``train.lr``), and either a range
    (``low`` to ``high``, ``kind`` ``int`` or ``float``, on a ``log`` scale or in ``step``s)
    or ``choices`` (``kind`` ``choice``: any plain values, lists too)."""

    key: str
    kind: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def _encoded(self) -> list[Any]:
        # Optuna stores choices of plain types only; lists (a network's widths) go as JSON.
        return [c if isinstance(c, _PRIMITIVE) else json.dumps(c) for c in self.choices]

    def suggest(self, trial: Any) -> Any:
        """The value the Optuna ``trial`` proposes for this setting."""
        if self.kind == "choice":
            picked = trial.suggest_categorical(self.key, self._encoded())
            return self.decode(picked)
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def encode(self, value: Any) -> Any:
        """``value`` as Optuna stores it (for a trial queued with fixed values)."""
        if self.kind != "choice":
            return value
        return self._encoded()[self.choices.index(value)]

    def decode(self, stored: Any) -> Any:
        """The setting's value from what Optuna stored."""
        if self.kind != "choice":
            return stored
        return self.choices[self._encoded().index(stored)]

    def values(self) -> list[Any]:
        """The extremes of a range, or every choice (what :meth:`SearchSpace.check` builds)."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]

    def to_dict(self) -> Any:
        """The dimension as a search-space file writes it."""
        if self.kind == "choice":
            return list(self.choices)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def describe(self) -> str:
        if self.kind == "choice":
            return " | ".join(json.dumps(c) for c in self.choices)
        scale = ", log" if self.log else f", step {self.step}" if self.step else ""
        return f"{self.kind} {self.low:g} .. {self.high:g}{scale}"


@dataclass(frozen=True)
class SearchSpace:
    """The settings a search varies, each a :class:`Dimension`; every other setting stays
    as the base settings have it."""

    dimensions: tuple[Dimension, ...]

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """In the shape of a search-space file (sections ``params``, ``train``)."""
        out: dict[str, dict[str, Any]] = {}
        for dim in self.dimensions:
            section, name = dim.key.split(".", 1)
            out.setdefault(section, {})[name] = dim.to_dict()
        return out

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The values a trial proposes, by dotted key."""
        return {dim.key: dim.suggest(trial) for dim in self.dimensions}

    def apply(self, base: TrainSettings, values: Mapping[str, Any]) -> TrainSettings:
        """``base`` with ``values`` (dotted keys) in place, checked as a recipe is."""
        recipe = base.to_dict()
        for key, value in values.items():
            section, name = key.split(".", 1)
            recipe[section] = {**(recipe.get(section) or {}), name: value}
        recipe = {k: v for k, v in recipe.items() if v is not None}
        return train_settings(recipe)

    def check(self, base: TrainSettings, *, where: str = "space") -> None:
        """Build ``base`` with each bound and choice of every dimension (the others at
        their lowest), so a value the settings refuse (``epochs: 0``, an unknown
        augmentation preset) is one :class:`SettingsError` naming the key before any
        trial runs."""
        if not self.dimensions:
            raise SettingsError(where, "nothing to search: give at least one setting")
        lowest = {d.key: d.values()[0] for d in self.dimensions}
        for dim in self.dimensions:
            for value in dim.values():
                try:
                    self.apply(base, {**lowest, dim.key: value})
                except SettingsError as exc:
                    problem = exc.problem if exc.key == dim.key else str(exc)
                    raise SettingsError(f"{where}: {dim.key}", f"{value!r}: {problem}") from None


def _target_type(settings: TrainSettings, section: str, name: str, where: str) -> Any:
    """The declared type of setting ``section.name`` of ``settings``' model."""
    spec = registry.get(settings.model)
    if section == "params":
        param = spec.param(name)
        if param is None:
            known = ", ".join(p.name for p in spec.params) or "none"
            raise SettingsError(
                f"{where}: params.{name}",
                f"unknown hyper-parameter of {settings.model} (known: {known})",
            )
        return param.type
    if spec.family != "neural":
        raise SettingsError(
            f"{where}: train.{name}",
            f"training settings apply to networks; {settings.model} is {spec.family}",
        )
    from earmark.training import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(TrainConfig))
        raise SettingsError(f"{where}: train.{name}", f"unknown setting (known: {known})")
    return hints[name]


def _numeric_kind(tp: Any) -> str | None:
    """``float`` when the type takes a fraction, ``int`` when it takes whole numbers only,
    ``None`` when it takes no number (a range cannot be searched)."""
    for probe, kind in ((0.5, "float"), (2, "int")):
        try:
            out = check_value(tp, probe, "probe")
        except SettingsError:
            continue
        if isinstance(out, float) or (isinstance(out, int) and not isinstance(out, bool)):
            return kind
    return None


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingsError(key, f"expected a finite number, got {value!r}")
    return value


def _dimension(settings: TrainSettings, key: str, spec: Any, where: str) -> Dimension:
    """One dimension of a space file: a list of choices, or a mapping with ``low`` and
    ``high`` (and ``log``, ``step``) or ``choices``."""
    section, name = key.split(".", 1)
    tp = _target_type(settings, section, name, where)
    label = f"{where}: {key}"
    if isinstance(spec, Mapping) and set(spec) == {"choices"}:
        spec = spec["choices"]
    if isinstance(spec, list):
        if not spec:
            raise SettingsError(label, "an empty list of choices")
        choices = tuple(check_value(tp, c, label) for c in spec)
        try:
            json.dumps(list(choices))
        except TypeError:
            raise SettingsError(label, f"choices must be plain values, got {spec!r}") from None
        return Dimension(key, "choice", choices=choices)
    if not isinstance(spec, Mapping):
        raise SettingsError(
            label, f"expected {{low, high[, log, step]}} or a list of choices, got {spec!r}"
        )
    unknown = sorted(set(spec) - {"low", "high", "log", "step"})
    if unknown:
        raise SettingsError(
            f"{label}.{unknown[0]}", "unknown key (known: low, high, log, step, choices)"
        )
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise SettingsError(label, f"a range needs low and high; {missing[0]} is missing")
    kind = _numeric_kind(tp)
    if kind is None:
        raise SettingsError(
            label, f"takes {_describe(tp)}, not a number: give a list of choices instead"
        )
    low, high = (_number(spec[k], f"{label}.{k}") for k in ("low", "high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SettingsError(f"{label}.log", f"expected true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, f"{label}.step")
        if step <= 0:
            raise SettingsError(f"{label}.step", f"must be above 0, got {step}")
        if log and step != 1:
            raise SettingsError(label, "a log scale takes no step")
    if kind == "int":
        for k, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and v != int(v):
                raise SettingsError(f"{label}.{k}", f"{name} takes integers, got {v}")
        low, high = int(low), int(high)
        step = None if step is None else int(step)
    else:
        low, high = float(low), float(high)
    if low >= high:
        raise SettingsError(label, f"low must be below high, got {low} and {high}")
    if log and low <= 0:
        raise SettingsError(label, f"a log scale needs low above 0, got {low}")
    return Dimension(key, kind, low=low, high=high, log=log, step=step)


def _describe(tp: Any) -> str:
    from earmark.checks import describe_type

    return describe_type(tp)


def space_from_dict(doc: Any, settings: TrainSettings, *, where: str = "space") -> SearchSpace:
    """A :class:`SearchSpace` from plain data in the shape of a space file (sections
    ``params`` and, for networks, ``train``), checked against ``settings``."""
    if not isinstance(doc, Mapping):
        raise SettingsError(where, f"a search space is a mapping of {', '.join(SPACE_SECTIONS)}")
    dims = []
    for section, entries in doc.items():
        if section not in SPACE_SECTIONS:
            raise SettingsError(
                f"{where}: {section}", f"unknown section (known: {', '.join(SPACE_SECTIONS)})"
            )
        if not isinstance(entries, Mapping):
            raise SettingsError(
                f"{where}: {section}", f"expected a mapping of settings, got {entries!r}"
            )
        for name, spec in entries.items():
            dims.append(_dimension(settings, f"{section}.{name}", spec, where))
    space = SearchSpace(tuple(dims))
    space.check(settings, where=where)
    return space


def read_space(path: str | Path, settings: TrainSettings) -> SearchSpace:
    """The search space of a YAML file, checked against ``settings`` (its model and the
    settings every trial starts from)::

        params:
          C: {low: 0.01, high: 100, log: true}
          kernel: [rbf, linear]
        train:
          lr: {low: 1.0e-4, high: 1.0e-2, log: true}
          epochs: {low: 10, high: 40, step: 10}

    An unreadable file is an :class:`EarmarkError`; a wrong key or value a
    :class:`SettingsError` naming the file and the key."""
    import yaml

    path = Path(path)
    try:
        doc = load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EarmarkError(f"{path}: cannot read the search space ({first})") from None
    if doc is None:
        raise SettingsError(str(path), "nothing to search: the file is empty")
    return space_from_dict(doc, settings, where=str(path))


def _param_range(p: Param) -> Any:
    """The default range of hyper-parameter ``p`` (from its declared default), or ``None``
    when it is not searched by default. Ranges span the values that change a model's
    behaviour, around the model's own default."""
    d = p.default
    if p.name == "C":
        return {"low": d / 100, "high": d * 100, "log": True}
    if p.name == "gamma":  # the learners see standardized features: "scale" is 1 / n_features
        return {"low": 1e-5, "high": 1e-2, "log": True}
    if p.name == "n_estimators":
        return {"low": max(10, d // 6), "high": d * 2, "log": True}
    if p.name == "max_depth":
        return [None, 4, 8, 16, 32]
    if p.name == "min_samples_leaf":
        return {"low": 1, "high": 8}
    if p.name == "learning_rate":
        return {"low": 0.01, "high": 0.3, "log": True}
    if p.name == "max_leaf_nodes":
        return {"low": 8, "high": 128, "log": True}
    if p.name == "l2_regularization":
        return {"low": 1e-4, "high": 10.0, "log": True}
    if p.name == "n_neighbors":
        return {"low": 1, "high": 25}
    if p.name == "weights":
        return ["uniform", "distance"]
    if p.name == "var_smoothing":
        return {"low": 1e-12, "high": 1e-3, "log": True}
    if p.name == "dropout":
        return {"low": 0.0, "high": 0.5}
    if p.name in ("width", "hidden"):  # half, as is, double
        return [max(1, d // 2), d, d * 2]
    if p.name == "widths":
        return [[max(1, w // 2) for w in d], list(d), [w * 2 for w in d]]
    if p.name == "layers":
        return {"low": 1, "high": 3}
    return None


def default_space(settings: TrainSettings) -> SearchSpace:
    """The search space of ``settings``' model: its declared hyper-parameters that change
    what it learns (``C`` and ``gamma`` of an SVM, ``n_estimators`` and ``max_depth`` of a
    forest, a network's ``dropout`` and width), ranged around their defaults; for networks
    also the peak learning rate (a tenth to ten times the base's), weight decay, the
    augmentation preset and the epochs (a quarter of the base's to all of them)."""
    spec = registry.get(settings.model)
    doc: dict[str, dict[str, Any]] = {}
    for p in spec.params:
        rng = _param_range(p)
        if rng is not None:
            doc.setdefault("params", {})[p.name] = rng
    if spec.family == "neural":
        t = settings.train
        doc["train"] = {
            "lr": {"low": t.lr / 10, "high": t.lr * 10, "log": True},
            "weight_decay": {"low": 1e-5, "high": 1e-1, "log": True},
            "augment": ["none", "default", "strong"],
        }
        if t.epochs > 1:
            doc["train"]["epochs"] = {"low": max(1, t.epochs // 4), "high": t.epochs}
    if not doc:
        raise SettingsError("space", f"no default search space for {settings.model}; give one")
    return space_from_dict(doc, settings, where=f"the default space of {settings.model}")


# -- trials and results ----------------------------------------------------------------------


@dataclass
class TrialRecord:
    """One trial as ``trials.csv`` lists it: ``state`` is ``complete``, ``pruned`` (stopped
    after ``folds`` folds: ``score`` is their mean), ``failed`` or ``running``; ``values``
    are its settings by dotted key."""

    number: int
    state: str
    score: float | None
    std: float | None
    folds: int
    values: dict[str, Any]
    duration_s: float | None
    error: str | None = None
    interrupted: bool = False  # failed by Ctrl-C or a kill: run again, not counted


@dataclass
class TuneResult:
    """The search's trials (all of them, earlier runs' too), its best finished trial (none
    when no trial finished), and the files written."""

    trials: list[TrialRecord]
    best: TrialRecord | None
    best_settings: TrainSettings | None
    metric: str
    fold_kind: str
    files: dict[str, Path] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def ranked(self, n: int | None = None) -> list[TrialRecord]:
        """The complete trials, best first (``n`` of them)."""
        done = [t for t in self.trials if t.state == "complete"]
        done.sort(key=lambda t: (-t.score, t.number))
        return done[:n]


def _record(trial: Any, stale: set[int] = frozenset()) -> TrialRecord:
    """A :class:`TrialRecord` of an Optuna ``FrozenTrial`` (``stale``: the numbers of trials
    a killed search left running)."""
    from optuna.trial import TrialState

    attrs = trial.user_attrs
    names = {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    scores = attrs.get("fold_scores", [])
    score = trial.value if trial.state == TrialState.COMPLETE else None
    if score is None and scores:
        score = float(sum(scores) / len(scores))
    std = None
    if scores:
        mean = sum(scores) / len(scores)
        std = float(math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores)))
    return TrialRecord(
        number=trial.number,
        state=names.get(trial.state, trial.state.name.lower()),
        score=score,
        std=std,
        folds=len(scores),
        values=dict(attrs.get("values", {})),
        duration_s=duration,
        error="interrupted" if trial.number in stale else attrs.get("error"),
        interrupted=bool(attrs.get("interrupted")) or trial.number in stale,
    )


def _trials_csv(records: list[TrialRecord], keys: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["number", "state", "score", "score_std", "folds", "duration_s", *keys])
    for r in records:
        writer.writerow(
            [
                r.number,
                r.state,
                "" if r.score is None else f"{r.score:.6g}",
                "" if r.std is None else f"{r.std:.6g}",
                r.folds,
                "" if r.duration_s is None else f"{r.duration_s:.3f}",
                *(_cell(r.values[k]) if k in r.values else "" for k in keys),
            ]
        )
    return buf.getvalue()


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def recipe_text(settings: TrainSettings, comment: str = "") -> str:
    """``settings`` as a YAML recipe (the sections :func:`earmark.settings.read_recipe`
    reads), after ``comment`` lines."""
    import yaml

    doc = {
        k: v
        for k, v in settings.to_dict().items()
        if k in ("model", "params", "features", "audio", "train", "split", "seed") and v is not None
    }
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + body


# -- the study's folder ------------------------------------------------------------------------


def _fingerprint(manifest: Manifest) -> str:
    """What the data set holds: its files (relative to its root), labels, groups and
    folds, hashed. Another data set, or this one changed, gives another fingerprint."""
    frame = manifest.frame
    root = Path(manifest.root).resolve() if manifest.root is not None else None
    rows = []
    for path, label, group, fold in zip(
        frame["filepath"], frame["label"], frame["group"], frame["fold"], strict=True
    ):
        rel = path
        if root is not None:
            with contextlib.suppress(ValueError):
                rel = str(Path(path).resolve().relative_to(root))
        rows.append("\t".join(str(x) for x in (rel, label, group, fold)))
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


def _first_difference(old: Any, new: Any, prefix: str = "") -> str | None:
    """The dotted key where two plain-data documents first differ, or ``None``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if old == new else prefix.rstrip(".")


def _check_folder(out: Path, *, overwrite: bool) -> None:
    """``out`` may hold a search: it is new, empty, or holds nothing but a search's files
    (replaced with ``overwrite``). Anything else is refused, whatever ``overwrite`` says."""
    from earmark.artifact import OutputError, check_out

    if out.is_dir() and any(out.iterdir()):
        names = {p.name for p in out.iterdir()}
        if not names <= TUNE_FILES:
            raise OutputError(
                f"{out}: holds files that are not an earmark tune study; earmark replaces only "
                "what it wrote (choose a new or empty folder)"
            )
        return
    check_out(out)


def _locked(out: Path) -> contextlib.AbstractContextManager[None]:
    """Hold ``out``'s lock file while searching: a second search into the same folder is
    refused, and a trial left running in the study can only be one whose process is gone
    (the lock goes with the process, even when it is killed)."""
    return folder_lock(out, LOCK_FILE, "another earmark tune is searching into it")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise EarmarkError("earmark tune needs optuna: pip install optuna") from None
    return optuna


@contextlib.contextmanager
def _quiet_optuna(optuna: Any) -> Iterator[None]:
    """Optuna's own log lines (one per trial, at INFO) off; earmark reports trials itself."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _open_study(optuna: Any, db: Path, startup: int, prune_after: int, prune: bool) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=prune_after, n_warmup_steps=0)
        if prune
        else optuna.pruners.NopPruner()
    )
    try:
        return optuna.create_study(
            storage=f"sqlite:///{db}",
            study_name=STUDY_NAME,
            direction="maximize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(n_startup_trials=startup, seed=0),
            pruner=pruner,
        )
    except (SQLAlchemyError, ValueError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise EarmarkError(f"{db}: not a study earmark can read ({first})") from None


# -- the search --------------------------------------------------------------------------------


def trial_seed(seed: int, n: int) -> int:
    """The seed of the sampler proposing trial ``n`` of a search seeded ``seed``: a function
    of both (so a resumed search proposes what an uninterrupted one would), mixed by
    NumPy's ``SeedSequence`` (consecutive seeds of one generator start alike)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, n]).generate_state(1)[0])


def tune(
    data: Manifest | str | Path,
    settings: TrainSettings,
    out: str | Path,
    *,
    trials: int,
    folds: int | None = None,
    metric: str = "f1_macro",
    space: SearchSpace | None = None,
    group: bool | None = None,
    seed: int | None = None,
    prune: bool = True,
    prune_after: int = 4,
    startup_trials: int = 10,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    enqueue: Sequence[Mapping[str, Any]] = (),
    on_trial: Callable[[TrialRecord, int], None] | None = None,
    on_fold: Callable[[int, int, dict[str, float]], None] | None = None,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    on_file: Callable[[], None] | None = None,
) -> TuneResult:
    """Search ``space`` (default: :func:`default_space`) around the base ``settings`` for
    the setting with the best mean ``metric`` over ``folds``-fold cross-validation of
    ``data`` (default: the data set's own folds, else 3; grouped whenever it has groups,
    unless ``group=False``), until the study in ``out`` holds ``trials`` trials.

    Trial ``n`` is proposed by a TPE sampler seeded by ``seed`` and ``n``
    (:func:`trial_seed`; ``seed``: the settings' own); with ``prune``, a trial whose running
    fold mean falls below the median of the finished trials' at the same fold stops there,
    once ``prune_after`` trials have finished. ``enqueue``: settings (dotted keys) to try
    first, in a new study.

    ``on_trial(record, total)`` follows each trial, ``on_fold(trial, fold, metrics)`` each
    fold, ``on_epoch(trial, fold, record)`` each epoch of a network. Ctrl-C raises
    :class:`earmark.errors.Interrupted` after recording the running trial as failed; the
    same call continues the search."""
    from earmark.data.layouts import as_manifest
    from earmark.workflows import cv_folds

    if metric not in METRICS:
        raise ParameterError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if trials < 1:
        raise ParameterError(f"trials must be at least 1, got {trials}")
    if startup_trials < 1 or prune_after < 1:
        raise ParameterError("startup_trials and prune_after must be at least 1")
    optuna = _optuna()
    out = Path(out)
    seed = settings.seed if seed is None else seed
    space = space or default_space(settings)
    space.check(settings)
    _check_folder(out, overwrite=overwrite)
    manifest = as_manifest(data)
    if folds is None and not manifest.has_folds:
        folds = 3
    _, fold_kind = cv_folds(manifest, folds, group=group, seed=seed)  # refused here, not later
    base = settings.to_dict()
    base["train"] = {k: v for k, v in (base["train"] or {}).items() if k != "device"} or None
    identity = {
        "data": str(Path(manifest.root).resolve()) if manifest.root is not None else None,
        "files": len(manifest),
        "fingerprint": _fingerprint(manifest),
        "model": settings.model,
        "settings": base,
        "space": space.to_dict(),
        "metric": metric,
        "folds": folds,
        "group": group,
        "seed": seed,
    }
    identity = json.loads(json.dumps(identity))  # as the study stores it
    db = out / STUDY_FILE
    with _locked(out), _quiet_optuna(optuna):
        if overwrite:
            for name in TUNE_FILES - {LOCK_FILE}:
                (out / name).unlink(missing_ok=True)
        study = _open_study(optuna, db, startup_trials, prune_after, prune)
        started = study.user_attrs.get("earmark")
        if started is None:
            study.set_user_attr("earmark", identity)
            for values in enqueue:
                study.enqueue_trial(
                    {d.key: d.encode(values[d.key]) for d in space if d.key in values}
                )
        elif started != identity:
            raise _another_study(out, started, identity)
        search = _Search(
            optuna, study, space, settings, manifest, out,
            metric=metric, folds=folds, group=group, seed=seed, startup=startup_trials,
            cache_dir=cache_dir, workers=workers, fold_kind=fold_kind,
            on_fold=on_fold, on_epoch=on_epoch, on_file=on_file,
        )  # fmt: skip
        search.fail_stale()
        try:
            search.run(trials, on_trial)
        finally:
            result = search.write()
    return result


def _another_study(out: Path, started: dict[str, Any], now: dict[str, Any]) -> EarmarkError:
    key = _first_difference(started, now) or "settings"
    if key in ("fingerprint", "files"):
        what = "the data changed since it started" if started.get("data") == now.get("data") else ""
        key = what or "data"
    if key == "data":
        detail = f"data: {started.get('data')} then, {now.get('data')} now"
    elif key in ("model", "metric", "folds", "group", "seed"):
        detail = f"{key}: {started.get(key)} then, {now.get(key)} now"
    else:
        detail = f"{key} differs"
    return EarmarkError(
        f"{out} holds a tune study of {started.get('model')} on {started.get('data')} "
        f"({detail}); search into another folder, or pass --overwrite to start over there"
    )


class _Search:
    """The trial loop of :func:`tune` over an open study (ask, cross-validate, tell)."""

    def __init__(
        self,
        optuna: Any,
        study: Any,
        space: SearchSpace,
        settings: TrainSettings,
        manifest: Manifest,
        out: Path,
        *,
        metric: str,
        folds: int | None,
        group: bool | None,
        seed: int,
        startup: int,
        cache_dir: str | Path | None,
        workers: int | None,
        fold_kind: str,
        on_fold: Callable[[int, int, dict[str, float]], None] | None,
        on_epoch: Callable[[int, int, dict[str, float]], None] | None,
        on_file: Callable[[], None] | None,
    ) -> None:
        self.optuna, self.study, self.space, self.settings = optuna, study, space, settings
        self.manifest, self.out, self.metric, self.folds = manifest, out, metric, folds
        self.group, self.seed, self.startup = group, seed, startup
        self.cache_dir, self.workers, self.fold_kind = cache_dir, workers, fold_kind
        self.on_fold, self.on_epoch, self.on_file = on_fold, on_epoch, on_file
        self.tables: dict[str, Any] = {}  # classical: features by their settings, computed once
        self.skipped: list[tuple[str, str]] = []

    def fail_stale(self) -> None:
        """Trials left running by a search that was killed: failed, to be run again (the
        study lists them as ``stale_trials``). The folder's lock is held, so no other
        process is running them."""
        from optuna.trial import TrialState

        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        stale = set(self.study.user_attrs.get("stale_trials", []))
        self.study.set_user_attr("stale_trials", sorted(stale | {t.number for t in running}))
        for t in running:
            self.study.tell(t.number, state=TrialState.FAIL)

    def _fail(self, trial: Any, error: str, *, interrupted: bool) -> None:
        trial.set_user_attr("error", error)
        trial.set_user_attr("interrupted", interrupted)
        self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)

    def records(self) -> list[TrialRecord]:
        stale = set(self.study.user_attrs.get("stale_trials", []))
        return [_record(t, stale) for t in self.study.get_trials(deepcopy=False)]

    def counted(self) -> int:
        """Trials that count toward the total: all finished ones but those failed by an
        interruption (they run again)."""
        return sum(
            1
            for r in self.records()
            if r.state in ("complete", "pruned", "failed") and not r.interrupted
        )

    def run(self, total: int, on_trial: Callable[[TrialRecord, int], None] | None) -> None:
        failures = 0
        while (n := self.counted()) < total:
            self.study.sampler = self.optuna.samplers.TPESampler(
                n_startup_trials=self.startup, seed=trial_seed(self.seed, n)
            )
            trial = self.study.ask()
            try:
                score = self._objective(trial)
            except self.optuna.TrialPruned:
                self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)
            except (KeyboardInterrupt, Interrupted):
                self._fail(trial, "interrupted", interrupted=True)
                raise Interrupted(
                    f"search interrupted in trial {trial.number}; {n} of {total} trials done, "
                    f"kept in {self.out / STUDY_FILE}: run the same command again to continue"
                ) from None
            except Exception as exc:
                text = " ".join(str(exc).split())[:300] or type(exc).__name__
                self._fail(trial, text, interrupted=False)
                failures += 1
                if failures >= MAX_FAILURES:
                    raise EarmarkError(
                        f"{failures} trials in a row failed; the last: {text}"
                    ) from None
            else:
                failures = 0
                self.study.tell(trial, score)
            self.write()
            if on_trial is not None:
                on_trial(self.records()[trial.number], total)

    def _objective(self, trial: Any) -> float:
        from earmark.workflows import run_cv

        values = self.space.suggest(trial)
        trial.set_user_attr("values", values)
        settings = self.space.apply(self.settings, values)
        clf = settings.classifier(cache_dir=self.cache_dir, workers=self.workers)
        scores: list[float] = []

        def fold_done(i: int, metrics: dict[str, float]) -> None:
            scores.append(metrics[self.metric])
            trial.set_user_attr("fold_scores", scores)
            if self.on_fold is not None:
                self.on_fold(trial.number, i, metrics)
            trial.report(sum(scores) / len(scores), step=i)
            if trial.should_prune():
                raise self.optuna.TrialPruned()

        epoch = None
        if self.on_epoch is not None:
            hook = self.on_epoch

            def epoch(i: int, record: dict[str, float]) -> None:
                hook(trial.number, i, record)

        table = None
        if clf.family == "classical":
            key = json.dumps([clf.audio.to_dict(), clf.features.to_dict()], sort_keys=True)
            if key not in self.tables:
                self.tables[key] = clf.features_of(self.manifest, on_file=self.on_file)
            table = self.tables[key]
        result, self.skipped = run_cv(
            self.manifest,
            clf,
            folds=self.folds,
            group=self.group,
            seed=self.seed,
            on_fold=fold_done,
            on_epoch=epoch,
            table=table,
        )
        trial.set_user_attr("mean", result.mean)
        trial.set_user_attr("std", result.std)
        return result.mean[self.metric]

    def write(self) -> TuneResult:
        """``trials.csv`` and (once a trial completed) ``best.yaml``, atomically."""
        from earmark.atomic import atomic_text

        records = [r for r in self.records() if r.state != "waiting"]
        keys = [d.key for d in self.space]
        files = {"study": self.out / STUDY_FILE}
        files["trials"] = atomic_text(self.out / TRIALS_FILE, _trials_csv(records, keys))
        result = TuneResult(
            records, None, None, self.metric, self.fold_kind, files, list(self.skipped)
        )
        ranked = result.ranked(1)
        if ranked:
            best = ranked[0]
            result.best = best
            result.best_settings = self.space.apply(self.settings, best.values)
            n_folds = best.folds
            comment = (
                f"earmark tune: trial {best.number}, the best of {len(records)} "
                f"({self.metric} {best.score:.4f} ± {best.std:.4f} over {n_folds} folds, "
                f"{self.fold_kind})\n"
                f"earmark train DATA --config {self.out / BEST_FILE} --out RUN"
            )
            files["best"] = atomic_text(
                self.out / BEST_FILE, recipe_text(result.best_settings, comment)
            )
        return result
