from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, tone

from earmark.detection.events import Event
from earmark.detection.scores import ScoreTrack
from earmark.detection.tables import (
    RavenSelection,
    raven_text,
    read_audacity,
    read_events,
    read_raven,
    read_scores,
    write_audacity,
    write_events_csv,
    write_events_json,
    write_raven,
    write_raven_table,
    write_scores,
)
from earmark.errors import ParameterError

EVENTS = [
    Event("rec/a.wav", 1.25, 2.5, "bird", 0.91),
    Event("rec/a.wav", 10.0, 10.75, "frog, green", 0.7),  # a comma and a space in the label
]


def test_events_csv_and_json_round_trip(tmp_path: Path) -> None:
    assert read_events(write_events_csv(tmp_path / "e.csv", EVENTS)) == EVENTS
    assert read_events(write_events_json(tmp_path / "e.json", EVENTS)) == EVENTS
    assert (tmp_path / "e.csv").read_text().splitlines()[0] == "file,start_s,end_s,label,score"
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ParameterError, match="not an events table"):
        read_events(tmp_path / "x.csv")


def test_raven_selection_table_is_tab_separated_and_reads_back(tmp_path: Path) -> None:
    path = write_raven(tmp_path / "a.selections.txt", EVENTS, max_freq=8000)
    header, first, _ = path.read_text().splitlines()
    assert header.split("\t")[:5] == [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
    ]
    assert first.split("\t")[:2] == ["1", "Spectrogram 1"]
    back = read_raven(path)
    assert [(e.file, e.start, e.end, e.label) for e in back] == [
        ("a", 1.25, 2.5, "bird"),
        ("a", 10.0, 10.75, "frog, green"),
    ]
    assert back[0].score == pytest.approx(0.91)


RAVEN_FIXED = "\t".join(
    [
        "Selection",
        "View",
        "Channel",
        "Begin Time (s)",
        "End Time (s)",
        "Low Freq (Hz)",
        "High Freq (Hz)",
    ]
)


def test_raven_writer_columns_and_formatting() -> None:
    full = [
        RavenSelection(1.25, 2.5, 300, 4000.04, "bird", 0.91, "/data/site 1.wav", "site 1.wav"),
        RavenSelection(1 / 3, 10, 0, 8000, "frog", 0.5, "/data/site 1.wav", "site 1.wav"),
    ]
    assert raven_text(full).splitlines() == [
        f"{RAVEN_FIXED}\tBegin Path\tBegin File\tAnnotation\tScore",
        "1\tSpectrogram 1\t1\t1.2500\t2.5000\t300.0\t4000.0\t/data/site 1.wav\tsite 1.wav\t"
        "bird\t0.910000",
        "2\tSpectrogram 1\t1\t0.3333\t10.0000\t0.0\t8000.0\t/data/site 1.wav\tsite 1.wav\t"
        "frog\t0.500000",
    ]
    # optional columns only when a selection gives them or `columns` names them
    plain = [RavenSelection(1.0, 2.0, 0.0, 100.0, "bird")]
    assert raven_text(plain, label_column="Label").splitlines() == [
        f"{RAVEN_FIXED}\tLabel",
        "1\tSpectrogram 1\t1\t1.0000\t2.0000\t0.0\t100.0\tbird",
    ]
    assert raven_text([], columns=("Score", "Begin File")) == (
        f"{RAVEN_FIXED}\tBegin File\tAnnotation\tScore\n"
    )
    # a selection without a value another one gives leaves its cell empty
    mixed = [*plain, RavenSelection(3.0, 4.0, 0.0, 100.0, "frog", score=0.25)]
    assert raven_text(mixed).splitlines()[1].endswith("\tbird\t")
    with pytest.raises(ParameterError, match="label column 'Name'"):
        raven_text(plain, label_column="Name")
    with pytest.raises(ParameterError, match="unknown optional Raven column 'Notes'"):
        raven_text(plain, columns=("Notes",))


def _both_readers(table: Path, recordings: Path | None = None) -> tuple[list, list]:
    """(start, end, label) of a Raven table through :func:`read_raven` and through the
    annotation reader, each sorted."""
    from earmark.data.annotations import read_table

    events = sorted((e.start, e.end, e.label) for e in read_raven(table))
    ann = read_table(table, recordings=recordings, format="raven").frame
    rows = sorted(zip(ann["start_s"], ann["end_s"], ann["label"], strict=True))
    return events, rows


def test_raven_table_with_awkward_labels_reads_back_through_both_readers(
    tmp_path: Path,
) -> None:
    sf.write(tmp_path / "site.wav", tone(duration=4.0), SR)
    selections = [
        RavenSelection(0.5, 1.0, 0.0, 8000.0, 'frog "green"', begin_file="site.wav"),
        RavenSelection(2.0, 3.5, 200.0, 900.0, "owl\ttawny", begin_file="site.wav"),
    ]
    path = write_raven_table(tmp_path / "t.selections.txt", selections)
    want = [(0.5, 1.0, 'frog "green"'), (2.0, 3.5, "owl\ttawny")]
    assert _both_readers(path) == (want, want)


def test_detection_raven_table_reads_back_through_both_readers(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", tone(duration=12.0), SR)
    path = write_raven(tmp_path / "a.selections.txt", EVENTS, max_freq=8000)
    want = [(e.start, e.end, e.label) for e in EVENTS]
    assert _both_readers(path) == (want, want)
    assert path.read_text().splitlines()[0] == f"{RAVEN_FIXED}\tLabel\tScore"
    empty = write_raven(tmp_path / "b.selections.txt", [], max_freq=8000)
    assert empty.read_text() == f"{RAVEN_FIXED}\tLabel\tScore\n"


def test_raven_tables_as_birdnet_writes_them(tmp_path: Path) -> None:
    text = (
        "Selection\tView\tChannel\tBegin File\tBegin Time (s)\tEnd Time (s)\t"
        "Low Freq (Hz)\tHigh Freq (Hz)\tCommon Name\tConfidence\n"
        "1\tSpectrogram 1\t1\tsite3.wav\t3.0\t6.0\t150\t15000\tRobin\t0.8\n"
        "1\tWaveform 1\t1\tsite3.wav\t3.0\t6.0\t150\t15000\tRobin\t0.8\n"
    )
    (tmp_path / "x.BirdNET.selection.table.txt").write_text(text)
    got = read_raven(tmp_path / "x.BirdNET.selection.table.txt")
    assert got == [Event("site3", 3.0, 6.0, "Robin", 0.8)]


def test_audacity_labels_round_trip(tmp_path: Path) -> None:
    path = write_audacity(tmp_path / "a.labels.txt", EVENTS)
    assert path.read_text().splitlines()[0] == "1.250000\t2.500000\tbird"
    back = read_audacity(path)
    assert [(e.file, e.start, e.end, e.label) for e in back] == [
        ("a", 1.25, 2.5, "bird"),
        ("a", 10.0, 10.75, "frog, green"),
    ]


def test_scores_parquet_holds_one_column_per_class(tmp_path: Path) -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]], np.float32)
    track = ScoreTrack("r.wav", ["a", "b"], np.array([0.0, 0.5, 1.0]), 1.0, 0.5, scores, 1.7)
    table = read_scores(write_scores(tmp_path / "s.parquet", [track]))
    assert list(table.columns) == ["file", "start_s", "end_s", "a", "b"]
    np.testing.assert_array_equal(table[["a", "b"]].to_numpy(), scores)
    np.testing.assert_allclose(table["end_s"], [1.0, 1.5, 1.7])
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
