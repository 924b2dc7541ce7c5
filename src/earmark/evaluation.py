"""Honest evaluation: metrics, per-class table, confusion matrix, cross-validation.

Every figure comes from scikit-learn's metrics on held-out predictions. Cross-validation
never puts a group on both sides (see :mod:`earmark.data.splits`) and reports the per-fold
figures beside their mean and standard deviation.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

from earmark.errors import ParameterError

__all__ = [
    "CVResult",
    "Evaluation",
    "calibrate",
    "cross_validate",
    "evaluate",
    "evaluate_multilabel",
    "resolve_thresholds",
]

#: The headline metrics, in the order tables show them.
METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
)

#: The headline metrics of a multi-label evaluation, in the order tables show them.
MULTILABEL_METRICS = (
    "map",
    "map_micro",
    "roc_auc_macro",
    "f1_macro",
    "f1_micro",
    "precision_macro",
    "recall_macro",
    "accuracy",
    "hamming_loss",
)

#: The score at or above which a multi-label class counts as present when the run has no
#: threshold of its own for it.
DEFAULT_THRESHOLD = 0.5


@dataclass
class Evaluation:
    """Metrics of predictions against the truth, over ``classes`` (label names).

    Single-label: ``y_true`` holds class indices, ``confusion`` is ``[true, predicted]``.
    Multi-label (``multi_label``): ``y_true`` is the multi-hot ``[n, classes]`` matrix,
    ``thresholds`` the per-class score a class is predicted present at, and ``confusion``
    is ``[classes, 2, 2]`` (per class ``[[TN, FP], [FN, TP]]``, scikit-learn's
    ``multilabel_confusion_matrix``)."""

    classes: list[str]
    y_true: np.ndarray  # class indices; multi-label: multi-hot [n, n_classes]
    proba: np.ndarray  # [n, n_classes]
    metrics: dict[str, float]
    per_class: pd.DataFrame  # class, precision, recall, f1, support (multi-label: + ap, ...)
    confusion: np.ndarray  # counts [true, predicted]; multi-label: [classes, 2, 2]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable (path, why)
    multi_label: bool = False
    thresholds: np.ndarray | None = None  # multi-label: [n_classes]

    @property
    def y_pred(self) -> np.ndarray:
        """Predicted class indices; multi-label: the multi-hot matrix at ``thresholds``."""
        if self.multi_label:
            return (self.proba >= self.thresholds[None, :]).astype(np.int64)
        return np.argmax(self.proba, axis=1)

    @property
    def confusion_normalized(self) -> np.ndarray:
        """Rows sum to 1 (recall per true class); empty rows stay 0."""
        rows = self.confusion.sum(axis=-1, keepdims=True)
        return np.divide(self.confusion, rows, out=np.zeros(self.confusion.shape), where=rows > 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metrics, per-class rows, confusion counts and class names (a metric
        undefined for a class, such as AP without positives, is ``null``)."""
        rows = self.per_class.astype(object).where(self.per_class.notna(), None)
        out = {
            "n": len(self.y_true),
            "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
            "per_class": rows.to_dict(orient="records"),
            "confusion": self.confusion.tolist(),
            "classes": self.classes,
            "skipped": [{"path": p, "error": e} for p, e in self.skipped],
        }
        if self.multi_label:
            out["multi_label"] = True
            out["thresholds"] = dict(zip(self.classes, self.thresholds.tolist(), strict=True))
        return out


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and np.isnan(value) else value


