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
    pytest.importorskip("onnxruntime")
    from earmark.onnx_export import export_onnx

    onnx = earmark.load(export_onnx(clf, tmp_path / "net.onnx"))
    assert onnx.multi_label_ and onnx.pooling == "max"
    np.testing.assert_allclose(onnx.predict_proba(two_tones), proba, atol=1e-4)  # sigmoids


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


def test_metrics_match_sklearn() -> None:
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random((40, 3)) < 0.4).astype(int)
    y[:, 2] = 0  # a class never present: no AP, no ROC-AUC, left out of the means
    p = np.clip(y * 0.5 + rng.random((40, 3)) * 0.6, 0, 1)
    ev = evaluate_multilabel(y, p, ["a", "b", "c"], thresholds={"b": 0.7})
    ap = [average_precision_score(y[:, k], p[:, k]) for k in range(2)]
    assert ev.metrics["map"] == pytest.approx(np.mean(ap))
    np.testing.assert_allclose(ev.per_class["ap"][:2], ap)
    assert np.isnan(ev.per_class["ap"][2]) and np.isnan(ev.per_class["roc_auc"][2])
    assert ev.metrics["roc_auc_macro"] == pytest.approx(
        roc_auc_score(y[:, :2], p[:, :2], average="macro")
    )
    cut = p >= np.array([0.5, 0.7, 0.5])
    assert ev.metrics["f1_macro"] == pytest.approx(
        f1_score(y, cut, average="macro", zero_division=0)
    )
    assert ev.to_dict()["per_class"][2]["ap"] is None  # JSON-safe
    assert ev.to_dict()["thresholds"] == {"a": 0.5, "b": 0.7, "c": 0.5}
    assert ev.confusion.shape == (3, 2, 2)


def test_focal_loss_and_pos_weight() -> None:
    import torch

    from earmark.training import focal_loss

    logits = torch.tensor([[3.0, -3.0], [0.0, 0.0]])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    assert float(focal_loss(logits, y, 0.0, multi_label=True)) == pytest.approx(float(bce))
    # well-classified examples (the first row) count less than under plain BCE
    per = focal_loss(logits[:1], y[:1], 2.0, multi_label=True)
    assert float(per) < 0.01 * float(
        torch.nn.functional.binary_cross_entropy_with_logits(logits[:1], y[:1])
    )
    assert float(focal_loss(logits, torch.eye(2), 0.0, multi_label=False)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, torch.arange(2)))
    )
    with pytest.raises(earmark.errors.ParameterError, match="loss"):
        TrainConfig(loss="hinge")


def test_detect_fires_several_classes_at_once(logreg: Classifier, tmp_path) -> None:
    from earmark.detection.events import find_events
    from earmark.detection.run import resolve_settings

    rng = np.random.default_rng(5)
    y = 0.02 * rng.standard_normal(4 * SR).astype(np.float32)
    y[: 2 * SR] += tone(LOW, 2.0, amp=0.3)
    y[SR : 3 * SR] += tone(HIGH, 2.0, amp=0.3)
    sf.write(tmp_path / "rec.wav", y, SR)
    track = logreg.score_track(tmp_path / "rec.wav")
    events = find_events(track)
    spans = {lab: [(e.start, e.end) for e in events if e.label == lab] for lab in ("low", "high")}
    assert spans["low"] and spans["high"], events
    low, high = spans["low"][0], spans["high"][0]
    assert low[0] < 0.5 and high[1] > 2.5
    assert max(low[0], high[0]) < min(low[1], high[1])  # overlapping events of two classes
    logreg.thresholds_ = {"low": 0.9}
    try:  # a run's calibrated thresholds are detect's default
        _, rules = resolve_settings(logreg, tmp_path / "out")
        assert rules.thresholds == {"low": 0.9}
        _, rules = resolve_settings(logreg, tmp_path / "out", settings={"threshold": 0.3})
        assert rules.thresholds == {} and rules.threshold == 0.3
    finally:
        logreg.thresholds_ = None


