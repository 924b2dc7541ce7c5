"""Calibration and per-class thresholds (:mod:`earmark.calibration`) on synthetic scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score

from earmark.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    fit_platt,
    fit_temperature,
    one_hot,
    threshold_best_f1,
    threshold_for_precision,
)
from earmark.errors import ParameterError


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _overconfident_sigmoid(n=4000, classes=3, temperature=3.0, seed=0):
    """A model reporting sigmoid(z) when the truth follows sigmoid(z / temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4, size=(n, classes))
    y = (rng.random((n, classes)) < _sigmoid(z / temperature)).astype(float)
    return _sigmoid(z), y


def _overconfident_softmax(n=4000, classes=4, temperature=2.5, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, size=(n, classes))
    true = np.exp(z / temperature)
    true /= true.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(classes, p=p) for p in true])
    proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return proba, one_hot(y, classes)


def test_temperature_recovers_a_known_temperature_per_class():
    proba, y = _overconfident_sigmoid(temperature=3.0)
    temps = fit_temperature(proba, y, multi_label=True)
    assert len(temps) == 3
    assert temps == pytest.approx([3.0] * 3, rel=0.15)


def test_temperature_recovers_a_known_softmax_temperature():
    proba, y = _overconfident_softmax(temperature=2.5)
    (t,) = fit_temperature(proba, y, multi_label=False)
    assert t == pytest.approx(2.5, rel=0.15)


def test_platt_recovers_slope_and_intercept():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, size=(5000, 2))
    # truth: sigmoid(0.5 z - 1) for class 0, sigmoid(2 z + 0.5) for class 1
    a, b = np.array([0.5, 2.0]), np.array([-1.0, 0.5])
    y = (rng.random(z.shape) < _sigmoid(a * z + b)).astype(float)
    slopes, intercepts = fit_platt(_sigmoid(z), y)
    assert slopes == pytest.approx(a.tolist(), rel=0.15)
    assert intercepts == pytest.approx(b.tolist(), abs=0.15)


def test_one_sided_class_keeps_the_identity():
    proba = np.array([[0.2, 0.9], [0.7, 0.4], [0.9, 0.3]])
    y = np.array([[0, 1], [1, 1], [1, 1]], float)  # class 1: positives only
    assert fit_temperature(proba, y, multi_label=True)[1] == 1.0
    slopes, intercepts = fit_platt(proba, y)
    assert (slopes[1], intercepts[1]) == (1.0, 0.0)


def test_target_precision_threshold_by_hand():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    truth = np.array([0, 1, 0, 0, 1, 0, 1, 1, 1, 1])
    # at >= 0.5: 5 of 6 positive (0.833); at >= 0.4: 5 of 7 (0.714); at >= 0.7: 4/4
    got = threshold_for_precision(scores, truth, 0.8, min_support=1)
    assert got.threshold == 0.5 and got.reached
    assert got.precision == pytest.approx(5 / 6) and got.recall == pytest.approx(5 / 6)
    assert got.predicted == 6 and got.positives == 6
    assert threshold_for_precision(scores, truth, 1.0, min_support=1).threshold == 0.7
    # the support guard: precision 1.0 from fewer than 5 examples does not count
    guarded = threshold_for_precision(scores, truth, 1.0, min_support=5)
    assert not guarded.reached and "1 not reached" in guarded.note
    assert guarded.threshold == 0.5  # the best precision among thresholds 5 examples reach


def test_unreachable_target_is_reported():
    scores = np.linspace(0, 1, 20)
    truth = np.array([0, 1] * 10)  # precision about 0.5 everywhere
    got = threshold_for_precision(scores, truth, 0.95, min_support=3)
    assert not got.reached
    assert "target precision 0.95 not reached" in got.note
    assert got.precision < 0.95 and got.predicted >= 3
    none = threshold_for_precision(scores, np.zeros(20), 0.9)
    assert not none.reached and none.threshold == 1.0 and "no positive" in none.note


