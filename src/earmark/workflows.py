"""The jobs behind ``earmark train``, ``evaluate`` and ``cv``, as library functions.

Training records how the data was split (settings and the test files) in the artifact, so
``evaluate`` on the same data later scores exactly the files training held out, and says so
when the data set has changed since.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark.classifier import Classifier
from earmark.data.layouts import as_manifest
from earmark.data.manifest import SPLIT_NAMES, Manifest
from earmark.data.splits import SplitSettings
from earmark.errors import EarmarkError, ParameterError
from earmark.evaluation import CVResult, Evaluation, cross_validate
from earmark.report import write_evaluation
from earmark.settings import SETTINGS_FILE, parse_params

if TYPE_CHECKING:
    from earmark.ddp import Group
    from earmark.features.table import FeatureTable

__all__ = [
    "CalibrateResult",
    "SplitSettings",
    "TrainResult",
    "calibrate_run",
    "cv_folds",
    "evaluate_run",
    "parse_params",
    "run_cv",
    "split_of",
    "train_run",
]

SPLITS = (*SPLIT_NAMES, "all")


def _relative(paths: list[str], root: Path | None) -> list[str]:
    if root is None:
        return paths
    base = Path(root).resolve()
    out = []
    for p in paths:
        try:
            out.append(str(Path(p).resolve().relative_to(base)))
        except ValueError:
            out.append(p)
    return out


@dataclass
class TrainResult:
    classifier: Classifier
    evaluation: Evaluation
    sizes: dict[str, int]
    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    reviews: dict[str, Any] | None = None  # what reviews added (``reviews=``)


def train_run(
    data: Manifest | str | Path,
    classifier: Classifier,
    out: str | Path,
    *,
    split: SplitSettings | None = None,
    on_file: Callable[[], None] | None = None,
    overwrite: bool = False,
    resume: str | Path | None = None,
    reviews: Any = None,
    negative_label: str | None = None,
    **fit: Any,
) -> TrainResult | None:
    """Split ``data``, fit ``classifier`` on the training part, evaluate it on the test part,
    save the artifact to ``out`` and write the evaluation files and the resolved settings
    (``settings.json``) beside it. ``fit`` goes to :meth:`Classifier.fit` (for networks:
    ``on_step``, ``on_epoch``; ``unlabeled``, ``label_fraction``).

    ``out`` is checked first, before any audio is read (:func:`earmark.artifact.check_out`):
    it must be new, an empty folder, or, with ``overwrite``, an earlier earmark output.

    Networks write a checkpoint after every epoch to ``<out>/checkpoint``; ``resume`` (a run
    directory, ``out`` itself or another) continues from that run's checkpoint. Ctrl-C
    during training keeps the checkpoint and raises :class:`earmark.errors.Interrupted`
    (``.resume`` names the run): no model is saved from partial training.

    ``reviews`` (a reviews database or :class:`~earmark.review.store.ReviewStore`): the
    reviewed windows are added to the training part, cut from their recordings, in the
    data's classes; ``negative_label`` (default ``background``) is the single-label class
    of hard negatives (:mod:`earmark.review.training`). The test part is the data's alone,
    so a run with reviews and one without are scored on the same files.

    ``nproc`` (in ``fit``) trains a network in that many processes
    (:class:`earmark.training.Trainer`); the artifact is the one a single process saves.
    Under torchrun every process calls this: rank 0 does all of the above, the others
    train their share and return ``None``."""
    import shutil

    from earmark import artifact, ddp
    from earmark.classifier import CHECKPOINT_DIR, SAMPLES_DIR
    from earmark.errors import Interrupted

    split = split or SplitSettings()
    out = Path(out)
    if fit.pop("resume", False) and resume is None:  # the older spelling: resume=True
        resume = out
    same = resume is not None and out.resolve() == Path(resume).resolve()
    if resume is not None and classifier.family != "neural":
        raise ParameterError(f"only networks resume; {classifier.model} is {classifier.family}")
    if ddp.launched() and classifier.family != "neural":
        raise ParameterError(
            f"only networks train under torchrun; {classifier.model} is {classifier.family}"
        )
    group = ddp.current()  # torchrun's processes: rank 0 alone writes, the others train
    if not group.is_main:
        return _train_other_rank(
            data, classifier, out, split, resume, group, fit, reviews, negative_label
        )
    existed = out.exists()
    artifact.check_out(out, overwrite=overwrite or same)
    if existed and resume is None:  # the training state of an earlier run is replaced
        for name in (CHECKPOINT_DIR, SAMPLES_DIR, SETTINGS_FILE):
            stale = out / name
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    manifest = as_manifest(data)
    splits = split.apply(manifest)
    added = _with_reviews(manifest, splits, reviews, negative_label)
    settings = _settings_record(classifier, split, fit)
    checkpoint = out / CHECKPOINT_DIR
    try:
        if classifier.family == "neural":
            if resume is not None and not same:
                shutil.copytree(Path(resume) / CHECKPOINT_DIR, checkpoint, dirs_exist_ok=True)
                if (Path(resume) / SAMPLES_DIR).is_dir():
                    shutil.copytree(Path(resume) / SAMPLES_DIR, out / SAMPLES_DIR)
            fit.setdefault("checkpoint_dir", checkpoint)
            fit["resume"] = resume is not None
            _write_settings(out, settings)
            group.barrier()  # under torchrun the others wait for the checkpoint copied here
        classifier.fit(splits.train, splits.valid, on_file=on_file, **fit)
    except BaseException:
        _forget_attempt(out, checkpoint, existed)
        raise
    if classifier.training_.get("stopped") == "interrupted":
        done = classifier.training_.get("epochs", 0)
        if not Path(fit.get("checkpoint_dir", checkpoint)).exists():
            _forget_attempt(out, checkpoint, existed)
            raise Interrupted("training interrupted before its first epoch ended; nothing saved")
        raise Interrupted(
            f"training interrupted after {done} epoch{'s' * (done != 1)}; nothing saved but "
            f"the checkpoint ({fit.get('checkpoint_dir', checkpoint)})",
            resume=out,
        )
    evaluation = classifier.evaluate(splits.test, on_file=on_file)
    classifier.metrics_ = {"test": evaluation.metrics}
    sizes = splits.sizes()
    record = {
        "root": str(manifest.root) if manifest.root is not None else None,
        "layout": manifest.layout,
        "split": split.to_dict(),
        "sizes": sizes,
        "test_files": _relative(splits.test.filepaths, manifest.root),
    }
    if added is not None:
        record["reviews"] = {"database": str(reviews), **added.summary()}
    path = classifier.save(out, extra={"data": record})
    files = write_evaluation(
        path,
        evaluation,
        title=f"{classifier.model} ({classifier.features.kind}) on the test split",
        details={"model": classifier.model, "data": str(manifest.root), "split sizes": sizes},
    )
    files["settings"] = _write_settings(path, settings)
    return TrainResult(
        classifier, evaluation, sizes, path, files, added.summary() if added else None
    )


def _train_other_rank(
    data: Manifest | str | Path,
    classifier: Classifier,
    out: Path,
    split: SplitSettings,
    resume: str | Path | None,
    group: Group,
    fit: dict[str, Any],
    reviews: Any,
    negative_label: str | None,
) -> None:
    """A torchrun process other than rank 0: the same split (reviews added as rank 0 adds
    them), the same fit, in rank 0's group; rank 0 checks ``out``, copies a resumed
    checkpoint, evaluates and saves (this one waits for the copy, then trains its share and
    returns ``None``)."""
    from earmark.classifier import CHECKPOINT_DIR

    manifest = as_manifest(data)
    splits = split.apply(manifest)
    _with_reviews(manifest, splits, reviews, negative_label)
    fit.setdefault("checkpoint_dir", out / CHECKPOINT_DIR)
    fit["resume"] = resume is not None
    group.barrier()
    classifier.fit(splits.train, splits.valid, **fit)


def _with_reviews(manifest: Manifest, splits: Any, reviews: Any, negative_label: str | None) -> Any:
    """Add the reviewed windows of ``reviews`` to ``splits.train`` (in place); what was
    added (:func:`earmark.review.training.add_reviews`), or ``None`` without reviews."""
    if reviews is None:
        return None
    from earmark.data.segments import DEFAULT_NEGATIVE_LABEL
    from earmark.review.training import add_reviews

    held = splits.test.filepaths + (splits.valid.filepaths if splits.valid else [])
    splits.train, added = add_reviews(
        splits.train,
        reviews,
        classes=manifest.classes,
        negative_label=negative_label or DEFAULT_NEGATIVE_LABEL,
        held_out=held,
    )
    return added


def _settings_record(classifier: Classifier, split: SplitSettings, fit: dict[str, Any]) -> dict:
    """What :func:`earmark.settings.train_settings` needs to start this run again."""
    train = classifier.train
    if train is None and classifier.family == "neural":
        from earmark.training import TrainConfig

        train = TrainConfig(seed=classifier.seed)
    unlabeled = fit.get("unlabeled")
    return {
        "model": classifier.model,
        "params": dict(classifier.params),
        "features": classifier.features.to_dict(),
        "audio": classifier.audio.to_dict(),
        "train": train.to_dict() if train is not None else None,
        "split": split.to_dict(),
        "seed": classifier.seed,
        "unlabeled": str(unlabeled) if isinstance(unlabeled, str | Path) else None,
        "label_fraction": fit.get("label_fraction"),
    }


def _forget_attempt(out: Path, checkpoint: Path, existed: bool) -> None:
    """After a run that failed before its first checkpoint: nothing to resume, so no trace."""
    if checkpoint.exists():
        return
    (out / SETTINGS_FILE).unlink(missing_ok=True)
    if not existed and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def _write_settings(directory: Path, settings: dict[str, Any]) -> Path:
    import json

    import earmark
    from earmark.atomic import atomic_text

    doc = {"kind": "train-settings", "earmark_version": earmark.__version__, "settings": settings}
    return atomic_text(directory / SETTINGS_FILE, json.dumps(doc, indent=2) + "\n")


@dataclass
class EvaluateResult:
    evaluation: Evaluation
    split: str
    files: dict[str, Path]
    warnings: list[str]


def evaluate_run(
    run: str | Path,
    data: Manifest | str | Path,
    *,
    split: str = "test",
    out: str | Path | None = None,
    on_file: Callable[[], None] | None = None,
) -> EvaluateResult:
    """Evaluate the saved model ``run`` on one split of ``data`` (``test`` by default: the
    files training held out, recomputed with the recorded settings) or on ``all`` of it.
    Writes the evaluation files to ``out`` (default ``<run>/evaluation-<split>``)."""
    if split not in SPLITS:
        raise ParameterError(f"split must be one of {SPLITS}, got {split!r}")
    from earmark.loading import load

    classifier = load(run)
    manifest = as_manifest(data)
    part, warnings = split_of(run, manifest, split)
    evaluation = classifier.evaluate(part, on_file=on_file)
    files = write_evaluation(
        out or Path(run) / f"evaluation-{split}",
        evaluation,
        title=f"{classifier.model} on the {split} split",
        details={"model": str(run), "data": str(manifest.root), "split": split},
    )
    return EvaluateResult(evaluation, split, files, warnings)


def split_of(run: str | Path, manifest: Manifest, split: str) -> tuple[Manifest, list[str]]:
    """The ``split`` of ``manifest`` the run at ``run`` recorded (its split settings applied
    again), or ``all`` of it; with warnings when the data set changed since training."""
    from earmark import artifact

    record = artifact.read_meta(run).get("data", {})
    warnings = []
    if split == "all":
        part = manifest
    else:
        if "split" not in record:
            raise EarmarkError(f"{run}: the model records no split; use --split all")
        splits = SplitSettings.from_dict(record["split"]).apply(manifest)
        if splits.sizes() != record.get("sizes"):
            warnings.append(
                f"the data set changed since training: split sizes {splits.sizes()} "
                f"differ from the recorded {record.get('sizes')}"
            )
        elif split == "test" and sorted(_relative(splits.test.filepaths, manifest.root)) != sorted(
            record.get("test_files", [])
        ):
            warnings.append("the test files differ from those recorded at training time")
        part = getattr(splits, split)
        if part is None or len(part) == 0:
            raise EarmarkError(f"the {split} split of {manifest.root} is empty")
    return part, warnings


@dataclass
class CalibrateResult:
    calibration: Any  # earmark.calibration.Calibration
    split: str
    path: Path  # calibration.json in the run
    files: dict[str, Path]  # the report
    skipped: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)


def calibrate_run(
    run: str | Path,
    data: Manifest | str | Path,
    *,
    split: str = "valid",
    method: str = "temperature",
    target_precision: float | None = 0.9,
    best_f1: bool = False,
    min_support: int = 5,
    on_file: Callable[[], None] | None = None,
) -> CalibrateResult:
    """Fit the calibration and per-class thresholds of the saved classifier ``run`` on one
    split of ``data`` (``valid`` by default: the files training held out for validation,
    recomputed with the recorded settings; or ``all`` of it) and write them into the run
    (``calibration.json``, listed in ``earmark.json``) with a report in
    ``<run>/calibration/``. The model is scored without any earlier calibration."""
    if split not in SPLITS:
        raise ParameterError(f"split must be one of {SPLITS}, got {split!r}")
    from earmark.calibration import calibrate_model, write_calibration
    from earmark.loading import load
    from earmark.report import write_calibration_report

    classifier = load(run, calibration=False)
    if not isinstance(classifier, Classifier):
        raise EarmarkError(f"{run}: an ensemble or ONNX model; calibrate a classifier's run")
    manifest = as_manifest(data)
    part, warnings = split_of(run, manifest, split)
    fitted = calibrate_model(
        classifier,
        part,
        method=method,
        target_precision=target_precision,
        best_f1=best_f1,
        min_support=min_support,
        on_file=on_file,
    )
    cal = fitted.calibration
    cal.validation |= {"data": str(manifest.root), "split": split}
    files = write_calibration_report(Path(run) / "calibration", cal, fitted.proba, fitted.targets)
    path = write_calibration(run, cal)
    return CalibrateResult(cal, split, path, files, fitted.skipped, warnings)


def run_cv(
    data: Manifest | str | Path,
    classifier: Classifier,
    *,
    folds: int | None = None,
    group: bool | None = None,
    seed: int = 0,
    on_file: Callable[[], None] | None = None,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    table: FeatureTable | None = None,
) -> tuple[CVResult, list[tuple[str, str]]]:
    """Cross-validate ``classifier``'s settings on ``data``: the data set's predefined folds
    when it has them and ``folds`` is not given, else ``folds``-fold (default 5), grouped
    whenever the manifest has groups (unless ``group=False``). Returns the result and the
    files skipped as unreadable.

    Classical learners: features are computed once (or taken from ``table``, the feature
    table of these settings on ``data``, as :func:`earmark.tuning.tune` reuses it across
    trials) and a fresh learner is fitted per fold. Networks: one training per fold through
    :meth:`Classifier.fit` (the Trainer of ``earmark train``, same settings and seed, so the
    same seed gives the same folds and results), holding out its early-stopping data from the
    fold's training part (group-aware), never from the test fold; ``on_epoch(fold, record)``
    reports each epoch. ``on_fold(fold, metrics)`` reports each fold's metrics as it ends (a
    pruner may stop the run there by raising). Ctrl-C during a network's training raises
    :class:`earmark.errors.Interrupted`."""
    manifest = as_manifest(data)
    if classifier.family == "neural":
        return _cv_networks(
            manifest, classifier, folds, group, seed, on_file=on_file, on_fold=on_fold,
            on_epoch=on_epoch,
        )  # fmt: skip
    from earmark.models.classical import ClassicalModel

    if table is None:
        table = classifier.features_of(manifest, on_file=on_file)
    # the manifest's rows the table kept: by file, and by span for the segments of a file
    rows = {
        (p, s): i for i, (p, s) in enumerate(zip(manifest.filepaths, manifest.spans, strict=True))
    }
    spans = table.spans or [None] * len(table.filepaths)
    kept = manifest.subset([rows[p, s] for p, s in zip(table.filepaths, spans, strict=True)])
    splits, kind = cv_folds(kept, folds, group=group, seed=seed)
    X = table.X.reshape(len(table.X), -1)  # classical learners: one vector per clip
    result = cross_validate(
        X,
        np.asarray(table.y),
        table.classes,
        splits,
        lambda: ClassicalModel(classifier.model, classifier.params, random_state=classifier.seed),
        kind=kind,
        on_fold=on_fold,
    )
    return result, table.skipped


def cv_folds(
    manifest: Manifest, folds: int | None, *, group: bool | None = None, seed: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The (train rows, test rows) of each fold of ``manifest`` and what kind of folds they
    are: its predefined folds when it has them and ``folds`` is ``None``, else ``folds``-fold
    (default 5), grouped whenever it has groups (unless ``group=False``)."""
    from earmark.data.splits import kfold, predefined_folds

    if folds is None and manifest.has_folds:
        return predefined_folds(manifest), "predefined folds"
    grouped = manifest.has_groups if group is None else group
    splits = kfold(manifest, folds or 5, group=grouped, seed=seed)
    return splits, "group k-fold" if grouped else "stratified k-fold"


