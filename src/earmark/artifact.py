"""The model artifact: a directory loadable without pickle.

``earmark.json`` holds the schema version, the earmark version, the labels, the exact audio
and feature settings, the model family, name and hyper-parameters, a summary of the training
data, the metrics, and the SHA-256 of every weight file. The weights are ``skops`` files for
scikit-learn (loaded only when every type they name is on :data:`SKOPS_ALLOWED`) and
``safetensors`` files for torch. A file whose checksum does not match, an unknown schema, or
a foreign type is refused with a clear error.

The directory is written under a temporary name beside the target and renamed into place,
so a crash never leaves a half-written artifact under the real name. It replaces only what
earmark wrote: :func:`check_out` says whether an output path may be written (called before a
job starts), and :func:`write_artifact` refuses to replace a file or a folder of someone
else's files whatever it is asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from earmark.errors import EarmarkError

__all__ = [
    "META_FILE",
    "REPORT_FILES",
    "RUN_ENTRIES",
    "SCHEMA_VERSION",
    "SKOPS_ALLOWED",
    "ArtifactError",
    "OutputError",
    "check_out",
    "is_artifact",
    "load_skops",
    "output_kind",
    "read_meta",
    "save_skops",
    "write_artifact",
]

META_FILE = "earmark.json"
SCHEMA_VERSION = 1
_REQUIRED = (
    "schema_version",
    "earmark_version",
    "family",
    "model",
    "classes",
    "audio",
    "features",
    "files",
)

#: Every type a skops model file may name beyond builtins, numpy, scipy and skops' own
#: scikit-learn internals: the estimators of the registered classical learners
#: (:mod:`earmark.models.learners`) and what they hold. Nothing else loads, not even another
#: scikit-learn estimator: earmark trusts what it writes, not all of scikit-learn.
SKOPS_ALLOWED = frozenset(
    {
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.svm._classes.SVC",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._tree.Tree",
    }
)


#: What a training run directory holds before its model is saved: a network's checkpoint,
#: an sgan's sample grids, the run's resolved settings (:mod:`earmark.settings`).
RUN_ENTRIES = frozenset({"checkpoint", "samples", "settings.json"})
#: The files of an evaluation report (:func:`earmark.report.write_evaluation`) and of a
#: network's training curves (:func:`earmark.report.write_history`).
REPORT_FILES = frozenset(
    {"metrics.json", "per_class.csv", "confusion.png", "report.md", "history.csv", "curves.png"}
)


class ArtifactError(EarmarkError):
    """A model directory is missing, incomplete, tampered with, or not earmark's."""


class OutputError(EarmarkError):
    """An output path would replace something earmark did not write, or cannot be written."""


def output_kind(path: str | Path) -> str | None:
    """What the folder ``path`` holds: ``"empty"``; ``"model"`` (an ``earmark.json``: a
    model, an ensemble or a checkpoint); ``"run"`` (a training run's checkpoint, samples and
    settings, nothing else); ``"report"`` (evaluation files only); or ``None``: files that
    are not earmark's, or not a folder at all."""
    path = Path(path)
    if not path.is_dir():
        return None
    entries = {p.name for p in path.iterdir()}
    if not entries:
        return "empty"
    if (path / META_FILE).is_file():
        return "model"
    if entries <= RUN_ENTRIES and (
        (path / "checkpoint" / META_FILE).is_file() or _is_settings(path / "settings.json")
    ):
        return "run"
    if entries <= REPORT_FILES and (path / "metrics.json").is_file():
        return "report"
    return None


