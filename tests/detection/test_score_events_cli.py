"""`earmark score-events` with segment scores and --psds, on a hand-made detection folder
(events.csv and scores.parquet as `earmark detect` writes them: two classes at once)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from earmark.cli import app
from earmark.detection.events import Event
from earmark.detection.tables import write_events_csv, write_scores
from earmark.predict import ScoreTrack

runner = CliRunner()

WINDOW, HOP, LENGTH = 1.0, 0.5, 20.0
TRUTH = "file,start_s,end_s,label\na.wav,4.0,7.0,bird\na.wav,5.0,6.0,frog\nb.wav,12.0,14.0,frog\n"


def track(name: str, spans: dict[str, list[tuple[float, float]]]) -> ScoreTrack:
    starts = np.arange(0.0, LENGTH - WINDOW + 1e-9, HOP)
    centres = starts + WINDOW / 2
    classes = ["bird", "frog", "noise"]
    scores = np.full((len(starts), 3), 0.1, np.float32)
    for c, label in enumerate(classes):
        for a, b in spans.get(label, []):
            scores[(centres >= a) & (centres < b), c] = 0.9
    return ScoreTrack(f"recs/{name}", classes, starts, WINDOW, HOP, scores, LENGTH)


@pytest.fixture
def det(tmp_path: Path) -> Path:
    """A detection folder whose scores and events are exactly the reference."""
    out = tmp_path / "det"
    out.mkdir()
    write_scores(
        out / "scores.parquet",
        [
            track("a.wav", {"bird": [(4.0, 7.0)], "frog": [(5.0, 6.0)]}),
            track("b.wav", {"frog": [(12.0, 14.0)]}),
        ],
    )
    events = [
        Event("recs/a.wav", 4.0, 7.0, "bird", 0.9),
        Event("recs/a.wav", 5.0, 6.0, "frog", 0.9),
        Event("recs/b.wav", 12.0, 14.0, "frog", 0.9),
    ]
    write_events_csv(out / "events.csv", events)
    (tmp_path / "truth.csv").write_text(TRUTH)
    return out


def score(det: Path, *args: str):
    return runner.invoke(app, ["score-events", str(det / "events.csv"), *args])


def test_json_has_segment_scores_and_psds(det: Path) -> None:
    res = score(det, str(det.parent / "truth.csv"), "--psds", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["overall"]["f1"] == 1.0  # the event scores as before
    assert doc["segment"]["segment_s"] == 1.0 and doc["segment"]["micro"]["f1"] == 1.0
    assert set(doc["segment"]["per_class"]) == {"bird", "frog"}
    p = doc["psds"]
    assert p["psds"] == pytest.approx(1.0) and p["classes"] == ["bird", "frog"]
    assert p["no_reference"] == ["noise"] and p["settings"]["dtc"] == 0.7
    assert p["roc"][0] == {"efpr": 0.0, "tpr": 1.0}
    # other settings, the score table named, half-second segments
    res = score(
        det,
        str(det.parent / "truth.csv"),
        "--psds",
        "--scores",
        str(det / "scores.parquet"),
        "--dtc",
        "0.5",
        "--max-efpr",
        "50",
        "--segment",
        "0.5",
        "--json",
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["psds"]["settings"]["dtc"] == 0.5 and doc["psds"]["settings"]["max_efpr"] == 50
    # without the run's record each recording lasts until its latest event (as sed_eval)
    assert doc["segment"]["segment_s"] == 0.5 and doc["segment"]["segments"] == 2 * (7 + 14)
    res = score(det, str(det.parent / "truth.csv"), "--segment", "0", "--json")
    assert res.exit_code == 0 and "segment" not in json.loads(res.stdout), res.output


def test_the_runs_record_gives_lengths_and_background(det: Path) -> None:
    from earmark.detection.events import EventRules
    from earmark.detection.windows import Windowing

    record = {
        "classes": ["bird", "frog", "noise"],
        "windowing": Windowing().to_dict(),
        "rules": EventRules(background=("noise",)).to_dict(),
        "durations": {"recs/a.wav": LENGTH, "recs/b.wav": LENGTH},
    }
    (det / "detection.json").write_text(json.dumps(record))
    res = score(det, str(det.parent / "truth.csv"), "--psds", "--segment", "0.5", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["segment"]["segments"] == 80 and set(doc["segment"]["per_class"]) == {
        "bird",
        "frog",
    }
    assert doc["psds"]["no_reference"] == [] and doc["psds"]["hours"] == pytest.approx(40 / 3600)


def test_tables_are_printed(det: Path) -> None:
    late = det.parent / "late.csv"  # the frog of b a second later: an event-scoring miss
    late.write_text(TRUTH.replace("b.wav,12.0,14.0", "b.wav,13.0,15.0"))  # 7 + 15 segments
    res = score(det, str(late), "--psds", "-q")
    assert res.exit_code == 0, res.output
    for text in ("events", "segments (1 s, 22 per class)", "micro", "macro", "PSDS"):
        assert text in res.output, text
    assert "not in PSDS: noise (no reference events)" in res.output
    assert "max eFPR 100/h" in res.output


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--psds", "--scores", "nowhere.parquet"], "nowhere.parquet: no such score table", 1),
        (["--scores", "s.parquet"], "--scores is for --psds", 2),
        (["--psds", "--dtc", "1.5"], "PSDS dtc must be a fraction in (0, 1]", 2),
        (["--psds", "--max-efpr", "inf"], "--max-efpr: must be a finite number", 2),
        (["--segment", "-1"], "--segment must be >= 0", 2),
    ],
)
def test_option_and_file_errors_are_one_line(
    det: Path, args: list[str], message: str, code: int
) -> None:
    res = score(det, str(det.parent / "truth.csv"), *args)
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_psds_without_the_score_table_is_a_one_line_error(det: Path) -> None:
    (det / "scores.parquet").unlink()
    res = score(det, str(det.parent / "truth.csv"), "--psds")
    assert res.exit_code == 1 and "scores.parquet: no such score table" in res.output
    assert "Traceback" not in res.output
    owl = det.parent / "owl.csv"
    owl.write_text(TRUTH + "a.wav,1.0,2.0,owl\n")
    res = score(det, str(owl), "--psds", "--scores", str(det.parent / "x.parquet"))
    assert res.exit_code == 1 and "no such score table" in res.output


def test_a_reference_class_without_scores_is_named(det: Path) -> None:
    owl = det.parent / "owl.csv"
    owl.write_text(TRUTH + "a.wav,1.0,2.0,owl\n")
    res = score(det, str(owl), "--psds")
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "events of owl, which" in res.output and "has no scores for" in res.output
    other = det.parent / "other.csv"
    other.write_text(TRUTH + "c.wav,1.0,2.0,frog\n")
    res = score(det, str(other), "--psds")
    assert res.exit_code != 0 and "events in c, which" in res.output
