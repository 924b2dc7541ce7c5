"""The classical learners earmark can train, registered by name (``svm``, ``rf``, ...).

The factories import scikit-learn when they are called, so the registry (and a process that
only runs networks: ``detect``, ``serve``) never loads it. :class:`ClassicalModel`
(:mod:`earmark.models.classical`) puts the chosen learner in a scaling pipeline.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from earmark.models.registry import ModelSpec, register

__all__: list[str] = []


def _sk(path: str) -> Callable[..., Any]:
    """A factory for the scikit-learn class ``module:Name``, imported on first use."""
    module, name = path.split(":")

    def build(**params: Any) -> Any:
        return getattr(importlib.import_module(module), name)(**params)

    build.__name__ = name
    return build


def _calibrated(path: str) -> Callable[..., Any]:
    """An SVM with Platt-scaled probabilities (what scikit-learn recommends now that
    ``SVC(probability=True)`` is deprecated)."""
    module, name = path.split(":")

    def build(**params: Any) -> Any:
        from sklearn.calibration import CalibratedClassifierCV

        base = getattr(importlib.import_module(module), name)
        seed = params.pop("random_state", None)
        if "random_state" in inspect.signature(base).parameters:
            params["random_state"] = seed
        # cv=3 keeps Platt scaling cheap on small data sets; ensemble=False fits one SVM.
        return CalibratedClassifierCV(base(**params), method="sigmoid", cv=3, ensemble=False)

    build.__name__ = f"Calibrated{name}"
    return build


# name, factory, defaults, seeded (takes random_state), description
_LEARNERS: list[tuple[str, Any, dict[str, Any], bool, str]] = [
    ("svm", _calibrated("sklearn.svm:SVC"), {"kernel": "rbf", "C": 10.0, "gamma": "scale"},
     True, "support vector machine, RBF kernel (Platt-scaled probabilities)"),
    ("svm-linear", _calibrated("sklearn.svm:LinearSVC"), {"C": 0.1, "max_iter": 10_000},
     True, "linear support vector machine (Platt-scaled probabilities)"),
    ("rf", _sk("sklearn.ensemble:RandomForestClassifier"), {"n_estimators": 300, "n_jobs": -1},
     True, "random forest"),
    ("extra-trees", _sk("sklearn.ensemble:ExtraTreesClassifier"),
     {"n_estimators": 300, "n_jobs": -1}, True, "extremely randomized trees"),
    ("hgb", _sk("sklearn.ensemble:HistGradientBoostingClassifier"),
     {"max_iter": 200, "learning_rate": 0.1}, True, "histogram gradient boosting"),
    ("knn", _sk("sklearn.neighbors:KNeighborsClassifier"),
     {"n_neighbors": 5, "weights": "distance"}, False, "k-nearest neighbours"),
    ("gnb", _sk("sklearn.naive_bayes:GaussianNB"), {}, False, "Gaussian naive Bayes"),
    ("logreg", _sk("sklearn.linear_model:LogisticRegression"), {"C": 1.0, "max_iter": 5_000},
     True, "multinomial logistic regression"),
]  # fmt: skip

for _name, _factory, _defaults, _seeded, _text in _LEARNERS:
    register(ModelSpec(_name, "classical", _factory, _text, _defaults, seeded=_seeded))
