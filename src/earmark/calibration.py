"""Calibration and per-class thresholds, fitted on a model's validation scores.

A model's probabilities are often over- or under-confident, and "0.5" is rarely the score a
practitioner can defend. :func:`fit_calibration` takes the scores a model gave labelled
validation data (``[n, classes]`` probabilities, and the truth as a multi-hot ``[n, classes]``
matrix) and fits:

- a calibration map, per class: **temperature** scaling (sigmoid outputs: one temperature
  per class on each class's log-odds; softmax outputs: one temperature for all, on the
  log-probabilities, which are the logits up to a constant) fitted by minimizing the log
  loss with :func:`scipy.optimize.minimize_scalar`; or **Platt** scaling (a logistic
  regression, scikit-learn's, on each class's log-odds; softmax outputs are renormalized to
  sum to one afterwards, as scikit-learn's ``CalibratedClassifierCV`` does);
- a decision threshold per class on the *calibrated* scores: the lowest threshold whose
  validation precision reaches a target (among thresholds that keep at least
  ``min_support`` examples above them, so a precision measured on two clips does not count),
  or the threshold of the best F1 (:func:`sklearn.metrics.precision_recall_curve` either
  way). A target no threshold reaches is reported per class (``reached: false``) and the
  class gets the threshold of its highest validation precision.

The result, a :class:`Calibration`, is plain data (a JSON round trip, checked on the way
in), and :meth:`Calibration.apply` maps raw scores to calibrated ones. In a run it is
``calibration.json`` beside ``earmark.json``, listed there with its SHA-256
(:func:`write_calibration`, :func:`read_calibration`); the classifier applies it to every
window it scores, so ``predict``, ``evaluate``, ``detect`` and ``serve`` see calibrated
probabilities and use its thresholds by default. Pure numpy / scipy / scikit-learn: no audio.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.errors import ParameterError

__all__ = [
    "CALIBRATION_FILE",
    "METHODS",
    "Calibration",
    "Fitted",
    "ThresholdChoice",
    "calibrate_model",
    "expected_calibration_error",
    "fit_calibration",
    "fit_platt",
    "fit_temperature",
    "one_hot",
    "read_calibration",
    "reliability",
    "threshold_best_f1",
    "threshold_for_precision",
    "write_calibration",
]

CALIBRATION_FILE = "calibration.json"
KIND = "earmark-calibration"
VERSION = 1
METHODS = ("temperature", "platt")
#: Scores are clipped this far from 0 and 1 before taking log-odds (a probability of exactly
#: 0 or 1 has none).
EPS = 1e-7
#: Temperatures are refused outside [1/LIMIT, LIMIT] when read, and searched in
#: [MIN_TEMPERATURE, LIMIT]: a validation set the model separates perfectly has its log loss
#: falling all the way to T -> 0 (scores saturated at 0 and 1, thresholds on ties), and
#: sharpening a model more than tenfold only ever fits such a set.
TEMPERATURE_LIMIT = 1e3
MIN_TEMPERATURE = 0.1
#: Platt slopes and intercepts beyond this are refused when read.
PLATT_LIMIT = 1e4


# -- the maps -------------------------------------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


def _softmax(z: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(z, axis=1)


def _log_proba(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0))


def fit_temperature(proba: np.ndarray, targets: np.ndarray, *, multi_label: bool) -> list[float]:
    """Temperatures minimizing the validation log loss of ``proba`` (``[n, classes]``)
    against multi-hot ``targets``: one per class for sigmoid outputs (``multi_label``: each
    class's log-odds divided by its own), one for softmax outputs (the log-probabilities
    divided by it, then the softmax). A class without both a positive and a negative example
    keeps 1 (nothing to fit). Searched on log T over [0.1, 1000]
    (:data:`MIN_TEMPERATURE`)."""
    from scipy.optimize import minimize_scalar

    proba, targets = _check_scores(proba, targets)
    bounds = (math.log(MIN_TEMPERATURE), math.log(TEMPERATURE_LIMIT))

    def best(loss: Callable[[float], float]) -> float:
        res = minimize_scalar(loss, bounds=bounds, method="bounded")
        return float(math.exp(res.x))

    if not multi_label:
        z = _log_proba(proba)
        y = np.argmax(targets, axis=1)
        rows = np.arange(len(y))

        def nll(log_t: float) -> float:
            from scipy.special import log_softmax

            return float(-log_softmax(z / math.exp(log_t), axis=1)[rows, y].mean())

        return [best(nll)]
    temps = []
    for c in range(proba.shape[1]):
        y = targets[:, c]
        if y.min() == y.max():
            temps.append(1.0)
            continue
        z = _logit(proba[:, c])

        def bce(log_t: float, z: np.ndarray = z, y: np.ndarray = y) -> float:
            s = z / math.exp(log_t)
            # log(1 + e^s) - y s: the binary cross-entropy on log-odds, stable for large |s|
            return float((np.logaddexp(0.0, s) - y * s).mean())

        temps.append(best(bce))
    return temps


def fit_platt(proba: np.ndarray, targets: np.ndarray) -> tuple[list[float], list[float]]:
    """Platt scaling per class: a logistic regression of each class's truth on its
    log-odds (scikit-learn, almost unregularized); returns the slopes and intercepts. A
    class without both a positive and a negative example keeps the identity (1, 0)."""
    from sklearn.linear_model import LogisticRegression

    proba, targets = _check_scores(proba, targets)
    slopes, intercepts = [], []
    for c in range(proba.shape[1]):
        y = targets[:, c]
        if y.min() == y.max():
            slopes.append(1.0)
            intercepts.append(0.0)
            continue
        lr = LogisticRegression(C=1e4, max_iter=1000)
        lr.fit(_logit(proba[:, c])[:, None], y.astype(int))
        slopes.append(float(lr.coef_[0, 0]))
        intercepts.append(float(lr.intercept_[0]))
    return slopes, intercepts


# -- thresholds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold chosen for one class and what it gives on the validation data:
    ``precision`` and ``recall`` of ``score >= threshold``, ``predicted`` (how many examples
    reach it), ``positives`` (of the class), ``reached`` (the target precision was met;
    always true for best F1) and ``note`` (why not, or ``""``)."""

    threshold: float
    precision: float
    recall: float
    f1: float
    predicted: int
    positives: int
    reached: bool = True
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "predicted": self.predicted,
            "positives": self.positives,
            "reached": self.reached,
            "note": self.note,
        }


