from __future__ import annotations

from pathlib import Path

import pytest

from earmark.detection.events import Event
from earmark.detection.run import recording_names
from earmark.detection.tables import write_raven
from earmark.detection.truth import file_key, read_truth, score_events
from earmark.errors import ParameterError


def ev(start: float, label: str = "bird", file: str = "a.wav") -> Event:
    return Event(file, start, start + 0.5, label)


def test_known_precision_recall_and_f1() -> None:
    truth = [ev(1.0), ev(5.0), ev(9.0), ev(2.0, "frog")]
    detected = [ev(1.3), ev(5.6), ev(20.0), ev(2.1, "frog")]
    r = score_events(detected, truth, tolerance=0.5)
    assert r.per_class["bird"] | {} == {
        "tp": 1,
        "fp": 2,
        "fn": 2,
        "precision": 1 / 3,
        "recall": 1 / 3,
        "f1": pytest.approx(1 / 3),
    }
    assert r.per_class["frog"]["f1"] == 1.0
    assert (r.overall["tp"], r.overall["fp"], r.overall["fn"]) == (2, 2, 2)
    assert r.overall["f1"] == pytest.approx(0.5)
    wide = score_events(detected, truth, tolerance=0.6)
    assert wide.per_class["bird"]["tp"] == 2


def test_each_reference_event_matches_one_detection_at_most() -> None:
    r = score_events([ev(1.0), ev(1.1)], [ev(1.05)], tolerance=0.5)
    assert (r.overall["tp"], r.overall["fp"], r.overall["fn"]) == (1, 1, 0)


def test_the_matching_is_maximal_not_greedy() -> None:
    # greedy nearest-first pairs 1.4 with 1.0 and leaves 1.9 unmatched; the maximum pairs all
    r = score_events([ev(1.4), ev(1.9)], [ev(1.0), ev(1.45)], tolerance=0.5)
    assert r.overall["tp"] == 2


def test_files_match_by_name_and_missed_files_count() -> None:
    truth = [ev(1.0, file="site/a.wav"), ev(1.0, file="b.wav")]
    r = score_events(
        [ev(1.1, file="/data/recordings/a.flac")], truth, tolerance=0.5, files=["a.wav", "b.wav"]
    )
    assert (r.overall["tp"], r.overall["fn"]) == (1, 1)
    errors = {(c["file"], c["label"]): c["error"] for c in r.counts}
    assert errors == {("a", "bird"): 0, ("b", "bird"): -1}
    assert r.overall["count_mae"] == 0.5
    assert file_key("C:\\x\\y.wav") == "y"


def test_truth_from_csv_with_other_column_names_or_raven(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("filename,onset,offset,event_label\na.wav,1.0,1.5,bird\n")
    assert read_truth(tmp_path / "t.csv") == [Event("a.wav", 1.0, 1.5, "bird")]
    folder = tmp_path / "raven"
    write_raven(folder / "a.selections.txt", [Event("x", 2.0, 3.0, "frog")], max_freq=8000)
    assert [(e.file, e.label) for e in read_truth(folder)] == [("a", "frog")]
    assert read_truth(folder / "a.selections.txt")[0].start == 2.0
    (tmp_path / "bad.csv").write_text("file,start\na,1\n")
    with pytest.raises(ParameterError, match="needs its end column"):
        read_truth(tmp_path / "bad.csv")


def test_dotted_file_names_are_different_recordings() -> None:
    assert file_key("/x/rec.2024-05-01.wav") == "rec.2024-05-01"
    assert file_key("rec.2024-05-01") == "rec.2024-05-01"  # no audio extension: kept whole
    assert file_key("site/rec.2024-05-01.FLAC") == "rec.2024-05-01"
    truth = [ev(1.0, file="rec.2024-05-01.wav"), ev(3.0, file="rec.2024-05-02.wav")]
    detected = [ev(1.1, file="/data/rec.2024-05-01.wav"), ev(3.1, file="/data/rec.2024-05-02.wav")]
    r = score_events(detected, truth, tolerance=0.5)
    assert (r.overall["tp"], r.overall["fp"], r.overall["fn"]) == (2, 0, 0)
    assert sorted(c["file"] for c in r.counts) == ["rec.2024-05-01", "rec.2024-05-02"]
    # a detection on the 1st of May does not count for the 2nd
    r = score_events([ev(3.1, file="rec.2024-05-01.wav")], truth[1:], tolerance=0.5)
    assert (r.overall["tp"], r.overall["fp"], r.overall["fn"]) == (0, 1, 1)
    # the per-recording tables of a run are named the same way
    names = recording_names(["/d/rec.2024-05-01.wav", "/d/rec.2024-05-02.wav"])
    assert names == ["rec.2024-05-01", "rec.2024-05-02"]
    assert [file_key(n) for n in names] == names
