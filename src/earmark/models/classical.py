"""Classical learners over feature vectors, each in a pipeline with scaling.

:class:`ClassicalModel` is a scikit-learn estimator (``fit`` / ``predict`` /
``predict_proba``, ``clone``-able, usable in ``GridSearchCV``) that builds the registered
learner by name inside ``Pipeline([StandardScaler, learner])``. Every learner gives
probabilities: SVMs through Platt scaling (``CalibratedClassifierCV(..., ensemble=False)``,
what scikit-learn recommends now that ``SVC(probability=True)`` is deprecated).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from earmark.errors import ParameterError
from earmark.models.registry import ModelSpec, register

__all__ = ["ClassicalModel"]


def _calibrated(base: type, **params: Any) -> CalibratedClassifierCV:
    seed = params.pop("random_state", None)
    if "random_state" in inspect.signature(base).parameters:
        params["random_state"] = seed
    # cv=3 keeps Platt scaling cheap on small data sets; ensemble=False fits one SVM on all.
    return CalibratedClassifierCV(base(**params), method="sigmoid", cv=3, ensemble=False)


# name, factory, defaults, seeded (takes random_state), description
_LEARNERS: list[tuple[str, Any, dict[str, Any], bool, str]] = [
    ("svm", lambda **p: _calibrated(SVC, **p), {"kernel": "rbf", "C": 10.0, "gamma": "scale"},
     True, "support vector machine, RBF kernel (Platt-scaled probabilities)"),
    ("svm-linear", lambda **p: _calibrated(LinearSVC, **p), {"C": 0.1, "max_iter": 10_000},
     True, "linear support vector machine (Platt-scaled probabilities)"),
    ("rf", RandomForestClassifier, {"n_estimators": 300, "n_jobs": -1}, True,
     "random forest"),
    ("extra-trees", ExtraTreesClassifier, {"n_estimators": 300, "n_jobs": -1}, True,
     "extremely randomized trees"),
    ("hgb", HistGradientBoostingClassifier, {"max_iter": 200, "learning_rate": 0.1}, True,
     "histogram gradient boosting"),
    ("knn", KNeighborsClassifier, {"n_neighbors": 5, "weights": "distance"}, False,
     "k-nearest neighbours"),
    ("gnb", GaussianNB, {}, False, "Gaussian naive Bayes"),
    ("logreg", LogisticRegression, {"C": 1.0, "max_iter": 5_000}, True,
     "multinomial logistic regression"),
]  # fmt: skip

for _name, _factory, _defaults, _seeded, _text in _LEARNERS:
    register(ModelSpec(_name, "classical", _factory, _text, _defaults, seeded=_seeded))


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
        params = {**spec.defaults, **(self.params or {})}
        if spec.seeded:
            params.setdefault("random_state", self.random_state)
        try:
            return spec.build(**params)
        except TypeError as exc:
            raise ParameterError(f"bad hyper-parameter for {self.model}: {exc}") from None

    def fit(self, X: Any, y: Any) -> ClassicalModel:
        """Fit on features ``X`` ``[n_samples, n_features]`` and labels ``y``."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        steps = [("scale", StandardScaler())] if self.scale else []
        self.pipeline_ = Pipeline([*steps, ("model", self._learner())])
        self.pipeline_.fit(X, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``[n_samples, n_classes]``, columns in ``classes_`` order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.pipeline_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class per sample (consistent with ``predict_proba``)."""
        proba = self.predict_proba(X)  # first: raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]
