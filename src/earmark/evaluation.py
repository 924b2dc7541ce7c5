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
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from earmark.errors import ParameterError

__all__ = ["CVResult", "Evaluation", "cross_validate", "evaluate"]

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


@dataclass
class Evaluation:
    """Metrics of predictions against the truth, over ``classes`` (label names)."""

    classes: list[str]
    y_true: np.ndarray  # class indices
    proba: np.ndarray  # [n, n_classes]
    metrics: dict[str, float]
    per_class: pd.DataFrame  # class, precision, recall, f1, support
    confusion: np.ndarray  # counts [true, predicted]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable (path, why)

    @property
    def y_pred(self) -> np.ndarray:
        return np.argmax(self.proba, axis=1)

    @property
    def confusion_normalized(self) -> np.ndarray:
        """Rows sum to 1 (recall per true class); empty rows stay 0."""
        rows = self.confusion.sum(axis=1, keepdims=True)
        return np.divide(self.confusion, rows, out=np.zeros(self.confusion.shape), where=rows > 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metrics, per-class rows, confusion counts and class names."""
        return {
            "n": len(self.y_true),
            "metrics": self.metrics,
            "per_class": self.per_class.to_dict(orient="records"),
            "confusion": self.confusion.tolist(),
            "classes": self.classes,
            "skipped": [{"path": p, "error": e} for p, e in self.skipped],
        }


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
    (unlabelled) are never used by classical learners. ``on_fold(i, metrics)`` reports progress.
    """
    labels = np.asarray(classes, dtype=object)
    results, sizes = [], []
    for i, (train, test) in enumerate(folds):
        train = train[y[train] >= 0]
        model = make_model().fit(X[train], labels[y[train]])
        # The model's columns follow the classes it saw; place them among all classes.
        proba = np.zeros((len(test), len(classes)))
        cols = [list(labels).index(c) for c in model.classes_]
        proba[:, cols] = model.predict_proba(X[test])
        metrics = evaluate(y[test], proba, classes).metrics
        results.append(metrics)
        sizes.append(len(test))
        if on_fold is not None:
            on_fold(i, metrics)
    if not results:
        raise ParameterError("no folds to cross-validate")
    return CVResult(folds=results, kind=kind, fold_sizes=sizes)
