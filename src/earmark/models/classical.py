"""Classical learners over feature vectors, each in a pipeline with scaling.

:class:`ClassicalModel` is a scikit-learn estimator (``fit`` / ``predict`` /
``predict_proba``, ``clone``-able, usable in ``GridSearchCV``) that builds the registered
learner by name inside ``Pipeline([StandardScaler, learner])``. Every learner gives
probabilities: SVMs through Platt scaling (``CalibratedClassifierCV(..., ensemble=False)``,
what scikit-learn recommends now that ``SVC(probability=True)`` is deprecated).

Multi-label: fitted on a multi-hot label matrix ``y`` (``[n_samples, n_classes]``), the
learner is wrapped in scikit-learn's ``OneVsRestClassifier`` (one binary learner per class,
each giving the probability that its class is present); ``classes_`` is then
``0..n_classes-1`` (scikit-learn's convention for label-indicator targets) and
``predict_proba`` the per-class probabilities (rows need not sum to 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from earmark.errors import ParameterError

__all__ = ["ClassicalModel"]


class ClassicalModel(ClassifierMixin, BaseEstimator):
    """A registered classical learner in a scaling pipeline, as a scikit-learn estimator.

    Args:
        model: registry name (``svm``, ``svm-linear``, ``rf``, ``extra-trees``, ``hgb``,
            ``knn``, ``gnb``, ``logreg``).
        params: hyper-parameters for the learner, over its defaults (e.g. ``{"C": 1.0}``).
        scale: standardize features first (``StandardScaler``).
        random_state: seed for learners that draw random numbers.
    """

    def __init__(
        self,
        model: str = "svm",
        params: dict[str, Any] | None = None,
        scale: bool = True,
        random_state: int | None = None,
    ) -> None:
        self.model = model
        self.params = params
        self.scale = scale
        self.random_state = random_state

    def _learner(self) -> Any:
        from earmark.models.registry import get

        spec = get(self.model)
        if spec.family != "classical":
            raise ParameterError(f"{self.model!r} is a {spec.family} model, not a classical one")
        from earmark.checks import SettingsError, check_params

        try:
            params = {**spec.defaults, **check_params(self.model, self.params or {})}
        except SettingsError as exc:
            raise ParameterError(f"bad hyper-parameter for {self.model}: {exc}") from None
        if spec.seeded:
            params.setdefault("random_state", self.random_state)
        try:
            return spec.build(**params)
        except TypeError as exc:
            raise ParameterError(f"bad hyper-parameter for {self.model}: {exc}") from None

    def fit(self, X: Any, y: Any) -> ClassicalModel:
        """Fit on features ``X`` ``[n_samples, n_features]`` and labels ``y`` (class names,
        or a multi-hot matrix ``[n_samples, n_classes]`` for multi-label: one-vs-rest)."""
        import warnings

        from sklearn.multiclass import OneVsRestClassifier

        multi = type_of_target(y) == "multilabel-indicator"
        X, y = validate_data(self, X, y, multi_output=multi)
        check_classification_targets(y)
        learner = self._learner()
        if multi:
            y = np.asarray(y).astype(np.int64)
            learner = OneVsRestClassifier(learner)
            self.classes_ = np.arange(y.shape[1])
        else:
            self.classes_ = np.unique(y)
        self.multi_label_ = multi
        steps = [("scale", StandardScaler())] if self.scale else []
        self.pipeline_ = Pipeline([*steps, ("model", learner)])
        with warnings.catch_warnings():
            # a class present in every clip (or none) is fitted as a constant: say so once
            # in the training record, not per class in a warning
            warnings.filterwarnings("ignore", "Label .* is present in all training examples")
            self.pipeline_.fit(X, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``[n_samples, n_classes]``, columns in ``classes_`` order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.pipeline_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per sample (consistent with ``predict_proba``);
        multi-label: the multi-hot matrix of the classes at probability 0.5 or more."""
        proba = self.predict_proba(X)  # first: raises NotFittedError before classes_ is read
        if getattr(self, "multi_label_", False):
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]
