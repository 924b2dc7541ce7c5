"""The model artifact: a directory loadable without pickle, validated rather than trusted.

``earmark.json`` holds the schema version, the earmark version, the labels, the exact audio
and feature settings, the model family, name and hyper-parameters, a summary of the training
data, the metrics, and the SHA-256 of every weight file. The weights are ``skops`` files for
scikit-learn (loaded only when every type they name is on :data:`SKOPS_ALLOWED`) and
``safetensors`` files for torch.

Nothing in an artifact is trusted: :func:`read_meta` checks ``earmark.json`` against its
schema (:mod:`earmark.artifact_schema`: size and nesting before parsing, then every field's
type and bounds) and each listed file (a plain name inside the directory, its size and
checksum) before any weight file is read; :func:`load_skops` refuses foreign types and
arrays larger than the file; :func:`check_estimator` refuses an object that is not the
fitted model ``earmark.json`` describes, and :func:`check_trees` the node arrays
scikit-learn's C code would walk out of bounds. Each refusal is one
:class:`ArtifactError` line naming the file and what is wrong.

The directory is written under a temporary name beside the target and renamed into place,
so a crash never leaves a half-written artifact under the real name. It replaces only what
earmark wrote: :func:`check_out` says whether an output path may be written (called before a
job starts), and :func:`write_artifact` refuses to replace a file or a folder of someone
else's files whatever it is asked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from earmark.errors import EarmarkError

__all__ = [
    "META_FILE",
    "REPORT_FILES",
    "RUN_ENTRIES",
    "SCHEMA_VERSION",
    "SKOPS_ALLOWED",
    "ArtifactError",
    "OutputError",
    "check_estimator",
    "check_files",
    "check_out",
    "check_trees",
    "check_weight_size",
    "file_record",
    "inside",
    "is_artifact",
    "load_skops",
    "output_kind",
    "read_json",
    "read_meta",
    "save_skops",
    "write_artifact",
]

META_FILE = "earmark.json"
SCHEMA_VERSION = 1

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
        "sklearn.multiclass.OneVsRestClassifier",  # multi-label: one learner per class
        "sklearn.multiclass._ConstantPredictor",  # a class present in every clip, or none
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelBinarizer",
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


def file_record(path: Path) -> dict[str, Any]:
    """What ``earmark.json`` lists of one of the artifact's files: its SHA-256 and size
    (checked when the artifact is loaded)."""
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


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
                files[name] = file_record(tmp / name)
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


def inside(root: str | Path, path: str | Path, what: str) -> Path:
    """``path`` (a file or folder of the artifact at ``root``) once it is known to resolve
    inside ``root``: a symbolic link out of the artifact is refused (:class:`ArtifactError`
    naming ``what``)."""
    root, path = Path(root), Path(path)
    real = path.resolve()
    if real == root.resolve() or not real.is_relative_to(root.resolve()):
        raise ArtifactError(f"{root}: {what} resolves outside the model ({real})")
    return path


def _read_bounded(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``path`` (one more says it is too large)."""
    try:
        with path.open("rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_meta(directory: str | Path) -> dict[str, Any]:
    """Read and check ``earmark.json`` and the files it lists, before anything else of the
    artifact is read: its size and nesting, then every field's type and bounds and the
    relations between them (:mod:`earmark.artifact_schema`), then each listed file (a plain
    name resolving inside ``directory``, its size and SHA-256). Raises
    :class:`ArtifactError`, one line naming the file and the field."""
    from earmark import artifact_schema as schema

    directory = Path(directory)
    meta_path = directory / META_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such model directory")
    if not meta_path.is_file():
        raise ArtifactError(f"{directory}: not an earmark model (no {META_FILE})")
    meta = read_json(meta_path)
    try:
        schema.validate_meta(meta, newest=SCHEMA_VERSION)
    except schema.SchemaError as exc:
        raise ArtifactError(f"{meta_path}: {exc}") from None
    check_files(directory, meta["files"])
    return meta


def read_json(path: str | Path, *, what: str = META_FILE) -> Any:
    """The JSON file ``path`` (an ``earmark.json``, a run's ``settings.json``), read only
    when its size and nesting are bounded (:func:`earmark.artifact_schema.parse_json`); its
    content is not checked yet. Raises :class:`ArtifactError` naming the file."""
    from earmark import artifact_schema as schema

    path = Path(path)
    try:
        return schema.parse_json(_read_bounded(path, schema.MAX_META_BYTES), what=what)
    except schema.SchemaError as exc:
        raise ArtifactError(f"{path}: {exc}") from None


def check_files(directory: str | Path, files: dict[str, Any]) -> None:
    """Each file an ``earmark.json`` lists (``files``, already checked against the schema:
    plain names, a SHA-256 and size or ``directory: true`` each) resolves inside
    ``directory``, exists, and has the size and SHA-256 saved. Raises
    :class:`ArtifactError` naming the file."""
    directory = Path(directory)
    for name, facts in files.items():
        path = inside(directory, directory / name, name)
        if facts.get("directory"):
            if not path.is_dir():
                raise ArtifactError(f"{directory}: {name}/ is missing")
            continue
        if not path.is_file():
            raise ArtifactError(f"{directory}: {name} is missing")
        size = path.stat().st_size
        if facts.get("bytes") is not None and size != facts["bytes"]:
            raise ArtifactError(
                f"{path}: {size} bytes, not the {facts['bytes']} saved (modified after saving?)"
            )
        if _sha256(path) != facts["sha256"]:
            raise ArtifactError(f"{path}: checksum mismatch (modified after saving?)")


def check_weight_size(path: str | Path, module: Any, what: str) -> int:
    """Refuse the weight file ``path`` for ``module`` (a torch module built on the ``meta``
    device from ``earmark.json``'s settings, which allocates nothing) when the module's
    weights need more bytes than the file holds: the settings do not describe the file, and
    building the module for real could take any amount of memory. ``what`` names the module
    in the message. Returns the bytes needed; raises :class:`ArtifactError`."""
    path = Path(path)
    need = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    size = path.stat().st_size
    if need > size:
        raise ArtifactError(
            f"{path}: {what} has {need} bytes of weights; the file holds {size} "
            "(earmark.json does not describe it)"
        )
    return need


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


#: How much larger than the file its unpacked members may be: earmark stores them
#: uncompressed (skops' default), so anything near this is not a file earmark wrote.
_SKOPS_UNPACK_RATIO = 8
_SKOPS_UNPACK_SLACK = 16 * 2**20


def _npy_bytes(fh: Any) -> int:
    """The bytes of array data a ``.npy`` header announces (its shape times its item size)."""
    from numpy.lib import format as npy

    version = npy.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = npy.read_array_header_1_0(fh)
    else:
        shape, _, dtype = npy.read_array_header_2_0(fh)
    return math.prod(shape) * dtype.itemsize


def _check_skops_zip(path: Path) -> None:
    """Before skops unpacks anything: the members' unpacked sizes are bounded by the file's
    own size, and no array announces more data than its member holds (numpy allocates an
    array from its header's shape before reading the data)."""
    import zipfile

    size = path.stat().st_size
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        unpacked = sum(i.file_size for i in infos)
        if unpacked > _SKOPS_UNPACK_RATIO * size + _SKOPS_UNPACK_SLACK:
            raise ArtifactError(
                f"{path}: unpacks to {unpacked} bytes from {size}: not a model earmark saved"
            )
        for info in infos:
            if info.filename.endswith(".npy"):
                with zf.open(info) as fh:
                    announced = _npy_bytes(fh)
                if announced > info.file_size:
                    raise ArtifactError(
                        f"{path}: {info.filename} announces {announced} bytes of array data "
                        f"in {info.file_size}"
                    )


def load_skops(path: Path) -> Any:
    """Load a skops file, refusing any type beyond skops' safe defaults and
    :data:`SKOPS_ALLOWED`, and any array larger than the file holds. What loads is not yet
    known to be a usable model: :func:`check_estimator` says."""
    sio = _skops_io()
    try:
        _check_skops_zip(path)
        untrusted = sio.get_untrusted_types(file=path)
    except ArtifactError:
        raise
    except Exception as exc:  # zipfile, numpy and skops raise several types for a damaged file
        raise ArtifactError(f"{path}: not a readable skops file ({_line(exc)})") from None
    foreign = sorted(set(untrusted) - SKOPS_ALLOWED)
    if foreign:
        raise ArtifactError(
            f"{path}: refusing to load types that are not on earmark's allow-list: "
            f"{', '.join(foreign)}"
        )
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot load ({_line(exc)})") from None


def _line(exc: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# -- what a skops file holds ----------------------------------------------------------------


def check_estimator(
    obj: Any,
    path: Path,
    *,
    expected: Any,
    classes: list[str],
    n_features: int,
    multi_label: bool = False,
) -> Any:
    """``obj`` (loaded from the skops file ``path``) checked to be what earmark saves for the
    artifact: a fitted scikit-learn ``Pipeline`` of an optional ``StandardScaler`` and a
    learner of the same type as ``expected`` (the registered model's unfitted learner; for
    a calibrated SVM the SVM inside too), with ``predict_proba``, ``classes`` in the same
    order and ``n_features`` inputs (``multi_label``: a one-vs-rest learner over
    ``0..len(classes)-1``, each of its fitted learners of the expected type or a constant).
    Every tree it holds is checked before any of them runs
    (:func:`check_trees`), then one probe row of zeros must give one probability per class.
    Returns ``obj``; raises :class:`ArtifactError` (one line)."""
    import warnings

    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.validation import check_is_fitted

    def refuse(problem: str) -> ArtifactError:
        return ArtifactError(f"{path}: {problem}")

    if not isinstance(obj, Pipeline):
        raise refuse(f"holds a {_type_name(obj)}, not the scikit-learn Pipeline earmark saves")
    try:
        steps = list(obj.steps)
        if not steps or not all(isinstance(s, tuple) and len(s) == 2 for s in steps):
            raise refuse("a Pipeline without its (name, step) list")
        *before, (_, final) = steps
        if any(not isinstance(step, StandardScaler) for _, step in before) or len(before) > 1:
            kinds = ", ".join(_type_name(step) for _, step in before)
            raise refuse(f"a Pipeline of {kinds} before its learner; earmark saves a scaler only")
        for want, got in _learner_types(expected, final):
            if type(got) is not type(want):
                raise refuse(
                    f"holds a {_type_name(got)} where earmark.json's model is a {_type_name(want)}"
                )
        for name, step in steps:
            try:
                check_is_fitted(step)
            except NotFittedError:
                raise refuse(f"the {_type_name(step)} ({name}) is not fitted") from None
        if not hasattr(obj, "predict_proba"):
            raise refuse(f"a {_type_name(final)} gives no probabilities (predict_proba)")
        held = [str(c) for c in obj.classes_]
        want = [str(i) for i in range(len(classes))] if multi_label else list(classes)
        if held != want:
            raise refuse(f"the model's classes {_short(held)} differ from its labels")
        if getattr(obj, "n_features_in_", None) != n_features:
            raise refuse(
                f"takes {getattr(obj, 'n_features_in_', None)} features, earmark.json says "
                f"{n_features}"
            )
        check_trees(obj, path, n_features=n_features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proba = np.asarray(obj.predict_proba(np.zeros((1, n_features))))
    except ArtifactError:
        raise
    except Exception as exc:  # whatever a foreign or damaged object raises when used
        raise refuse(f"not a usable model ({_line(exc)})") from None
    if proba.shape != (1, len(classes)) or not np.isfinite(proba).all():
        raise refuse(f"gives scores of shape {proba.shape}, not one per class ({len(classes)})")
    return obj


def _learner_types(expected: Any, final: Any) -> list[tuple[Any, Any]]:
    """Pairs (what earmark builds, what the file holds) to compare by type: the learner,
    and the estimator inside a calibrated one (each fitted calibration's too)."""
    from sklearn.multiclass import OneVsRestClassifier, _ConstantPredictor

    pairs = [(expected, final)]
    inner = getattr(expected, "estimator", None)
    if isinstance(expected, OneVsRestClassifier) and type(final) is type(expected):
        pairs.append((inner, final.estimator))
        for fitted in getattr(final, "estimators_", None) or []:
            if not isinstance(fitted, _ConstantPredictor):
                pairs += _learner_types(inner, fitted)
        return pairs
    if inner is not None and type(final) is type(expected):
        pairs.append((inner, final.estimator))
        for calibrated in getattr(final, "calibrated_classifiers_", None) or []:
            pairs.append((inner, calibrated.estimator))
    return pairs


def _type_name(obj: Any) -> str:
    return type(obj).__name__


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _objects(obj: Any, *, limit: int = 200_000) -> Any:
    """Every object reachable from ``obj`` through attributes, lists, tuples, dicts and
    object arrays (each once, at most ``limit``)."""
    seen: set[int] = set()
    stack = [obj]
    while stack and len(seen) < limit:
        item = stack.pop()
        if id(item) in seen or isinstance(item, str | bytes | int | float | bool | type(None)):
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend(item.ravel().tolist())
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())


def check_trees(obj: Any, path: Path, *, n_features: int) -> None:
    """Check the compiled structures a skops file may hold, which scikit-learn's C code walks
    without bounds checks, before anything runs them: in every decision tree
    (``sklearn.tree._tree.Tree``: the trees, forests) and every histogram-gradient-boosting
    ``TreePredictor`` (which skops itself does not trust for this reason), each split node's
    feature index is below ``n_features`` and its children lie after it in the node array
    (so a walk ends, inside the array); in every KD / ball tree (``knn``), the index array is
    a permutation of the training rows and every node's rows and children lie inside."""
    import sys

    tree_mod = sys.modules.get("sklearn.tree._tree")
    hgb_mod = sys.modules.get("sklearn.ensemble._hist_gradient_boosting.predictor")
    binary = tuple(
        getattr(sys.modules.get(f"sklearn.neighbors._{kind}"), name)
        for kind, name in (("kd_tree", "KDTree"), ("ball_tree", "BallTree"))
        if sys.modules.get(f"sklearn.neighbors._{kind}") is not None
    )
    for item in _objects(obj):
        if tree_mod is not None and isinstance(item, tree_mod.Tree):
            _check_nodes(
                path,
                "decision tree",
                np.asarray(item.children_left)[: item.node_count],
                np.asarray(item.children_right)[: item.node_count],
                np.asarray(item.feature)[: item.node_count],
                leaf=np.asarray(item.children_left)[: item.node_count] == -1,
                n_features=n_features,
            )
        elif hgb_mod is not None and isinstance(item, hgb_mod.TreePredictor):
            _check_predictor(item, path, n_features)
        elif binary and isinstance(item, binary):
            _check_binary_tree(item, path)


def _check_nodes(
    path: Path,
    what: str,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    *,
    leaf: np.ndarray,
    n_features: int,
) -> None:
    n = len(left)
    if n == 0 or not (len(right) == len(feature) == len(leaf) == n):
        raise ArtifactError(f"{path}: a {what} without nodes")
    split = ~leaf
    at = np.arange(n)[split]
    left, right, feature = (a.astype(np.int64)[split] for a in (left, right, feature))
    if ((left <= at) | (left >= n) | (right <= at) | (right >= n)).any():
        raise ArtifactError(
            f"{path}: a {what} whose children are not after their parent among its {n} nodes"
        )
    if ((feature < 0) | (feature >= n_features)).any():
        raise ArtifactError(f"{path}: a {what} splits on a feature beyond the {n_features}")


def _check_predictor(predictor: Any, path: Path, n_features: int) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    nodes = getattr(predictor, "nodes", None)
    if (
        not isinstance(nodes, np.ndarray)
        or nodes.ndim != 1
        or nodes.dtype != PREDICTOR_RECORD_DTYPE
    ):
        raise ArtifactError(f"{path}: a boosted tree whose node array is not scikit-learn's")
    leaf = nodes["is_leaf"].astype(bool)
    if nodes["is_categorical"][~leaf].any():
        raise ArtifactError(f"{path}: a boosted tree with categorical splits (earmark trains none)")
    _check_nodes(
        path,
        "boosted tree",
        nodes["left"],
        nodes["right"],
        nodes["feature_idx"],
        leaf=leaf,
        n_features=n_features,
    )


def _check_binary_tree(tree: Any, path: Path) -> None:
    data, idx, nodes, bounds = (np.asarray(a) for a in tree.get_arrays())
    n = len(data) if data.ndim == 2 else 0
    what = f"{path}: a nearest-neighbour tree"
    if n == 0 or idx.shape != (n,) or not np.array_equal(np.sort(idx), np.arange(n)):
        raise ArtifactError(f"{what} whose index is not a permutation of its {n} rows")
    m = len(nodes)
    if m == 0 or bounds.ndim != 3 or bounds.shape[1:] != (m, data.shape[1]):
        raise ArtifactError(f"{what} whose node arrays disagree")
    start, end = nodes["idx_start"].astype(np.int64), nodes["idx_end"].astype(np.int64)
    if ((start < 0) | (start > end) | (end > n)).any():
        raise ArtifactError(f"{what} whose nodes point outside its {n} rows")
    split = np.flatnonzero(~nodes["is_leaf"].astype(bool))
    if (2 * split + 2 >= m).any():
        raise ArtifactError(f"{what} whose children lie outside its {m} nodes")
