"""The classical learners as scikit-learn estimators.

Claimed: every check of ``sklearn.utils.estimator_checks`` for every registered learner.
Not claimed: ``check_array_api_input`` (scikit-learn skips it unless SCIPY_ARRAY_API is set;
earmark works on numpy arrays only).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from earmark.errors import ParameterError
from earmark.models import registry
from earmark.models.classical import ClassicalModel

SMALL = {"rf": {"n_estimators": 10}, "extra-trees": {"n_estimators": 10}, "hgb": {"max_iter": 20}}
LEARNERS = registry.names("classical")


def test_the_registry_lists_every_classical_learner() -> None:
    assert LEARNERS == ["svm", "svm-linear", "rf", "extra-trees", "hgb", "knn", "gnb", "logreg"]
    with pytest.raises(ParameterError, match="unknown model 'cnn9'; available: svm"):
        registry.get("cnn9")


@parametrize_with_checks([ClassicalModel(n, params=SMALL.get(n), random_state=0) for n in LEARNERS])
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


@pytest.mark.parametrize("name", LEARNERS)
def test_each_learner_separates_easy_classes(name: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 6))
    y = np.array(["a", "b", "c"] * 50)
    X[y == "a", 0] += 4
    X[y == "b", 1] += 4
    model = ClassicalModel(name, params=SMALL.get(name), random_state=0).fit(X[:120], y[:120])
    assert model.score(X[120:], y[120:]) > 0.85
    proba = model.predict_proba(X[120:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (model.predict(X[120:]) == model.classes_[proba.argmax(axis=1)]).all()


def test_seeded_learners_repeat_and_compose() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((60, 4)), np.array([0, 1, 2] * 20)
    a = ClassicalModel("rf", params={"n_estimators": 20}, random_state=3).fit(X, y)
    b = clone(a).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    search = GridSearchCV(ClassicalModel("logreg"), {"params": [{"C": 0.1}, {"C": 10.0}]}, cv=3)
    assert search.fit(X, y).best_params_["params"]["C"] in (0.1, 10.0)


def test_bad_hyper_parameters_are_named() -> None:
    X, y = np.zeros((6, 2)), np.array([0, 1] * 3)
    with pytest.raises(ParameterError, match="bad hyper-parameter for gnb"):
        ClassicalModel("gnb", params={"depth": 3}).fit(X, y)