def test_best_f1_against_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        truth = rng.integers(0, 2, 60)
        truth[0] = 1
        scores = np.round(np.clip(truth * 0.3 + rng.random(60) * 0.7, 0, 1), 2)
        got = threshold_best_f1(scores, truth)
        # every distinct score tried as the threshold (F1 = 2 TP / (2 TP + FP + FN))
        brute = []
        for t in np.unique(scores):
            hit = scores >= t
            tp = int((hit & (truth == 1)).sum())
            brute.append((2 * tp / (hit.sum() + truth.sum()), -t))
        best_f1, neg_t = max(brute)
        assert got.f1 == pytest.approx(best_f1)
        assert got.threshold == pytest.approx(-neg_t)
        assert got.precision == pytest.approx(precision_score(truth, scores >= got.threshold))
    assert got.f1 == pytest.approx(f1_score(truth, scores >= got.threshold))


def test_fit_apply_and_json_round_trip():
    proba, y = _overconfident_sigmoid(n=1500)
    cal = fit_calibration(
        proba, y, ["a", "b", "c"], multi_label=True, target_precision=0.8, min_support=10
    )
    again = Calibration.from_dict(json.loads(cal.to_json()))
    assert again == cal
    np.testing.assert_allclose(again.apply(proba), cal.apply(proba))
    assert cal.apply(proba.astype(np.float32)).dtype == np.float32
    for name, row in cal.per_class.items():
        assert row["reached"] and row["precision"] >= 0.8
        assert cal.thresholds[name] == row["threshold"]
    platt = fit_calibration(proba, y, ["a", "b", "c"], multi_label=True, method="platt",
                            best_f1=True)  # fmt: skip
    assert platt.criterion == "f1" and platt.target_precision is None
    assert Calibration.from_dict(json.loads(platt.to_json())) == platt


def test_softmax_calibration_keeps_rows_summing_to_one():
    proba, y = _overconfident_softmax(n=800)
    for method in ("temperature", "platt"):
        cal = fit_calibration(proba, y, list("abcd"), multi_label=False, method=method)
        np.testing.assert_allclose(cal.apply(proba).sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("multi", [True, False])
def test_calibrated_ece_lower_on_an_overconfident_model(multi):
    proba, y = _overconfident_sigmoid(seed=5) if multi else _overconfident_softmax(seed=5)
    classes = [str(i) for i in range(proba.shape[1])]
    cal = fit_calibration(proba[:2000], y[:2000], classes, multi_label=multi)
    before = expected_calibration_error(proba[2000:], y[2000:])
    after = expected_calibration_error(cal.apply(proba[2000:]), y[2000:])
    assert after < before / 2, (before, after)
    assert cal.validation["ece_after"] < cal.validation["ece_before"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "other"}, "kind"),
        ({"method": "isotonic"}, "method"),
        ({"params": {"temperature": [1.0]}}, "params.temperature"),
        ({"params": {"temperature": [0.0, 1.0]}}, "params.temperature[0]"),
        ({"thresholds": {"a": 1.5}}, "thresholds['a']"),
        ({"thresholds": {"zebra": 0.5}}, "not one of the classes"),
        ({"target_precision": None}, "target_precision"),
        ({"surprise": 1}, "unknown field"),
    ],
)
def test_bad_calibration_data_refused(change, message):
    proba, y = _overconfident_sigmoid(n=200, classes=2)
    d = fit_calibration(proba, y, ["a", "b"], multi_label=True, min_support=1).to_dict()
    with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Calibration.from_dict({**d, **change})


def test_bad_settings_refused():
    proba, y = _overconfident_sigmoid(n=50, classes=2)
    with pytest.raises(ParameterError, match="method"):
        fit_calibration(proba, y, ["a", "b"], multi_label=True, method="isotonic")
    with pytest.raises(ParameterError, match="target precision"):
        fit_calibration(proba, y, ["a", "b"], multi_label=True, target_precision=1.5)
    with pytest.raises(ParameterError, match="exactly one class"):
        fit_calibration(proba, y, ["a", "b"], multi_label=False)
    with pytest.raises(ParameterError, match="probabilities"):
        fit_calibration(proba * 3, y, ["a", "b"], multi_label=True)
