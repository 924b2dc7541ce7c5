from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from earmark.errors import ParameterError
from earmark.evaluation import cross_validate, evaluate
from earmark.models.classical import ClassicalModel

CLASSES = ["cat", "dog", "owl", "bee"]


def one_hot(idx: np.ndarray, n: int = 4) -> np.ndarray:
    return np.eye(n)[idx]


def test_perfect_and_known_predictions() -> None:
    y = np.array([0, 1, 2, 3, 0, 1])
    perfect = evaluate(y, one_hot(y), CLASSES)
    assert all(perfect.metrics[k] == 1.0 for k in ("accuracy", "f1_macro", "balanced_accuracy"))
    pred = np.array([0, 1, 2, 3, 1, 1])
    ev = evaluate(y, one_hot(pred), CLASSES)
    assert ev.metrics["accuracy"] == pytest.approx(5 / 6)
    assert ev.metrics["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert ev.metrics["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    partial = evaluate(np.array([0, 0, 1]), one_hot(np.array([0, 2, 1])), CLASSES)
    with pytest.warns(UserWarning, match="not in y_true"):  # the oracle warns; earmark not
        expected = balanced_accuracy_score([0, 0, 1], [0, 2, 1])
    assert partial.metrics["balanced_accuracy"] == pytest.approx(expected)
    assert ev.confusion.tolist()[0] == [1, 1, 0, 0]
    np.testing.assert_allclose(ev.confusion_normalized.sum(axis=1), 1.0)
    row = ev.per_class.set_index("class").loc["dog"]
    assert row["precision"] == pytest.approx(2 / 3) and row["support"] == 2


def test_top_k_accuracy() -> None:
    y = np.array([0, 1])
    proba = np.array([[0.1, 0.5, 0.3, 0.1], [0.2, 0.3, 0.4, 0.1]])  # truth ranked 3rd, 2nd
    ev = evaluate(y, proba, CLASSES, top_k=(2, 3))
    assert ev.metrics["accuracy"] == 0 and ev.metrics["top2_accuracy"] == 0.5
    assert ev.metrics["top3_accuracy"] == 1.0
    assert "top5_accuracy" not in evaluate(y, proba, CLASSES).metrics  # only k < n_classes


def _old_top_k(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    """The hand-written top-k earmark had before it used scikit-learn's."""
    top = np.argsort(-proba, axis=1)[:, :k]
    return float(np.mean(np.any(top == y_true[:, None], axis=1)))


def _old_balanced(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


@pytest.mark.parametrize("seed", range(5))
def test_scikit_learn_metrics_give_the_hand_written_figures(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = 8
    y = rng.integers(0, n_classes - 2, 40)  # the last two classes never occur in the truth
    proba = rng.dirichlet(np.ones(n_classes), 40)  # no ties
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's missing-class warning stays inside
        ev = evaluate(y, proba, [f"c{i}" for i in range(n_classes)], top_k=(1, 2, 3, 5))
    y_pred = np.argmax(proba, axis=1)
    assert set(y_pred) - set(y)  # some predicted classes are missing from the truth
    assert ev.metrics["balanced_accuracy"] == _old_balanced(y, y_pred)
    for k in (1, 2, 3, 5):
        assert ev.metrics[f"top{k}_accuracy"] == _old_top_k(y, proba, k), k


def test_top_k_ranks_ties_as_argmax_does() -> None:
    # (numpy's default argsort, which the hand-written version used, leaves ties unordered)
    proba = np.array([[0.4, 0.2, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25], [0.1, 0.3, 0.3, 0.3]])
    y = np.array([1, 0, 3])
    ev = evaluate(y, proba, CLASSES, top_k=(1, 2, 3))
    assert ev.metrics["top1_accuracy"] == ev.metrics["accuracy"] == 1 / 3
    assert ev.metrics["top2_accuracy"] == 2 / 3  # row 0: class 1 is first among the ties
    assert ev.metrics["top3_accuracy"] == 1.0


def test_two_classes_top1_is_the_accuracy() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.7, 0.3]])
    ev = evaluate(y, proba, ["a", "b"], top_k=(1, 3))
    assert ev.metrics["top1_accuracy"] == ev.metrics["accuracy"] == 0.75
    assert "top3_accuracy" not in ev.metrics


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ParameterError, match="proba must be"):
        evaluate([0, 1], np.zeros((2, 3)), CLASSES)
    with pytest.raises(ParameterError, match="outside"):
        evaluate([0, 7], np.zeros((2, 4)), CLASSES)


def test_cross_validate_reports_each_fold_and_the_spread() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = np.array([0, 1] * 40)
    X[y == 1, 0] += 3
    folds = [
        (np.setdiff1d(np.arange(80), np.arange(k, 80, 4)), np.arange(k, 80, 4)) for k in range(4)
    ]
    seen = []
    res = cross_validate(
        X,
        y,
        ["a", "b"],
        folds,
        lambda: ClassicalModel("logreg"),
        on_fold=lambda i, m: seen.append(i),
    )
    assert seen == [0, 1, 2, 3] and len(res.folds) == 4 and res.fold_sizes == [20] * 4
    assert res.mean["accuracy"] > 0.8 and 0 <= res.std["accuracy"] < 0.2
    assert res.to_dict()["mean"] == res.mean
