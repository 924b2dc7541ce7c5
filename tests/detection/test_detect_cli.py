"""The detection commands end to end: detect, score-events, segments, plot --events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import soundfile as sf
from typer.testing import CliRunner

from earmark.classifier import Classifier
from earmark.cli import PARTIAL_EXIT, app

runner = CliRunner()


def test_detect_score_cut_and_plot(
    detector: Classifier, recording: Path, broken_dir: Path, tmp_path: Path
) -> None:
    run = detector.save(tmp_path / "run")
    recs = tmp_path / "recs"
    recs.mkdir()
    shutil.copy(recording, recs / "field.wav")
    shutil.copy(broken_dir / "text.wav", recs / "notes.wav")
    det = tmp_path / "det"
    args = [
        "detect",
        str(run),
        str(recs),
        "--out",
        str(det),
        "--hop",
        "0.5",
        "--threshold",
        "0.3",
        "--merge-gap",
        "0.5",
        "--quiet",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == PARTIAL_EXIT, res.output
    assert "1 unreadable" in res.output and "notes.wav" in res.output
    for name in ("events.csv", "events.json", "counts.csv", "scores.parquet", "errors.csv"):
        assert (det / name).exists(), name
    events = json.loads((det / "events.json").read_text())
    assert events, "a model that knows the digits finds some"

    # the detections scored against themselves: perfect; against nothing: zero recall
    truth = tmp_path / "truth.csv"
    rows = ["file,start_s,end_s,label"] + [
        f"field.wav,{e['start_s']},{e['end_s']},{e['label']}" for e in events
    ]
    truth.write_text("\n".join(rows) + "\n")
    res = runner.invoke(app, ["score-events", str(det / "events.csv"), str(truth), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["overall"]["f1"] == 1.0
    res = runner.invoke(app, ["score-events", str(det / "events.csv"), str(truth), "--sweep"])
    assert res.exit_code == 0 and "threshold sweep" in res.output, res.output

    # resume: the finished recording is not scored again
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == PARTIAL_EXIT and "1 already done" in res.output, res.output

    clips = tmp_path / "clips"
    res = runner.invoke(
        app,
        ["segments", str(det / "events.csv"), "--out", str(clips), "--margin", "0.25", "--quiet"],
    )
    assert res.exit_code == 0, res.output
    cut = sorted(clips.glob("*.wav"))
    assert len(cut) == len(events)
    first = events[0]
    want = min(20.0, first["end_s"] + 0.25) - max(0.0, first["start_s"] - 0.25)
    assert abs(sf.info(cut[0]).duration - want) < 0.01
    assert cut[0].name.startswith("field_")

    png = tmp_path / "det.png"
    res = runner.invoke(
        app, ["plot", str(recs / "field.wav"), "--events", str(det), "--out", str(png)]
    )
    assert res.exit_code == 0 and png.stat().st_size > 10_000, res.output


def test_detect_refuses_unknown_background_classes(
    detector: Classifier, recording: Path, tmp_path: Path
) -> None:
    run = detector.save(tmp_path / "run")
    res = runner.invoke(
        app,
        ["detect", str(run), str(recording), "--out", str(tmp_path / "d"), "--background", "owl"],
    )
    assert res.exit_code == 1 and "unknown classes owl" in res.output


def test_resume_after_the_process_is_killed(
    detector: Classifier, recording: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys
    import time

    from earmark.detection.events import EventRules
    from earmark.detection.run import detect
    from earmark.detection.tables import read_events

    run = detector.save(tmp_path / "run")
    recs = tmp_path / "recs"
    recs.mkdir()
    for k in range(30):
        shutil.copy(recording, recs / f"r{k:02d}.wav")
    det = tmp_path / "det"
    cmd = [
        str(Path(sys.executable).with_name("earmark")),
        "detect",
        str(run),
        str(recs),
        "--out",
        str(det),
        "--threshold",
        "0.3",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((det / "parts").glob("r*.npz")) and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.kill()  # SIGKILL: no cleanup of any kind
    finally:
        proc.wait()
    done = len(list((det / "parts").glob("r*.npz")))  # not a temporary ".r05.x.npz"
    assert 0 < done < 30, f"{done} recordings done before the kill"
    files = sorted(str(p) for p in recs.glob("*.wav"))
    rules = EventRules(threshold=0.3)
    again = detect(detector, files, det, rules=rules, resume=True)
    assert not list((det / "parts").glob(".*"))  # the killed run's temporary file is gone
    assert again.resumed >= done and again.resumed + again.scored == 30
    detect(detector, files, tmp_path / "full", rules=rules)
    assert read_events(det / "events.csv") == read_events(tmp_path / "full" / "events.csv")
