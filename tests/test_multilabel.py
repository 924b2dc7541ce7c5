"""Multi-label end to end: clips holding a 500 Hz tone, a 2 kHz tone, both, or neither.

Multi-label and single-label runs share every code path but the loss and the output
activation: the same Classifier, Trainer, Predictor and artifact, with sigmoid / binary
cross-entropy instead of softmax / cross-entropy and one-vs-rest for classical learners.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, tone

import earmark
from earmark import Classifier
from earmark.data.manifest import Manifest
from earmark.evaluation import evaluate_multilabel
from earmark.training import TrainConfig

LOW, HIGH = 500.0, 2000.0
KINDS = {"low": "low", "high": "high", "both": "high;low", "none": ""}


def _clip(kind: str, rng: np.random.Generator) -> np.ndarray:
    y = 0.02 * rng.standard_normal(SR // 2).astype(np.float32)
    if kind in ("low", "both"):
        y += tone(LOW * rng.uniform(0.95, 1.05), 0.5, amp=0.3)
    if kind in ("high", "both"):
        y += tone(HIGH * rng.uniform(0.95, 1.05), 0.5, amp=0.3)
    return y


@pytest.fixture(scope="module")
def two_tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest CSV of 8 clips of each kind (half a second each), one group per clip."""
    root = tmp_path_factory.mktemp("two_tones")
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for kind, label in KINDS.items():
        for i in range(8):
            name = f"{kind}_{i}.wav"
            sf.write(root / name, _clip(kind, rng), SR)
            rows.append(f"{name},{label}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def _truth(path: Path) -> np.ndarray:
    return earmark.datasets.load(path).targets(["high", "low"])


@pytest.fixture(scope="module")
def logreg(two_tones: Path) -> Classifier:
    return Classifier("logreg", features="handcrafted").fit(two_tones)


def test_classical_one_vs_rest_and_round_trip(logreg: Classifier, two_tones, tmp_path) -> None:
    from sklearn.multiclass import OneVsRestClassifier

    assert logreg.multi_label_ and logreg.classes_ == ["high", "low"]
    assert logreg.pooling == "max"  # the multi-label default
    assert isinstance(logreg.estimator_.pipeline_[-1], OneVsRestClassifier)
    assert logreg.training_["per_class"] == {"high": 16, "low": 16}
    assert logreg.training_["negatives"] == 8
    proba = logreg.predict_proba(two_tones)
    assert proba.shape == (32, 2)
    assert not np.allclose(proba.sum(axis=1), 1.0)  # per-class, not a softmax
    ev = logreg.evaluate(two_tones)
    assert ev.multi_label and ev.metrics["map"] > 0.95
    loaded = earmark.load(logreg.save(tmp_path / "run"))
    assert loaded.multi_label_ and loaded.pooling == "max"
    np.testing.assert_allclose(loaded.predict_proba(two_tones), proba, atol=1e-6)


def test_predict_lists_every_present_class(logreg: Classifier, two_tones) -> None:
    both = two_tones.parent / "both_0.wav"
    pred = logreg.predict_file(both, top_k=2)
    assert sorted(pred.present) == ["high", "low"]
    assert pred.to_dict()["present"] == pred.present
    none = logreg.predict_file(two_tones.parent / "none_0.wav")
    assert none.present == []
    logreg.thresholds_ = {"high": 1.0, "low": 0.0}  # as a calibrated run would hold
    try:
        assert logreg.predict_file(both).present == ["low"]
        assert logreg.predict_file(none.path).present == ["low"]
    finally:
        logreg.thresholds_ = None


@pytest.mark.slow
def test_bce_network_learns_both_labels(two_tones, tmp_path) -> None:
    cfg = TrainConfig(epochs=12, batch_size=8, lr=1e-2, device="cpu", seed=0, augment="none")
    clf = Classifier("seed-cnn", params={"width": 8}, train=cfg)
    clf.fit(two_tones, valid=two_tones)
    assert clf.multi_label_ and "valid_map" in clf.history_[-1]
    proba = clf.predict_proba(two_tones)
    truth = _truth(two_tones)
    ev = evaluate_multilabel(truth, proba, clf.classes_)
    assert ev.metrics["map"] > 0.9, ev.metrics
    both = proba[truth.sum(axis=1) == 2]
    assert (both > 0.5).all(axis=1).mean() >= 0.75  # both tones heard in a two-tone clip
    loaded = earmark.load(clf.save(tmp_path / "net"))
    assert loaded.multi_label_
    np.testing.assert_allclose(loaded.predict_proba(two_tones), proba, atol=1e-5)


def test_single_label_data_stays_single_label(tmp_path) -> None:
    rng = np.random.default_rng(1)
    files, labels = [], []
    for kind in ("low", "high"):
        for i in range(6):
            path = tmp_path / f"{kind}{i}.wav"
            sf.write(path, _clip(kind, rng), SR)
            files.append(path)
            labels.append(kind)
    m = Manifest.from_records(files, labels)
    clf = Classifier("logreg", features="handcrafted").fit(m)
    assert not clf.multi_label_ and clf.pooling == "mean"
    assert np.allclose(clf.predict_proba(m).sum(axis=1), 1.0)
    assert clf.predict_file(files[0]).present is None
    assert "multi_label" not in clf.evaluate(m).to_dict()