def _curve(
    scores: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, thresholds (ascending) and the number of examples at or above each
    threshold, from :func:`sklearn.metrics.precision_recall_curve` (which does not return
    that count: it is counted here from the sorted scores)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(truth, scores)
    ordered = np.sort(scores)
    predicted = len(scores) - np.searchsorted(ordered, thresholds, side="left")
    return precision[:-1], recall[:-1], thresholds, predicted


def _choice(
    i: int, p: np.ndarray, r: np.ndarray, t: np.ndarray, n: np.ndarray, positives: int, **kw: Any
) -> ThresholdChoice:
    f1 = 2 * p[i] * r[i] / (p[i] + r[i]) if p[i] + r[i] > 0 else 0.0
    return ThresholdChoice(
        threshold=float(min(max(t[i], 0.0), 1.0)),
        precision=float(p[i]),
        recall=float(r[i]),
        f1=float(f1),
        predicted=int(n[i]),
        positives=positives,
        **kw,
    )


def _binary(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(truth).ravel().astype(int)
    if scores.shape != truth.shape or not len(scores):
        raise ParameterError(
            f"scores and truth must be two non-empty vectors of one length, got {scores.shape} "
            f"and {truth.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ParameterError("scores hold NaN or infinite values")
    return scores, truth


def _never(scores: np.ndarray) -> ThresholdChoice:
    """A class without a positive example: threshold 1.0 (it never fires), said so."""
    return ThresholdChoice(
        1.0, 0.0, 0.0, 0.0, int((scores >= 1.0).sum()), 0, False, "no positive example in the data"
    )


def threshold_for_precision(
    scores: np.ndarray, truth: np.ndarray, target: float, *, min_support: int = 5
) -> ThresholdChoice:
    """The lowest threshold on ``scores`` whose precision on ``truth`` (0/1) is at least
    ``target``, among thresholds that at least ``min_support`` examples reach. When none
    does: the threshold of the highest such precision (the lowest among ties), with
    ``reached=False`` and a note saying so; a class with no positive example gets 1.0 (it
    never fires) and a note."""
    if not 0.0 < target <= 1.0:
        raise ParameterError(f"target precision must be in (0, 1], got {target}")
    scores, truth = _binary(scores, truth)
    positives = int(truth.sum())
    if positives == 0:
        return _never(scores)
    p, r, t, n = _curve(scores, truth)
    eligible = n >= min_support
    ok = np.flatnonzero(eligible & (p >= target - 1e-12))
    if len(ok):
        return _choice(int(ok[0]), p, r, t, n, positives)
    pool = np.flatnonzero(eligible)
    why = f"target precision {target:g} not reached"
    if not len(pool):
        pool = np.arange(len(t))
        why += f" (fewer than {min_support} examples in the data)"
    i = int(pool[np.argmax(p[pool])])
    note = f"{why}; best precision {p[i]:.3f} at threshold {t[i]:.4g}"
    return _choice(i, p, r, t, n, positives, reached=False, note=note)


def threshold_best_f1(scores: np.ndarray, truth: np.ndarray) -> ThresholdChoice:
    """The threshold on ``scores`` of the highest F1 on ``truth`` (0/1), the lowest among
    ties; a class with no positive example gets 1.0 and a note."""
    scores, truth = _binary(scores, truth)
    positives = int(truth.sum())
    if positives == 0:
        return _never(scores)
    p, r, t, n = _curve(scores, truth)
    denom = p + r
    f1 = np.divide(2 * p * r, denom, out=np.zeros_like(p), where=denom > 0)
    return _choice(int(np.argmax(f1)), p, r, t, n, positives)


# -- reliability ----------------------------------------------------------------------------


def reliability(
    scores: np.ndarray, truth: np.ndarray, *, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reliability diagram's points: per equal-width score bin (of ``bins`` over [0, 1]),
    the mean score, the fraction of positives and the count (empty bins: NaN, NaN, 0)."""
    scores, truth = _binary(scores, truth)
    which = np.clip((scores * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    sums = np.bincount(which, weights=scores, minlength=bins)
    hits = np.bincount(which, weights=truth, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts, hits / counts, counts


def expected_calibration_error(proba: np.ndarray, targets: np.ndarray, *, bins: int = 15) -> float:
    """Class-wise expected calibration error: for each class, the count-weighted mean gap
    between the mean score and the fraction of positives over ``bins`` equal-width bins;
    averaged over the classes (softmax outputs are judged one class against the rest)."""
    proba, targets = _check_scores(proba, targets)
    errors = []
    for c in range(proba.shape[1]):
        conf, frac, counts = reliability(proba[:, c], targets[:, c], bins=bins)
        used = counts > 0
        errors.append(float((counts[used] * np.abs(conf[used] - frac[used])).sum() / len(proba)))
    return float(np.mean(errors))


# -- the result -----------------------------------------------------------------------------


@dataclass
class Calibration:
    """A fitted calibration map and per-class thresholds (plain data, see
    :meth:`to_dict`).

    ``method``: ``temperature`` or ``platt``; ``multi_label``: the scores are independent
    sigmoids (else one softmax); ``params``: ``{"temperature": [...]}`` (one per class, or
    one for softmax) or ``{"slope": [...], "intercept": [...]}`` (one per class);
    ``criterion``: ``precision`` (``target_precision``, ``min_support``) or ``f1``;
    ``thresholds``: class -> threshold on the calibrated scores; ``per_class``: class ->
    :class:`ThresholdChoice` as a dict (validation precision, recall, reached...);
    ``validation``: what it was fitted on (examples, ECE before and after)."""

    method: str
    multi_label: bool
    classes: list[str]
    params: dict[str, list[float]]
    criterion: str = "precision"
    target_precision: float | None = None
    min_support: int = 5
    thresholds: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated scores of raw ones (``[n, classes]`` in :attr:`classes` order), in the
        input's float dtype."""
        raw = np.asarray(proba)
        if raw.ndim != 2 or raw.shape[1] != len(self.classes):
            raise ParameterError(
                f"scores must be [n, {len(self.classes)}] (the calibrated classes), got {raw.shape}"
            )
        if self.method == "temperature":
            t = np.asarray(self.params["temperature"], dtype=np.float64)
            if self.multi_label:
                out = _sigmoid(_logit(raw) / t[None, :])
            else:
                out = _softmax(_log_proba(raw) / t[0])
        else:
            a = np.asarray(self.params["slope"], dtype=np.float64)[None, :]
            b = np.asarray(self.params["intercept"], dtype=np.float64)[None, :]
            out = _sigmoid(a * _logit(raw) + b)
            if not self.multi_label:  # one softmax's classes: renormalized to sum to one
                out = out / np.maximum(out.sum(axis=1, keepdims=True), EPS)
        dtype = raw.dtype if np.issubdtype(raw.dtype, np.floating) else np.float64
        return out.astype(dtype, copy=False)

    def wrap(self, score: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray]:
        """``score`` (model input -> raw ``[n, classes]`` scores) followed by :meth:`apply`:
        what a predictor scores with once calibrated."""

        def calibrated(x: Any) -> np.ndarray:
            return self.apply(np.asarray(score(x)))

        return calibrated

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "version": VERSION,
            "method": self.method,
            "multi_label": self.multi_label,
            "classes": list(self.classes),
            "params": {k: [float(v) for v in vs] for k, vs in self.params.items()},
            "criterion": self.criterion,
            "target_precision": self.target_precision,
            "min_support": self.min_support,
            "thresholds": dict(self.thresholds),
            "per_class": {c: dict(v) for c, v in self.per_class.items()},
            "validation": dict(self.validation),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any) -> Calibration:
        """Check and build; raises :class:`ParameterError` naming the first bad field."""
        return _parse(d)


def _check_scores(proba: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != targets.shape or not len(proba):
        raise ParameterError(
            f"scores and targets must be [n, classes] of one shape, n > 0; got {proba.shape} "
            f"and {targets.shape}"
        )
    if not np.all(np.isfinite(proba)):
        raise ParameterError("scores hold NaN or infinite values")
    if proba.min() < 0 or proba.max() > 1:
        raise ParameterError("scores must be probabilities in [0, 1]")
    if not np.isin(targets, (0.0, 1.0)).all():
        raise ParameterError("targets must be 0 or 1 (multi-hot)")
    return proba, targets


def one_hot(y: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices as a one-hot ``[n, n_classes]`` matrix."""
    y = np.asarray(y, dtype=np.int64)
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1.0
    return out


def fit_calibration(
    proba: np.ndarray,
    targets: np.ndarray,
    classes: Sequence[str],
    *,
    multi_label: bool,
    method: str = "temperature",
    target_precision: float | None = 0.9,
    best_f1: bool = False,
    min_support: int = 5,
) -> Calibration:
    """Fit ``method``'s map on raw validation scores ``proba`` (``[n, classes]``) against the
    multi-hot ``targets`` (single-label truth: :func:`one_hot`), then choose each class's
    threshold on the calibrated scores: for ``target_precision`` (the lowest threshold with
    that validation precision, :func:`threshold_for_precision`) or, with ``best_f1``, for the
    best F1. Raises :class:`ParameterError` for a bad setting or bad scores."""
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if best_f1:
        target_precision = None
    elif target_precision is None or not 0.0 < target_precision <= 1.0:
        raise ParameterError(f"target precision must be in (0, 1], got {target_precision}")
    if min_support < 1:
        raise ParameterError(f"min support must be at least 1, got {min_support}")
    classes = [str(c) for c in classes]
    proba, targets = _check_scores(proba, targets)
    if proba.shape[1] != len(classes):
        raise ParameterError(f"scores have {proba.shape[1]} columns for {len(classes)} classes")
    if not multi_label and not np.all(targets.sum(axis=1) == 1):
        raise ParameterError("single-label targets must have exactly one class per row")
    if method == "temperature":
        params = {"temperature": fit_temperature(proba, targets, multi_label=multi_label)}
    else:
        slopes, intercepts = fit_platt(proba, targets)
        params = {"slope": slopes, "intercept": intercepts}
    cal = Calibration(
        method=method,
        multi_label=multi_label,
        classes=classes,
        params=params,
        criterion="f1" if best_f1 else "precision",
        target_precision=target_precision,
        min_support=min_support,
    )
    # thresholds on the scores as the predictor gives them (float32), so that the example
    # a threshold was taken from still reaches it at prediction time
    calibrated = cal.apply(proba.astype(np.float32)).astype(np.float64)
    for c, name in enumerate(classes):
        if best_f1:
            choice = threshold_best_f1(calibrated[:, c], targets[:, c])
        else:
            choice = threshold_for_precision(
                calibrated[:, c], targets[:, c], target_precision, min_support=min_support
            )
        cal.thresholds[name] = choice.threshold
        cal.per_class[name] = choice.to_dict()
    cal.validation = {
        "examples": len(proba),
        "ece_before": expected_calibration_error(proba, targets),
        "ece_after": expected_calibration_error(calibrated, targets),
    }
    return cal


# -- a model on data -----------------------------------------------------------------------


@dataclass
class Fitted:
    """A calibration and what it was fitted on: the raw validation scores ``proba``
    (``[n, classes]``), the multi-hot ``targets`` and the files skipped as unreadable."""

    calibration: Calibration
    proba: np.ndarray
    targets: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def thresholds(self) -> dict[str, float]:
        return self.calibration.thresholds


def calibrate_model(
    model: Any,
    data: Any,
    *,
    method: str = "temperature",
    target_precision: float | None = 0.9,
    best_f1: bool = False,
    min_support: int = 5,
    on_file: Callable[[], None] | None = None,
) -> Fitted:
    """Fit a :class:`Calibration` for ``model`` (an :class:`earmark.Classifier`) on the
    labelled files of ``data`` (a manifest, folder or CSV): each file scored by
    ``model.evaluate`` (the predictor ``predict`` uses: windows, pooling), with any
    calibration the model already has set aside, then :func:`fit_calibration`. The model
    itself is not changed (attach the result: ``model.calibration_ = fitted.calibration``)."""
    import copy

    if not hasattr(model, "calibration_"):
        raise ParameterError(
            f"{type(model).__name__} cannot be calibrated: calibrate a classifier's run"
        )
    raw = copy.copy(model)  # shares the fitted model; scores without any calibration
    raw.calibration_ = None
    ev = raw.evaluate(data, on_file=on_file)
    classes = list(ev.classes)
    y = np.asarray(ev.y_true)
    targets = y.astype(np.float64) if y.ndim == 2 else one_hot(y, len(classes))
    cal = fit_calibration(
        ev.proba,
        targets,
        classes,
        multi_label=bool(getattr(model, "multi_label_", False)),
        method=method,
        target_precision=target_precision,
        best_f1=best_f1,
        min_support=min_support,
    )
    cal.validation["skipped"] = len(ev.skipped)
    return Fitted(cal, np.asarray(ev.proba, dtype=np.float64), targets, list(ev.skipped))


# -- reading it back ------------------------------------------------------------------------


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParameterError(f"{where}: expected a finite number, got {_show(value)}")
    if not lo <= value <= hi:
        raise ParameterError(f"{where}: {value:g} is outside [{lo:g}, {hi:g}]")
    return float(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse(d: Any) -> Calibration:
    if not isinstance(d, dict):
        raise ParameterError(f"expected a JSON object, got {type(d).__name__}")
    if d.get("kind") != KIND:
        raise ParameterError(f"kind: expected {KIND!r}, got {_show(d.get('kind'))}")
    if d.get("version") != VERSION:
        raise ParameterError(f"version: expected {VERSION}, got {_show(d.get('version'))}")
    extra = sorted(set(d) - set(Calibration.__dataclass_fields__) - {"kind", "version"})
    if extra:
        raise ParameterError(f"{_show(extra[0])}: unknown field")
    method = d.get("method")
    if method not in METHODS:
        raise ParameterError(f"method: expected one of {', '.join(METHODS)}, got {_show(method)}")
    multi = d.get("multi_label")
    if not isinstance(multi, bool):
        raise ParameterError(f"multi_label: expected true or false, got {_show(multi)}")
    classes = d.get("classes")
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise ParameterError("classes: expected a non-empty list of distinct names")
    n = len(classes)
    params = d.get("params")
    want = {"temperature": ["temperature"], "platt": ["slope", "intercept"]}[method]
    if not isinstance(params, dict) or sorted(params) != sorted(want):
        raise ParameterError(f"params: expected {', '.join(want)} for {method}")
    size = 1 if method == "temperature" and not multi else n
    clean: dict[str, list[float]] = {}
    for key in want:
        values = params[key]
        if not isinstance(values, list) or len(values) != size:
            raise ParameterError(f"params.{key}: expected a list of {size} numbers")
        lo, hi = (
            (1 / TEMPERATURE_LIMIT, TEMPERATURE_LIMIT)
            if key == "temperature"
            else (-PLATT_LIMIT, PLATT_LIMIT)
        )
        clean[key] = [_number(v, f"params.{key}[{i}]", lo, hi) for i, v in enumerate(values)]
    criterion = d.get("criterion")
    if criterion not in ("precision", "f1"):
        raise ParameterError(f"criterion: expected precision or f1, got {_show(criterion)}")
    target = d.get("target_precision")
    if criterion == "precision":
        target = _number(target, "target_precision", 1e-9, 1.0)
    elif target is not None:
        raise ParameterError("target_precision: must be null for criterion f1")
    support = d.get("min_support")
    if isinstance(support, bool) or not isinstance(support, int) or not 1 <= support <= 10**9:
        raise ParameterError(f"min_support: expected a positive integer, got {_show(support)}")
    thresholds = d.get("thresholds")
    if not isinstance(thresholds, dict):
        raise ParameterError("thresholds: expected an object of class -> threshold")
    for name, value in thresholds.items():
        if name not in classes:
            raise ParameterError(f"thresholds: {_show(name)} is not one of the classes")
        _number(value, f"thresholds[{name!r}]", 0.0, 1.0)
    per_class = d.get("per_class", {})
    validation = d.get("validation", {})
    for key, value in (("per_class", per_class), ("validation", validation)):
        if not isinstance(value, dict):
            raise ParameterError(f"{key}: expected an object")
    if set(per_class) - set(classes):
        raise ParameterError("per_class: names a class the calibration does not have")
    return Calibration(
        method=method,
        multi_label=multi,
        classes=list(classes),
        params=clean,
        criterion=criterion,
        target_precision=target,
        min_support=support,
        thresholds={k: float(v) for k, v in thresholds.items()},
        per_class=per_class,
        validation=validation,
    )


# -- in a run -------------------------------------------------------------------------------


def read_calibration(directory: str | Path, meta: dict[str, Any]) -> Calibration | None:
    """The calibration of the run at ``directory`` whose checked ``earmark.json`` is
    ``meta`` (:func:`earmark.artifact.read_meta`, which has checked the file's SHA-256), or
    ``None`` when it lists none. Bounded read, every field checked, its classes and output
    kind those of the model; raises :class:`~earmark.artifact.ArtifactError` (one line)."""
    from earmark import artifact

    if CALIBRATION_FILE not in meta.get("files", {}):
        return None
    path = artifact.inside(directory, Path(directory) / CALIBRATION_FILE, CALIBRATION_FILE)
    data = artifact.read_json(path, what=CALIBRATION_FILE)
    try:
        cal = Calibration.from_dict(data)
    except ParameterError as exc:
        raise artifact.ArtifactError(f"{path}: {exc}") from None
    if cal.classes != list(meta["classes"]):
        raise artifact.ArtifactError(f"{path}: classes: not the model's classes")
    if cal.multi_label != bool(meta.get("multi_label", False)):
        kind = "multi-label" if cal.multi_label else "single-label"
        raise artifact.ArtifactError(f"{path}: multi_label: a {kind} calibration for this model")
    return cal


def write_calibration(directory: str | Path, cal: Calibration) -> Path:
    """Write ``cal`` into the run at ``directory`` as ``calibration.json`` and list it (with
    its SHA-256 and size) in ``earmark.json``. Each file is replaced atomically, in an order
    that leaves a loadable run whenever it stops: an earlier calibration is first unlisted,
    then the new file written, then listed. Returns the file's path."""
    from earmark import artifact
    from earmark.atomic import atomic_text

    directory = Path(directory)
    meta = artifact.read_meta(directory)
    if meta.get("family") not in ("classical", "neural"):
        raise artifact.ArtifactError(
            f"{directory}: an {meta.get('family')} model; calibrate a classifier's run"
        )
    if cal.classes != list(meta["classes"]):
        raise ParameterError(f"{directory}: the calibration's classes are not the model's")
    meta_path = directory / artifact.META_FILE

    def write_meta() -> None:
        atomic_text(meta_path, json.dumps(meta, indent=2, sort_keys=False) + "\n")

    if meta["files"].pop(CALIBRATION_FILE, None) is not None:
        write_meta()
    path = atomic_text(directory / CALIBRATION_FILE, cal.to_json())
    meta["files"][CALIBRATION_FILE] = artifact.file_record(path)
    write_meta()
    return path