def _is_settings(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("kind") == "train-settings"
    except (OSError, ValueError, AttributeError):
        return False


def _check_writable(path: Path) -> None:
    """``path`` (to be created or replaced) can be written: its nearest existing ancestor
    is a writable folder (and ``path`` itself, when it is an existing folder)."""
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{path}: cannot be written: {probe} is a file, not a folder")
    for folder in (probe, path) if path.is_dir() else (probe,):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{path}: cannot be written: {folder} is not writable")


def check_out(
    path: str | Path, *, overwrite: bool = False, file: bool = False, into: bool = False
) -> Path:
    """Check, before any work, that an output may be written at ``path`` without losing
    anything earmark did not write; return it.

    A folder output (``file=False``: a model, a run, a report) may go where nothing is, into
    an empty folder, or, with ``overwrite``, over an earlier earmark output
    (:func:`output_kind`). A regular file there, or a folder holding anything else, is
    refused whatever ``overwrite`` says. A file output (``file=True``) replaces an existing
    file only with ``overwrite``, and never a folder. Files added ``into`` a folder (cut
    clips, a generated data set) may go into an existing folder, never onto a file. Either
    way the place must be writable. Raises :class:`OutputError` (one line)."""
    path = Path(path)
    if into:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path}: a file is there, not a folder")
    elif file:
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file name")
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: already exists; pass --overwrite to replace it")
    elif path.exists() or path.is_symlink():
        kind = output_kind(path)
        if not path.is_dir():
            raise OutputError(
                f"{path}: a file is there, not a folder; earmark replaces only what it wrote "
                "(choose another output)"
            )
        if kind is None:
            raise OutputError(
                f"{path}: holds files earmark did not write; earmark replaces only what it "
                "wrote (choose a new or empty folder)"
            )
        if kind != "empty" and not overwrite:
            raise OutputError(
                f"{path}: holds an earlier earmark {kind}; pass --overwrite to replace it"
            )
    _check_writable(path)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_artifact(
    directory: str | Path,
    meta: dict[str, Any],
    writers: dict[str, Callable[[Path], None]],
    *,
    keep: tuple[str, ...] = (),
) -> Path:
    """Write ``meta`` as ``earmark.json`` and each weight file (``writers[name](path)``) into
    ``directory``, atomically: everything goes to a temporary sibling first, then replaces the
    target in two renames. Entries of the old directory named in ``keep`` (a training
    checkpoint, say) move into the new one. Returns the directory.

    Only an earmark output is ever replaced: a file at ``directory``, or a folder holding
    anything else (:func:`output_kind`), raises :class:`OutputError` and nothing is written.
    """
    from earmark.atomic import default_mode

    target = Path(directory)
    if target.exists() or target.is_symlink():
        if not target.is_dir():
            raise OutputError(
                f"{target}: a file is there, not a folder; earmark will not replace it"
            )
        if output_kind(target) is None:
            raise OutputError(
                f"{target}: holds files earmark did not write; earmark will not replace it"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, default_mode(directory=True))  # mkdtemp makes it private (0700)
    try:
        files = {}
        for name, write in writers.items():
            write(tmp / name)
            if (tmp / name).is_dir():  # nested artifacts (ensemble members) check themselves
                files[name] = {"directory": True}
            else:
                files[name] = {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
        full = {**meta, "files": files}
        (tmp / META_FILE).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
        for name in keep:
            if (target / name).exists():
                os.replace(target / name, tmp / name)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def is_artifact(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding an ``earmark.json``."""
    return (Path(path) / META_FILE).is_file()


def read_meta(directory: str | Path) -> dict[str, Any]:
    """Read and check ``earmark.json`` and the checksums of the files it lists."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such model directory")
    if not meta_path.is_file():
        raise ArtifactError(f"{directory}: not an earmark model (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{meta_path}: expected a JSON object")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise ArtifactError(f"{meta_path}: missing {', '.join(missing)}")
    if not isinstance(meta["schema_version"], int) or meta["schema_version"] > SCHEMA_VERSION:
        raise ArtifactError(
            f"{meta_path}: schema version {meta['schema_version']!r} is newer than this "
            f"earmark reads ({SCHEMA_VERSION}); upgrade earmark"
        )
    for name, facts in meta["files"].items():
        path = directory / name
        if Path(name).name != name:
            raise ArtifactError(f"{meta_path}: file name {name!r} points outside the model")
        if facts.get("directory"):
            if not path.is_dir():
                raise ArtifactError(f"{directory}: {name}/ is missing")
            continue
        if not path.is_file():
            raise ArtifactError(f"{directory}: {name} is missing")
        if _sha256(path) != facts.get("sha256"):
            raise ArtifactError(f"{path}: checksum mismatch (modified after saving?)")
    return meta


def _skops_io() -> Any:
    """``skops.io``, imported without its default trust list of every scikit-learn estimator.

    skops builds that list at import by calling ``sklearn.utils.all_estimators()``, which
    imports every scikit-learn module (and torch, through scikit-learn's vendored
    ``array_api_compat.torch`` package): about 2.5 s of each process that loads a classical
    model, most of a one-clip ``earmark predict``. earmark checks every type a file names
    against its own :data:`SKOPS_ALLOWED` and passes that list to ``skops.io.load``, so the
    default list is not needed; it is built empty here. When skops.io was imported before
    (by the caller), its defaults stand and :data:`SKOPS_ALLOWED` still bounds what loads
    among the types skops reports.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    everything = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = everything
    return skops.io


def save_skops(obj: Any, path: Path) -> None:
    """Write a scikit-learn object with skops (no pickle)."""
    _skops_io().dump(obj, path)


def load_skops(path: Path) -> Any:
    """Load a skops file, refusing any type beyond skops' safe defaults and
    :data:`SKOPS_ALLOWED`."""
    sio = _skops_io()
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises several types for a damaged zip
        raise ArtifactError(f"{path}: not a readable skops file ({exc})") from None
    foreign = sorted(set(untrusted) - SKOPS_ALLOWED)
    if foreign:
        raise ArtifactError(
            f"{path}: refusing to load types that are not on earmark's allow-list: "
            f"{', '.join(foreign)}"
        )
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot load ({exc})") from None