def _cv_networks(
    manifest: Manifest,
    classifier: Classifier,
    folds: int | None,
    group: bool | None,
    seed: int,
    *,
    on_file: Callable[[], None] | None,
    on_fold: Callable[[int, dict[str, float]], None] | None,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> tuple[CVResult, list[tuple[str, str]]]:
    """:func:`run_cv` for networks: a fresh classifier of the same settings trained per fold
    by :meth:`Classifier.fit` and scored on the fold's test files among all the classes of
    ``manifest`` (a class missing from a fold's training part scores 0, as for classical
    learners)."""
    from earmark.errors import Interrupted
    from earmark.evaluation import evaluate
    from earmark.predict import pooled_scores

    splits, kind = cv_folds(manifest, folds, group=group, seed=seed)
    classes = manifest.subset(manifest.labelled).classes
    results, sizes = [], []
    skipped: dict[str, str] = {}
    for i, (train_rows, test_rows) in enumerate(splits):
        clf = Classifier(
            classifier.model,
            features=classifier.features,
            audio=classifier.audio,
            params=classifier.params,
            seed=classifier.seed,
            cache_dir=classifier.cache_dir,
            workers=classifier.workers,
            pooling=classifier.pooling,
            train=classifier.train,
        )
        hooks = {} if on_epoch is None else {"on_epoch": functools.partial(on_epoch, i)}
        clf.fit(manifest.subset(train_rows), on_file=on_file, **hooks)
        if clf.training_.get("stopped") == "interrupted":
            raise Interrupted(
                f"cross-validation interrupted in fold {i + 1} of {len(splits)}; nothing saved"
            )
        skipped |= dict(clf.skipped_)
        test = manifest.subset(test_rows)
        preds = clf.predict_files(test, top_k=len(clf.classes_), on_file=on_file)
        skipped |= {p.path: p.error for p in preds if p.error is not None}
        labels = test.frame["label"].astype(str).tolist()
        kept = [k for k, p in enumerate(preds) if p.error is None]
        if not kept:
            raise EarmarkError(f"fold {i + 1}: none of its {len(test)} test files could be read")
        proba = np.zeros((len(kept), len(classes)))
        proba[:, [classes.index(c) for c in clf.classes_]] = pooled_scores(
            [preds[k] for k in kept], clf.classes_
        )
        y = np.array([classes.index(labels[k]) for k in kept])
        metrics = evaluate(y, proba, classes).metrics
        results.append(metrics)
        sizes.append(len(kept))
        if on_fold is not None:
            on_fold(i, metrics)
    if not results:
        raise ParameterError("no folds to cross-validate")
    return CVResult(folds=results, kind=kind, fold_sizes=sizes), sorted(skipped.items())
