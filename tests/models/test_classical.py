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
    X[y == 1, 0] += 3
    X[y == 2, 1] += 3
    a = ClassicalModel("rf", params={"n_estimators": 20, "max_depth": 3}, random_state=3).fit(X, y)
    forest = a.pipeline_.named_steps["model"]  # the params and the seed reach the learner
    assert (forest.n_estimators, forest.max_depth, forest.random_state) == (20, 3, 3)
    assert len(forest.estimators_) == 20
    assert all(t.get_depth() <= 3 for t in forest.estimators_)
    b = clone(a).fit(X, y)  # same seed, same data: the same forest, split for split
    for t, u in zip(forest.estimators_, b.pipeline_.named_steps["model"].estimators_, strict=True):
        np.testing.assert_array_equal(t.tree_.feature, u.tree_.feature)
        np.testing.assert_array_equal(t.tree_.threshold, u.tree_.threshold)
        np.testing.assert_array_equal(t.tree_.value, u.tree_.value)
    # (the trees' votes are summed by parallel threads in any order: equal to the last bits)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-12, atol=1e-15)
    other = clone(a).set_params(random_state=4).fit(X, y)  # another seed: another forest
    assert np.abs(a.predict_proba(X) - other.predict_proba(X)).max() > 0.01

    # GridSearchCV sets ``params`` on clones; the chosen C must be the one that fits best.
    # Log loss on separable data: C=1e-4 shrinks every probability towards 1/3, C=10 does not.
    grid = [{"C": 1e-4}, {"C": 10.0}]  # (equal scores would rank the first one best)
    search = GridSearchCV(ClassicalModel("logreg"), {"params": grid}, cv=3, scoring="neg_log_loss")
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] + 0.2, scores
    assert search.best_params_ == {"params": {"C": 10.0}}
    assert search.best_estimator_.pipeline_.named_steps["model"].C == 10.0
    tiny = ClassicalModel("logreg", params={"C": 1e-4}).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(tiny, 1 / 3, atol=0.02)


def test_bad_hyper_parameters_are_named() -> None:
    X, y = np.zeros((6, 2)), np.array([0, 1] * 3)
    with pytest.raises(ParameterError, match="bad hyper-parameter for gnb"):
        ClassicalModel("gnb", params={"depth": 3}).fit(X, y)
