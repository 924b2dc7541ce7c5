"""``earmark calibrate`` on a tiny trained run, and what the run does with it afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, tone
from typer.testing import CliRunner

from earmark import Classifier
from earmark.artifact import ArtifactError
from earmark.calibration import CALIBRATION_FILE, Calibration, write_calibration
from earmark.cli import app
from earmark.data.splits import SplitSettings
from earmark.loading import load
from earmark.workflows import train_run

runner = CliRunner()
FREQS = {"low": 300.0, "mid": 700.0, "high": 1500.0}


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of noisy 0.25 s tones, 14 clips each (folder per class)."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for name, freq in FREQS.items():
        (root / name).mkdir()
        for i in range(14):
            y = tone(freq * rng.uniform(0.9, 1.1), 0.25, amp=0.3)
            y = y + rng.normal(0, 0.3, y.shape).astype(np.float32)
            sf.write(root / name / f"{i:02d}.wav", y, SR)
    return root


@pytest.fixture(scope="module")
def calibrated(tones: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic regression trained on the tones, then `earmark calibrate` on its valid split."""
    out = tmp_path_factory.mktemp("runs") / "lr"
    split = SplitSettings(test_size=0.25, valid_size=0.3, seed=1)
    train_run(tones, Classifier("logreg", params={"C": 100.0}), out, split=split)
    result = run(
        "calibrate", out, tones, "--split", "valid", "--target-precision", "0.8",
        "--min-support", "1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_calibrate_writes_the_calibration_and_its_report(calibrated: Path) -> None:
    meta = json.loads((calibrated / "earmark.json").read_text())
    entry = meta["files"][CALIBRATION_FILE]
    assert len(entry["sha256"]) == 64
    cal = Calibration.from_dict(json.loads((calibrated / CALIBRATION_FILE).read_text()))
    assert cal.classes == sorted(FREQS) and cal.method == "temperature"
    assert cal.target_precision == 0.8 and not cal.multi_label
    assert set(cal.thresholds) == set(FREQS)
    report = {p.name for p in (calibrated / "calibration").iterdir()}
    assert "thresholds.csv" in report and len([n for n in report if n.endswith(".png")]) == 3


def test_load_applies_the_calibration_unless_told_not_to(calibrated: Path, tones: Path) -> None:
    clf = load(calibrated)
    raw = load(calibrated, calibration=False)
    assert clf.calibration_ is not None and raw.calibration_ is None
    assert clf.thresholds_ == clf.calibration_.thresholds and raw.thresholds_ is None
    files = sorted(str(p) for p in tones.glob("*/0[0-3].wav"))
    np.testing.assert_allclose(
        clf.predict_proba(files), clf.calibration_.apply(raw.predict_proba(files)), atol=1e-6
    )


def test_predict_uses_calibrated_scores(calibrated: Path, tones: Path) -> None:
    clip = tones / "mid" / "00.wav"
    got = {}
    for flag in ([], ["--no-calibration"]):
        result = run("predict", calibrated, clip, "--json", "--top-k", "3", *flag)
        assert result.exit_code == 0, result.output
        p = json.loads(result.output)["predictions"][0]
        got[bool(flag)] = dict(zip(p["labels"], p["scores"], strict=True))
    cal = load(calibrated).calibration_
    raw = np.array([[got[True][c] for c in cal.classes]])
    want = cal.apply(raw)[0]
    assert [got[False][c] for c in cal.classes] == pytest.approx(want.tolist(), abs=1e-5)
    assert got[False] != got[True]


def test_detect_uses_the_calibrated_thresholds(calibrated: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.concatenate([tone(f, 0.5, amp=0.3) for f in FREQS.values()]), SR)
    thresholds = load(calibrated).thresholds_
    for flags, want in (
        ([], thresholds),
        (["--no-calibration"], {}),
        (["--threshold", "0.6"], {}),
    ):
        out = tmp_path / f"det{len(flags)}"
        result = run("detect", calibrated, rec, "--out", out, "--json", *flags)
        assert result.exit_code == 0, result.output
        rules = json.loads((out / "detection.json").read_text())["rules"]
        assert rules["thresholds"] == pytest.approx(want)


def test_tampered_calibration_refused(calibrated: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(calibrated, copy)
    path = copy / CALIBRATION_FILE
    text = path.read_text()
    path.write_text(text.replace('"temperature": [', '"temperature": [2.0, ', 1))
    with pytest.raises(ArtifactError, match=r"calibration\.json: (checksum|[0-9]+ bytes)"):
        load(copy)
    result = run("predict", copy, copy / ".." / "run" / "missing.wav")
    assert result.exit_code != 0 and "calibration.json" in result.output
    # listed with a matching checksum, the content itself is checked
    import hashlib

    meta = json.loads((copy / "earmark.json").read_text())
    data = path.read_bytes()
    meta["files"][CALIBRATION_FILE] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    (copy / "earmark.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=r"params.temperature: expected a list of 1"):
        load(copy)
    assert load(copy, calibration=False).calibration_ is None
    # unlisted: ignored; written again: listed and loaded
    meta["files"].pop(CALIBRATION_FILE)
    (copy / "earmark.json").write_text(json.dumps(meta))
    assert load(copy).calibration_ is None
    good = Calibration.from_dict(json.loads(text))
    write_calibration(copy, good)
    assert load(copy).calibration_ == good


def test_bad_options_are_one_line_errors(calibrated: Path, tones: Path) -> None:
    for args, message in (
        (["--method", "isotonic"], "temperature"),
        (["--target-precision", "0.9", "--best-f1"], "not both"),
        (["--target-precision", "1.5"], "(0, 1]"),
        (["--split", "nope"], "valid"),
    ):
        result = run("calibrate", calibrated, tones, *args)
        assert result.exit_code == 2 and message in result.output, result.output
    result = run("calibrate", tones, tones)
    assert result.exit_code == 1 and "Traceback" not in result.output
