"""The classical learners earmark can train, registered by name (``svm``, ``rf``, ...).

The factories import scikit-learn when they are called, so the registry (and a process that
only runs networks: ``detect``, ``serve``) never loads it. :class:`ClassicalModel`
(:mod:`earmark.models.classical`) puts the chosen learner in a scaling pipeline.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, Literal

from earmark.models.spec import ModelSpec, Param, register

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


ClassWeight = Literal["balanced"] | dict[str, float] | None
_CLASS_WEIGHT = Param(
    "class_weight", ClassWeight, None, "balanced: weight classes by 1 / frequency (null: equal)"
)
_N_JOBS = Param("n_jobs", int | None, -1, "parallel jobs (-1: all cores)")


def _trees(n: int) -> tuple[Param, ...]:
    return (
        Param("n_estimators", int, n, "trees in the forest"),
        Param("max_depth", int | None, None, "deepest a tree may grow (null: until pure)"),
        Param("min_samples_leaf", int, 1, "fewest training clips in a leaf"),
        Param(
            "max_features",
            Literal["sqrt", "log2"] | float | None,
            "sqrt",
            "features tried per split: sqrt, log2, a fraction, or null for all",
        ),
        _CLASS_WEIGHT,
        _N_JOBS,
    )


# name, factory, hyper-parameters, seeded (takes random_state), description
_LEARNERS: list[tuple[str, Any, tuple[Param, ...], bool, str]] = [
    ("svm", _calibrated("sklearn.svm:SVC"), (
        Param("kernel", Literal["rbf", "linear", "poly", "sigmoid"], "rbf", "kernel function"),
        Param("C", float, 10.0, "inverse regularization strength (larger: fits the data closer)"),
        Param("gamma", Literal["scale", "auto"] | float, "scale",
              "kernel width: scale, auto, or a number (larger: more local)"),
        Param("degree", int, 3, "degree of the poly kernel"),
        _CLASS_WEIGHT,
    ), True, "support vector machine, RBF kernel (Platt-scaled probabilities)"),
    ("svm-linear", _calibrated("sklearn.svm:LinearSVC"), (
        Param("C", float, 0.1, "inverse regularization strength"),
        Param("max_iter", int, 10_000, "most solver iterations"),
        _CLASS_WEIGHT,
    ), True, "linear support vector machine (Platt-scaled probabilities)"),
    ("rf", _sk("sklearn.ensemble:RandomForestClassifier"), _trees(300), True, "random forest"),
    ("extra-trees", _sk("sklearn.ensemble:ExtraTreesClassifier"), _trees(300), True,
     "extremely randomized trees"),
    ("hgb", _sk("sklearn.ensemble:HistGradientBoostingClassifier"), (
        Param("max_iter", int, 200, "boosting rounds (trees per class)"),
        Param("learning_rate", float, 0.1, "shrinkage of each tree's contribution"),
        Param("max_leaf_nodes", int | None, 31, "most leaves per tree (null: no limit)"),
        Param("max_depth", int | None, None, "deepest a tree may grow (null: no limit)"),
        Param("l2_regularization", float, 0.0, "L2 penalty on leaf values"),
        Param("early_stopping", Literal["auto"] | bool, "auto",
              "stop when an inner validation split stops improving (auto: above 10,000 clips)"),
        _CLASS_WEIGHT,
    ), True, "histogram gradient boosting"),
    ("knn", _sk("sklearn.neighbors:KNeighborsClassifier"), (
        Param("n_neighbors", int, 5, "neighbours that vote"),
        Param("weights", Literal["uniform", "distance"], "distance",
              "how votes count: equally, or by inverse distance"),
        Param("p", float, 2.0, "Minkowski power of the distance (1: Manhattan, 2: Euclidean)"),
    ), False, "k-nearest neighbours"),
    ("gnb", _sk("sklearn.naive_bayes:GaussianNB"), (
        Param("var_smoothing", float, 1e-9, "share of the largest variance added to all"),
    ), False, "Gaussian naive Bayes"),
    ("logreg", _sk("sklearn.linear_model:LogisticRegression"), (
        Param("C", float, 1.0, "inverse regularization strength"),
        Param("max_iter", int, 5_000, "most solver iterations"),
        _CLASS_WEIGHT,
    ), True, "multinomial logistic regression"),
]  # fmt: skip

for _name, _factory, _params, _seeded, _text in _LEARNERS:
    register(ModelSpec(_name, "classical", _factory, _text, seeded=_seeded, params=_params))