def _top_k(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    """scikit-learn's top-k accuracy, ties ranked as ``argmax`` ranks them (lower class
    index first, so top-1 is the accuracy); scikit-learn ranks the higher index first, hence
    the reversed columns. Two classes: only k=1 exists, which is the accuracy."""
    n = proba.shape[1]
    if n <= 2:
        return float(accuracy_score(y_true, np.argmax(proba, axis=1)))
    return float(top_k_accuracy_score(n - 1 - y_true, proba[:, ::-1], k=k, labels=np.arange(n)))


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's balanced accuracy (mean recall over the classes present), without its
    warning whenever a held-out set lacks a class the model predicted."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def calibrate(model: Any, data: Any, **options: Any) -> Any:
    """Per-class calibration and thresholds of ``model`` fitted on the labelled files of
    ``data`` (``method``, ``target_precision`` / ``best_f1``, ``min_support``: see
    :func:`earmark.calibration.calibrate_model`); returns the
    :class:`~earmark.calibration.Calibration` (its ``thresholds``: class -> threshold on the
    calibrated scores, so attach it, ``model.calibration_ = result``, to score with them)."""
    from earmark.calibration import calibrate_model

    return calibrate_model(model, data, **options).calibration


def evaluate(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    *,
    top_k: Sequence[int] = (3, 5),
) -> Evaluation:
    """Metrics of class probabilities ``proba`` (``[n, n_classes]``, columns in ``classes``
    order) against true class indices ``y_true``.

    Accuracy, balanced accuracy, macro and weighted precision / recall / F1, top-k accuracy
    for each ``k`` smaller than the number of classes, a per-class table and the confusion
    matrix. Classes never predicted get precision 0 (scikit-learn's ``zero_division=0``).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    classes = list(classes)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ParameterError(
            f"proba must be [n={len(y_true)}, n_classes={len(classes)}], got {proba.shape}"
        )
    if len(y_true) == 0:
        raise ParameterError("nothing to evaluate: no labelled examples")
    if y_true.min() < 0 or y_true.max() >= len(classes):
        raise ParameterError("y_true holds class indices outside 0..n_classes-1")
    y_pred = np.argmax(proba, axis=1)
    labels = np.arange(len(classes))
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
    }
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=np.unique(y_true), average=avg, zero_division=0
        )
        metrics |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
    for k in top_k:
        if k < len(classes):
            metrics[f"top{k}_accuracy"] = _top_k(y_true, proba, k)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    per_class = pd.DataFrame(
        {"class": classes, "precision": p, "recall": r, "f1": f, "support": s.astype(int)}
    )
    return Evaluation(
        classes=classes,
        y_true=y_true,
        proba=proba,
        metrics=metrics,
        per_class=per_class,
        confusion=confusion_matrix(y_true, y_pred, labels=labels),
    )


def resolve_thresholds(
    classes: Sequence[str],
    thresholds: float | Sequence[float] | dict[str, float] | None = None,
) -> np.ndarray:
    """Per-class thresholds ``[n_classes]``: one number for every class, a sequence in
    ``classes`` order, or a mapping class -> threshold (a run's calibrated ``thresholds``;
    classes it leaves out get :data:`DEFAULT_THRESHOLD`). Raises :class:`ParameterError`
    for a value outside [0, 1] or a class not in ``classes``."""
    classes = list(classes)
    if thresholds is None:
        out = np.full(len(classes), DEFAULT_THRESHOLD)
    elif isinstance(thresholds, dict):
        unknown = sorted(set(thresholds) - set(classes))
        if unknown:
            raise ParameterError(f"threshold for {unknown[0]!r}, which is not one of {classes}")
        out = np.array([float(thresholds.get(c, DEFAULT_THRESHOLD)) for c in classes])
    elif np.ndim(thresholds) == 0:
        out = np.full(len(classes), float(thresholds))
    else:
        out = np.asarray(thresholds, dtype=np.float64)
        if out.shape != (len(classes),):
            raise ParameterError(f"{len(out)} thresholds for {len(classes)} classes")
    if not np.all((out >= 0) & (out <= 1)):
        raise ParameterError(f"thresholds must be in [0, 1], got {out.tolist()}")
    return out


def evaluate_multilabel(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    *,
    thresholds: float | Sequence[float] | dict[str, float] | None = None,
) -> Evaluation:
    """Metrics of per-class scores ``proba`` (``[n, n_classes]``, each in [0, 1], columns in
    ``classes`` order) against multi-hot ``y_true`` (``[n, n_classes]``; a row of zeros: no
    class present).

    Ranking metrics, which need no threshold: ``map`` (mean over classes of scikit-learn's
    average precision; classes without a positive example have no AP and are left out of
    the mean), ``map_micro`` and ``roc_auc_macro`` (classes with positives and negatives).
    At the ``thresholds`` (:func:`resolve_thresholds`; default 0.5 for every class): macro
    and micro F1, macro precision and recall, exact-match ``accuracy`` (every class of a
    clip right) and the Hamming loss. Per class: ``ap``, ``roc_auc`` (NaN where undefined),
    ``precision``, ``recall``, ``f1`` at its threshold, ``support`` (clips where it is
    present) and the ``threshold``."""
    classes = list(classes)
    y_true = np.asarray(y_true, dtype=np.float64)
    proba = np.asarray(proba, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape[1] != len(classes):
        raise ParameterError(
            f"y_true must be multi-hot [n, n_classes={len(classes)}], got {y_true.shape}"
        )
    if proba.shape != y_true.shape:
        raise ParameterError(f"proba must be {list(y_true.shape)}, got {list(proba.shape)}")
    if len(y_true) == 0:
        raise ParameterError("nothing to evaluate: no labelled examples")
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise ParameterError("y_true must hold only 0 and 1")
    y = y_true.astype(np.int64)
    cut = resolve_thresholds(classes, thresholds)
    y_pred = (proba >= cut[None, :]).astype(np.int64)
    positives = y.sum(axis=0)
    ap = np.full(len(classes), np.nan)
    auc = np.full(len(classes), np.nan)
    for k in range(len(classes)):
        if positives[k] > 0:
            ap[k] = average_precision_score(y[:, k], proba[:, k])
            if positives[k] < len(y):
                auc[k] = roc_auc_score(y[:, k], proba[:, k])
    p, r, f, _ = precision_recall_fscore_support(y, y_pred, average=None, zero_division=0)
    metrics = {
        "map": float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan"),
        "map_micro": float(average_precision_score(y, proba, average="micro"))
        if positives.sum()
        else float("nan"),
        "roc_auc_macro": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
    }
    for avg in ("macro", "micro"):
        pa, ra, fa, _ = precision_recall_fscore_support(y, y_pred, average=avg, zero_division=0)
        metrics |= {f"f1_{avg}": float(fa)}
        if avg == "macro":
            metrics |= {"precision_macro": float(pa), "recall_macro": float(ra)}
    metrics["accuracy"] = float(accuracy_score(y, y_pred))  # exact match
    metrics["hamming_loss"] = float(hamming_loss(y, y_pred))
    metrics = {k: metrics[k] for k in MULTILABEL_METRICS}
    per_class = pd.DataFrame(
        {
            "class": classes,
            "precision": p,
            "recall": r,
            "f1": f,
            "support": positives.astype(int),
            "ap": ap,
            "roc_auc": auc,
            "threshold": cut,
        }
    )
    return Evaluation(
        classes=classes,
        y_true=y,
        proba=proba,
        metrics=metrics,
        per_class=per_class,
        confusion=multilabel_confusion_matrix(y, y_pred, labels=np.arange(len(classes))),
        multi_label=True,
        thresholds=cut,
    )


@dataclass
class CVResult:
    """Per-fold metrics and their mean and standard deviation across folds."""

    folds: list[dict[str, float]]
    kind: str  # "k-fold", "group k-fold" or "predefined folds"
    fold_sizes: list[int] = field(default_factory=list)

    @property
    def mean(self) -> dict[str, float]:
        return {k: float(np.mean([f[k] for f in self.folds])) for k in self.folds[0]}

    @property
    def std(self) -> dict[str, float]:
        return {k: float(np.std([f[k] for f in self.folds])) for k in self.folds[0]}

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": self.mean, "std": self.std}


def cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    make_model: Callable[[], Any],
    *,
    kind: str = "k-fold",
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
) -> CVResult:
    """Fit a fresh ``make_model()`` on each fold's training rows of ``X`` and evaluate it on
    the fold's test rows. ``y`` holds class indices into ``classes``; rows with ``y < 0``
    (unlabelled) are never used by classical learners. A multi-hot ``y`` (``[n, classes]``)
    is multi-label: the model fits the matrix (one-vs-rest) and each fold is scored by
    :func:`evaluate_multilabel`. ``on_fold(i, metrics)`` reports progress.
    """
    labels = np.asarray(classes, dtype=object)
    multi_label = np.ndim(y) == 2  # every row labelled; the model's columns are the classes

    def scored(train: np.ndarray, test: np.ndarray) -> dict[str, float]:
        if multi_label:
            model = make_model().fit(X[train], y[train])
            return evaluate_multilabel(y[test], model.predict_proba(X[test]), classes).metrics
        train = train[y[train] >= 0]
        model = make_model().fit(X[train], labels[y[train]])
        # The model's columns follow the classes it saw; place them among all classes.
        proba = np.zeros((len(test), len(classes)))
        cols = [list(labels).index(c) for c in model.classes_]
        proba[:, cols] = model.predict_proba(X[test])
        return evaluate(y[test], proba, classes).metrics

    results, sizes = [], []
    for i, (train, test) in enumerate(folds):
        metrics = scored(train, test)
        results.append(metrics)
        sizes.append(len(test))
        if on_fold is not None:
            on_fold(i, metrics)
    if not results:
        raise ParameterError("no folds to cross-validate")
    return CVResult(folds=results, kind=kind, fold_sizes=sizes)