def test_cli_evaluate_predict_cv(logreg: Classifier, two_tones, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from earmark.cli import app

    runner = CliRunner()
    run = logreg.save(tmp_path / "run")
    both = str(two_tones.parent / "both_1.wav")
    res = runner.invoke(app, ["predict", str(run), both, "--json"])
    assert res.exit_code == 0, res.output
    pred = json.loads(res.output)["predictions"][0]
    assert sorted(pred["present"]) == ["high", "low"]
    res = runner.invoke(app, ["predict", str(run), both, "--csv"])
    assert res.output.splitlines()[0] == "path,rank,label,score,present,duration_s,error"
    res = runner.invoke(app, ["predict", str(run), both])
    assert res.exit_code == 0 and "present" in res.output
    out = tmp_path / "ev"
    res = runner.invoke(
        app, ["evaluate", str(run), str(two_tones), "--split", "all", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "map" in res.output and (out / "confusion.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["multi_label"] and metrics["metrics"]["map"] > 0.9
    res = runner.invoke(
        app,
        [
            "cv",
            str(two_tones),
            "--model",
            "logreg",
            "--features",
            "handcrafted",
            "--folds",
            "2",
            "--json",
            "--no-cache",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["mean"]["map"] > 0.9


def test_trainer_multi_hot_resumes_exactly(tmp_path) -> None:
    import torch
    from torch import nn

    from earmark.training import MultiLabelObjective, Trainer, WaveBank

    rng = np.random.default_rng(0)
    waves = [rng.standard_normal((1, 64)).astype(np.float32) for _ in range(24)]
    y = torch.as_tensor(rng.random((24, 3)) < 0.4, dtype=torch.float32)

    def run(epochs: int, resume: bool = False) -> tuple[dict, Trainer]:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        cfg = TrainConfig(
            epochs=epochs,
            batch_size=8,
            device="cpu",
            augment={"mixup": {"alpha": 0.4, "p": 1.0}},  # mixup on multi-hot rows
            class_weights=True,
            keep="last",
            patience=0,
            monitor="map",
            schedule="constant",  # two epochs of three are a run of two
        )
        trainer = Trainer(cfg, checkpoint_dir=tmp_path / "ck")
        bank = WaveBank(waves)
        res = trainer.fit(
            net, nn.Identity(), bank, y, bank, y, n_classes=3, n_samples=64, sample_rate=SR,
            resume=resume,
        )  # fmt: skip
        return res.best_state, trainer

    full, trainer = run(3)
    assert isinstance(trainer.objective, MultiLabelObjective)  # chosen by the multi-hot targets
    assert "valid_map" in json_keys(tmp_path / "ck")
    run(2)
    resumed, _ = run(3, resume=True)
    for k in full:
        torch.testing.assert_close(full[k], resumed[k])


def json_keys(checkpoint: Path) -> set[str]:
    import json

    state = json.loads((checkpoint / "earmark.json").read_text())["state"]
    return set(state["history"][-1])


def test_the_two_kinds_differ_only_in_loss_and_activation(two_tones, tmp_path) -> None:
    """One Trainer loop, one Predictor: the multi-label objective changes only what makes
    targets, loss, sampling weights and validation metrics, and the predictor only its
    activation (sigmoid) and pooling default."""
    import inspect

    from earmark import training
    from earmark.predict import Predictor

    own = {
        name
        for name, member in vars(training.MultiLabelObjective).items()
        if inspect.isfunction(member)
    }
    assert own <= {"prepare", "epoch_order", "targets", "loss", "validate"}, own
    assert issubclass(training.MultiLabelObjective, training.SupervisedObjective)

    fits, predictors = [], []
    real_fit, real_init = training.Trainer.fit, Predictor.__init__

    def spy_fit(self, *args, **kwargs):
        result = real_fit(self, *args, **kwargs)  # (the objective is chosen from the targets)
        fits.append(type(self.objective).__name__)
        return result

    def spy_init(self, *args, **kwargs):
        predictors.append(kwargs.get("multi_label", False))
        real_init(self, *args, **kwargs)

    single = two_tones.parent / "single.csv"  # beside the clips its paths name
    rows = two_tones.read_text().splitlines()
    kept = [r for r in rows[1:] if r.endswith((",low", ",high"))]
    single.write_text("\n".join([rows[0], *kept]) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training.Trainer, "fit", spy_fit)
        mp.setattr(Predictor, "__init__", spy_init)
        cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", augment="none")
        for data in (str(single), str(two_tones)):
            clf = Classifier("seed-cnn", train=cfg).fit(data)
            clf.predict_file(two_tones.parent / "both_0.wav")
    assert fits == ["SupervisedObjective", "MultiLabelObjective"]
    assert predictors[-1] is True and predictors[0] is False
