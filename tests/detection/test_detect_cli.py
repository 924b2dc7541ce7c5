"""The detection commands end to end: detect, score-events, segments, plot --events."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from earmark.classifier import Classifier
from earmark.cli import PARTIAL_EXIT, app
from earmark.detection.tables import read_events

runner = CliRunner()


SR = 16_000
HOP = 0.25  # detection hop in these tests: event edges are known to about a hop


@dataclass
class ToneScene:
    """A tone detector (logreg on log-mel: ``tone`` vs ``noise``, 1 s clips) and recordings
    of noise with tone bursts at known times."""

    run: Path
    recordings: Path
    truth: Path
    placed: dict[str, list[tuple[float, float]]]  # file name -> (onset, offset) in seconds


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return (0.05 * rng.standard_normal(n)).astype(np.float32)


def _burst(n: int, freq: float) -> np.ndarray:
    t = np.arange(n) / SR
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades: no clicks
    return (0.3 * np.sin(2 * np.pi * freq * t) * ramp).astype(np.float32)


@pytest.fixture(scope="module")
def tone_scene(tmp_path_factory: pytest.TempPathFactory) -> ToneScene:
    from earmark import data
    from earmark.audio import AudioConfig

    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for k in range(30):
        for label in ("tone", "noise"):
            (root / "train" / label).mkdir(parents=True, exist_ok=True)
            y = _noise(rng, SR)
            if label == "tone":
                y += _burst(SR, rng.uniform(900, 1100))
            sf.write(root / "train" / label / f"{k:02d}.wav", y, SR)
    clf = Classifier("logreg", features="logmel", audio=AudioConfig(duration=1.0))
    run = clf.fit(data.load(root / "train")).save(root / "run")
    # two recordings whose names differ only after a dot: two files, not one
    placed = {
        "rec.2024-05-01.wav": [(3.0, 1.0), (9.4, 0.8), (17.8, 1.5), (26.1, 1.2), (47.25, 2.0)],
        "rec.2024-05-02.wav": [(1.6, 1.0), (12.35, 1.3), (20.0, 0.9)],
    }
    recordings = root / "recordings"
    recordings.mkdir()
    rows = ["file,start_s,end_s,label"]
    for name, bursts in placed.items():
        y = _noise(rng, 60 * SR)
        for onset, seconds in bursts:
            n = round(seconds * SR)
            y[round(onset * SR) : round(onset * SR) + n] += _burst(n, rng.uniform(950, 1050))
            rows.append(f"{name},{onset},{onset + seconds},tone")
        sf.write(recordings / name, y, SR, subtype="PCM_16")
    truth = root / "truth.csv"
    truth.write_text("\n".join(rows) + "\n")
    spans = {name: [(a, a + d) for a, d in bursts] for name, bursts in placed.items()}
    return ToneScene(run, recordings, truth, spans)


def detect_args(scene: ToneScene, out: Path, *extra: str) -> list[str]:
    return ["detect", str(scene.run), str(scene.recordings), "--out", str(out), *extra]


def test_detect_finds_tone_bursts_at_their_known_times(
    tone_scene: ToneScene, tmp_path: Path
) -> None:
    det = tmp_path / "det"
    res = runner.invoke(
        app, detect_args(tone_scene, det, "--hop", str(HOP), "--background", "noise", "-q")
    )
    assert res.exit_code == 0, res.output
    found = read_events(det / "events.csv")
    assert {e.label for e in found} == {"tone"}
    for name, spans in tone_scene.placed.items():
        mine = sorted((e for e in found if Path(e.file).name == name), key=lambda e: e.start)
        assert len(mine) == len(spans), (name, mine)
        for ev, (onset, offset) in zip(mine, spans, strict=True):
            assert abs(ev.start - onset) <= HOP, (name, ev, onset)
            assert abs(ev.end - offset) <= HOP, (name, ev, offset)
    counts = list(csv.DictReader((det / "counts.csv").open()))
    assert {(Path(r["file"]).name, r["label"], int(r["n"])) for r in counts} == {
        (name, "tone", len(spans)) for name, spans in tone_scene.placed.items()
    }
    # score-events against the truth table: everything found, no count error
    res = runner.invoke(
        app, ["score-events", str(det / "events.csv"), str(tone_scene.truth), "--json"]
    )
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output)
    assert scores["overall"]["f1"] == 1.0 and scores["overall"]["count_mae"] == 0.0
    assert {c["file"]: c["true"] for c in scores["counts"]} == {
        "rec.2024-05-01": 5,
        "rec.2024-05-02": 3,
    }
    # PSDS from the run's window scores (the background class left out), segment F1 beside
    res = runner.invoke(
        app,
        ["score-events", str(det / "events.csv"), str(tone_scene.truth), "--psds", "--json"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["psds"]["classes"] == ["tone"] and doc["psds"]["no_reference"] == []
    assert doc["psds"]["hours"] == pytest.approx(2 / 60, abs=1e-3)
    assert doc["psds"]["psds"] > 0.8, doc["psds"]
    assert doc["segment"]["micro"]["f1"] > 0.8, doc["segment"]


def test_detect_score_cut_and_plot(tone_scene: ToneScene, broken_dir: Path, tmp_path: Path) -> None:
    recs = tmp_path / "recs"
    shutil.copytree(tone_scene.recordings, recs)
    shutil.copy(broken_dir / "text.wav", recs / "notes.wav")
    det = tmp_path / "det"
    args = ["detect", str(tone_scene.run), str(recs), "--out", str(det), "--hop", str(HOP)]
    args += ["--threshold", "0.6", "--background", "noise", "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == PARTIAL_EXIT, res.output
    assert "1 unreadable" in res.output and "notes.wav" in res.output
    for name in ("events.csv", "events.json", "counts.csv", "scores.parquet", "errors.csv"):
        assert (det / name).exists(), name
    events = json.loads((det / "events.json").read_text())
    assert len(events) == sum(map(len, tone_scene.placed.values()))

    # scored against the truth table of where the bursts are: all found
    res = runner.invoke(
        app, ["score-events", str(det / "events.csv"), str(tone_scene.truth), "--json"]
    )
    assert res.exit_code == 0, res.output
    overall = json.loads(res.output)["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (8, 0, 0)
    # against the same bursts a second later, with half a second of tolerance: none
    late = tmp_path / "late.csv"
    rows = tone_scene.truth.read_text().splitlines()
    late.write_text(
        "\n".join(
            [rows[0]]
            + [
                f"{f},{float(a) + 1},{float(b) + 1},{lab}"
                for f, a, b, lab in map(lambda r: r.split(","), rows[1:])
            ]
        )
        + "\n"
    )
    res = runner.invoke(
        app, ["score-events", str(det / "events.csv"), str(late), "--tolerance", "0.5", "--json"]
    )
    assert res.exit_code == 0 and json.loads(res.output)["overall"]["tp"] == 0, res.output
    res = runner.invoke(
        app, ["score-events", str(det / "events.csv"), str(tone_scene.truth), "--sweep"]
    )
    assert res.exit_code == 0 and "threshold sweep" in res.output, res.output
    # per class, the threshold of the best event F1 (what a validation run picks)
    from earmark.detection.scoring import best_event_thresholds
    from earmark.detection.truth import read_truth

    chosen = best_event_thresholds(det, read_truth(tone_scene.truth))
    assert set(chosen) == {"tone"} and chosen["tone"]["f1"] == 1.0
    assert chosen["tone"]["threshold"] == 0.05  # the lowest of the ties
    assert best_event_thresholds(det, read_truth(late))["tone"]["f1"] == 0.0

    # resume: the finished recordings are not scored again
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == PARTIAL_EXIT and "2 already done" in res.output, res.output

    clips = tmp_path / "clips"
    res = runner.invoke(
        app,
        ["segments", str(det / "events.csv"), "--out", str(clips), "--margin", "0.25", "--quiet"],
    )
    assert res.exit_code == 0, res.output
    cut = sorted(clips.glob("*.wav"))
    assert len(cut) == len(events)
    first = min(events, key=lambda e: (e["file"], e["start_s"]))
    want = first["end_s"] - first["start_s"] + 0.5
    assert abs(sf.info(cut[0]).duration - want) < 0.01
    assert cut[0].name.startswith("rec.2024-05-01_")

    png = tmp_path / "det.png"
    res = runner.invoke(
        app,
        ["plot", str(recs / "rec.2024-05-01.wav"), "--events", str(det), "--out", str(png)],
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


def test_resume_keeps_the_run_settings_and_refuses_other_ones(
    tone_scene: ToneScene, tmp_path: Path
) -> None:
    det = tmp_path / "det"
    flags = ["--hop", "0.25", "--threshold", "0.6", "--merge-gap", "0.3", "--background", "noise"]
    res = runner.invoke(app, [*detect_args(tone_scene, det, *flags), "-q"])
    assert res.exit_code == 0, res.output
    table = (det / "events.csv").read_text()
    record = json.loads((det / "detection.json").read_text())
    assert record["windowing"]["hop"] == 0.25 and record["rules"]["threshold"] == 0.6

    # no flags: the recorded settings, nothing scored again, the same events
    res = runner.invoke(app, detect_args(tone_scene, det, "--resume"))
    assert res.exit_code == 0, res.output
    assert "2 already done, 0 scored" in res.output and "hop 0.25" in res.output
    assert (det / "events.csv").read_text() == table
    # flags equal to the record: fine
    res = runner.invoke(app, [*detect_args(tone_scene, det, "--resume", *flags[:4]), "-q"])
    assert res.exit_code == 0 and "2 already done" in res.output, res.output
    record = json.loads((det / "detection.json").read_text())
    # a flag that differs: one line naming it, exit 1, nothing touched
    for given, flag in [
        (["--hop", "0.5"], "--hop 0.5"),
        (["--threshold", "0.5"], "--threshold 0.5"),
        (["--merge-gap", "0"], "--merge-gap 0"),
        (["--background", "tone"], "--background tone"),
        (["--window", "2"], "--window 2"),
        (["--last", "drop"], "--last drop"),
    ]:
        res = runner.invoke(app, [*detect_args(tone_scene, det, "--resume", *given), "-q"])
        assert res.exit_code == 1, (given, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {flag} differs"), res.output
    assert (det / "events.csv").read_text() == table
    assert json.loads((det / "detection.json").read_text()) == record
    # a new run (no --resume) in the folder takes new settings
    res = runner.invoke(app, [*detect_args(tone_scene, det, "--hop", "0.5"), "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads((det / "detection.json").read_text())["windowing"]["hop"] == 0.5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--window", "nan"], "--window: must be a finite number, got nan"),
        (["--hop", "inf"], "--hop: must be a finite number, got inf"),
        (["--hop", "-0.5"], "hop must be between 0.001 and 3600 seconds, got -0.5"),
        (["--hop", "0"], "hop must be between 0.001 and 3600 seconds, got 0.0"),
        (["--window", "1e6"], "window must be between 0.001 and 600 seconds"),
        (["--window", "1e300"], "window must be between 0.001 and 600 seconds"),
        (["--overlap", "nan"], "--overlap: must be a finite number"),
        (["--overlap", "1"], "overlap must be in [0, 1)"),
        (["--threshold", "nan"], "threshold must be a score between 0 and 1"),
        (["--threshold", "inf"], "threshold must be a score between 0 and 1"),
        (["--merge-gap", "inf"], "--merge-gap: must be a finite number"),
        (["--merge-gap", "-1"], "merge_gap must be a finite number of seconds from 0 to 86400"),
        (["--min-duration", "1e9"], "min_duration must be a finite number of seconds"),
        (["--smooth", "2"], "smooth must be an odd number of windows from 1 to 999"),
        (["--top-n", "0"], "top_n must be a whole number >= 1"),
        (["--hop", "0.5", "--overlap", "0.5"], "give a hop or an overlap, not both"),
    ],
)
def test_nan_infinite_or_absurd_options_are_one_line_usage_errors(
    tone_scene: ToneScene, tmp_path: Path, flags: list[str], message: str
) -> None:
    res = runner.invoke(app, [*detect_args(tone_scene, tmp_path / "det", *flags), "-q"])
    assert res.exit_code == 2, res.output  # a usage error: nothing was run
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "det").exists()  # refused before anything was written


def test_the_console_and_the_tables_agree(
    tone_scene: ToneScene, broken_dir: Path, tmp_path: Path
) -> None:
    recs = tmp_path / "recs"
    shutil.copytree(tone_scene.recordings, recs)
    for name in ("text.wav", "empty.wav", "cut.wav"):
        shutil.copy(broken_dir / name, recs / f"broken_{name}")
    det = tmp_path / "det"
    args = detect_args(tone_scene, det, "--hop", "0.5", "--threshold", "0.6")
    args[2] = str(recs)
    for resumed, scored in ((0, 2), (2, 0)):
        res = runner.invoke(app, args if not resumed else [*args, "--resume"])
        assert res.exit_code == PARTIAL_EXIT, res.output
        out = res.output
        summary = re.search(
            r"(\d+) recordings \((\d+) already done, (\d+) scored, (\d+) unreadable\).*; "
            r"(\d+) events ->",
            out,
        )
        assert summary, out
        files, done, new, failed, n_events = map(int, summary.groups())
        assert (files, done, new, failed) == (5, resumed, scored, 3)
        # the per-file errors: printed, in errors.csv, counted
        errors = list(csv.DictReader((det / "errors.csv").open()))
        assert len(errors) == failed == out.count("unreadable: ")
        assert sorted(Path(r["file"]).name for r in errors) == [
            "broken_cut.wav",
            "broken_empty.wav",
            "broken_text.wav",
        ]
        # the events: the console's table, events.csv and counts.csv
        events = read_events(det / "events.csv")
        counts = list(csv.DictReader((det / "counts.csv").open()))
        assert len(events) == n_events == sum(int(r["n"]) for r in counts)
        for label in ("tone", "noise"):
            in_table = re.search(rf"\b{label}\b\W+(\d+)", out)
            per_label = sum(e.label == label for e in events)
            assert (int(in_table.group(1)) if in_table else 0) == per_label, out
            assert per_label == sum(int(r["n"]) for r in counts if r["label"] == label)
        assert {Path(r["file"]).name for r in counts} == set(tone_scene.placed)
        for r in counts:
            assert int(r["n"]) == sum(e.file == r["file"] and e.label == r["label"] for e in events)
        record = json.loads((det / "detection.json").read_text())
        assert (record["files"], record["failed"], record["events"]) == (5, 3, n_events)
    # --json says the same
    res = runner.invoke(app, [*args, "--resume", "--json"])
    assert res.exit_code == PARTIAL_EXIT, res.output
    doc = json.loads(res.stdout)  # one document on stdout; the unreadable files on stderr
    assert res.stderr.count("unreadable: ") == 3
    events = read_events(det / "events.csv")
    assert (doc["files"], doc["resumed"], doc["scored"], doc["unreadable"]) == (5, 2, 0, 3)
    assert doc["events"] == len(events)
    assert doc["events_per_label"] == dict(Counter(e.label for e in events))
    errors = list(csv.DictReader((det / "errors.csv").open()))
    assert sorted(e["path"] for e in doc["errors"]) == sorted(r["file"] for r in errors)
