"""Annotation tables over long recordings: the three formats, the checks that name the row,
the window rule on its boundaries, complete vs incomplete negatives, and inspect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR
from typer.testing import CliRunner

from earmark.cli import app
from earmark.data.annotations import (
    MinOverlap,
    annotation_windows,
    is_annotation_source,
    read_annotations,
    read_table,
    windows_summary,
)
from earmark.errors import ParameterError

RAVEN_HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\t"
    "Species\n"
)


def write_noise(path: Path, seconds: float = 4.0, seed: int = 0) -> Path:
    y = np.random.default_rng(seed).normal(0, 0.05, round(seconds * SR)).astype(np.float32)
    sf.write(path, y, SR)
    return path


def raven(path: Path, rows: list[tuple], header: str = RAVEN_HEADER) -> Path:
    """A Raven table; rows are (begin, end, label) or full tuples of cells."""
    lines = [header]
    for i, row in enumerate(rows, start=1):
        cells = row if len(row) > 3 else (i, "Spectrogram 1", 1, row[0], row[1], 0, 4000, row[2])
        lines.append("\t".join(str(c) for c in cells) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def rec(tmp_path: Path) -> Path:
    return write_noise(tmp_path / "rec.wav")


def labels(frame) -> list[tuple[float, str]]:
    return [(round(s, 3), lab) for s, lab in zip(frame["start_s"], frame["label"], strict=True)]


# -- formats ------------------------------------------------------------------------------------


def test_raven_table_with_views_and_multi_labels(tmp_path, rec):
    table = raven(
        tmp_path / "rec.Table.1.selections.txt",
        [
            (1, "Spectrogram 1", 1, 0.5, 1.5, 100, 2000, "bird"),
            (1, "Waveform 1", 1, 0.5, 1.5, 100, 2000, "bird"),  # the same selection again
            (2, "Spectrogram 1", 1, 1.2, 2.0, 300, 900, "frog; bird"),
        ],
    )
    ann = read_table(table)
    f = ann.frame
    assert f["label"].tolist() == ["bird", "frog", "bird"]
    assert f["line"].tolist() == [2, 4, 4]
    assert set(f["recording"]) == {str(rec.resolve())}
    assert f["low_hz"].tolist() == [100, 300, 300]
    assert ann.classes == ["bird", "frog"]


def test_raven_label_column_is_configurable(tmp_path, rec):
    header = RAVEN_HEADER.replace("Species", "Call Type\tSpecies")
    table = raven(
        tmp_path / "rec.selections.txt", [(1, "Spectrogram 1", 1, 0, 1, 0, 1, "song", "x")], header
    )
    assert read_table(table).frame["label"].tolist() == ["x"]  # Species is a default column
    assert read_table(table, label_column="Call Type").frame["label"].tolist() == ["song"]


def test_raven_table_spanning_files(tmp_path):
    write_noise(tmp_path / "a.wav", 2.0)
    write_noise(tmp_path / "b.flac", 2.0)
    header = "Selection\tView\tBegin Time (s)\tEnd Time (s)\tBegin File\tFile Offset (s)\tLabel\n"
    table = tmp_path / "season.selections.txt"
    table.write_text(
        header
        + "1\tSpectrogram 1\t0.5\t1.0\ta.wav\t0.5\towl\n"
        + "2\tSpectrogram 1\t2.5\t3.25\tb.flac\t0.5\towl\n"
    )
    f = read_table(table).frame
    assert [Path(p).name for p in f["recording"]] == ["a.wav", "b.flac"]
    assert f["start_s"].tolist() == [0.5, 0.5]  # from File Offset, not the sequence time
    assert f["end_s"].tolist() == [1.0, 1.25]


def test_audacity_labels_with_frequency_lines(tmp_path, rec):
    table = tmp_path / "rec.txt"
    table.write_text("0.5\t1.0\twren\n\\\t2000\t6000\n2.0\t3.0\tjay\n")
    f = read_table(table).frame
    assert f["label"].tolist() == ["wren", "jay"]
    assert f["high_hz"].tolist()[0] == 6000
    assert np.isnan(f["low_hz"].tolist()[1])


def test_csv_table_with_aliases_and_recordings_folder(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_noise(audio / "r1.wav", 2.0)
    write_noise(audio / "r2.wav", 2.0)
    table = tmp_path / "ann.csv"
    table.write_text("filename,onset,offset,class,notes\nr1.wav,0,1,a,x\nr2,0.5,1.5,b,\n")
    ann = read_annotations(table, recordings=audio)
    assert [Path(p).name for p in ann.frame["recording"]] == ["r1.wav", "r2.wav"]
    assert ann.classes == ["a", "b"]


def test_folder_of_tables_next_to_recordings(tmp_path):
    for name in ("x", "y", "z"):
        write_noise(tmp_path / f"{name}.wav", 2.0)
    raven(tmp_path / "x.selections.txt", [(0.2, 0.8, "a")])
    (tmp_path / "y.txt").write_text("")  # an empty Audacity track: y has no calls
    (tmp_path / "README.txt").write_text("notes about the site\n")
    ann = read_annotations(tmp_path)
    assert [Path(p).name for p in ann.covered] == ["x.wav", "y.wav"]
    assert [Path(p).name for p in ann.skipped] == ["README.txt"]
    summary = ann.summary()
    assert [Path(p).name for p in summary["without_annotations"]] == ["y.wav"]
    w = annotation_windows(ann, window_s=1.0, min_overlap="50%", complete=True, last="drop")
    assert [(Path(f).name, s, lab) for f, s, lab in w[["filepath", "start_s", "label"]].values] == [
        ("x.wav", 0.0, "a"),
        ("x.wav", 1.0, ""),
        ("y.wav", 0.0, ""),  # the empty table: every window of y is a negative
        ("y.wav", 1.0, ""),
    ]
    assert annotation_windows(ann, window_s=1.0, last="drop")["label"].tolist() == ["a"]


def test_crowsetta_formats(tmp_path, rec):
    pytest.importorskip("crowsetta")
    table = tmp_path / "rec.csv"
    table.write_text("onset_s,offset_s,label\n0.5,1.0,a\n1.5,2.5,b\n")
    ann = read_table(table, format="crowsetta:simple-seq")
    assert ann.frame["label"].tolist() == ["a", "b"]
    assert ann.frame["end_s"].tolist() == [1.0, 2.5]


# -- errors: one line naming the table and row ----------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        ([(0.5, 1.0, "a"), (2.0, 1.0, "a")], 3, "not after start"),
        ([(1.0, 1.0, "a")], 2, "not after start"),
        ([(-0.5, 1.0, "a")], 2, "negative start"),
        ([(0.5, 1.0, "a"), (1.0, 2.0, "  ")], 3, "empty label"),
        ([(0.5, "x", "a")], 2, "not a number"),
        ([(0.5, "nan", "a")], 2, "finite"),
    ],
)
def test_bad_rows_name_the_table_and_line(tmp_path, rec, rows, line, message):
    table = raven(tmp_path / "rec.selections.txt", rows)
    with pytest.raises(ParameterError, match=message) as info:
        read_table(table)
    text = str(info.value)
    assert f"{table}: line {line}" in text and "\n" not in text


def test_missing_recording_names_the_row(tmp_path):
    write_noise(tmp_path / "there.wav", 1.0)
    table = tmp_path / "t.csv"
    table.write_text("file,start_s,end_s,label\nthere.wav,0,0.5,a\ngone.wav,0,0.5,a\n")
    with pytest.raises(ParameterError, match=r"t\.csv: line 3: recording 'gone.wav' not found"):
        read_table(table)


def test_unknown_or_missing_columns(tmp_path, rec):
    table = raven(tmp_path / "rec.selections.txt", [(0, 1, "a")])
    with pytest.raises(ParameterError, match=r"line 1: unknown label column 'Sound'"):
        read_table(table, label_column="Sound")
    bad = tmp_path / "rec.2.selections.txt"
    bad.write_text("Selection\tBegin Time (s)\tEnd (s)\tLabel\n1\t0\t1\ta\n")
    with pytest.raises(ParameterError, match=r"line 1: no 'End Time \(s\)' column"):
        read_table(bad, format="raven")
    nolabel = tmp_path / "n.csv"
    nolabel.write_text("file,start_s,end_s\nrec.wav,0,1\n")
    with pytest.raises(ParameterError, match=r"n\.csv: line 1: missing column label"):
        read_table(nolabel)


def test_annotation_past_the_end_clipped_or_refused(tmp_path, rec):  # rec: 4 s
    table = raven(tmp_path / "rec.selections.txt", [(3.5, 4.5, "a")])
    ann = read_table(table)
    assert ann.summary()["outside"][0]["line"] == 2
    w = annotation_windows(ann, window_s=1.0, hop_s=0.5, min_overlap="100%")
    assert labels(w) == [(3.0, "a")]  # clipped to 3.5-4.0: the window 3-4 holds all of it
    with pytest.raises(ParameterError, match=r"line 2: annotation 3.5-4.5 s is past the end"):
        annotation_windows(ann, window_s=1.0, outside="error")
    after = raven(tmp_path / "rec.Table.2.selections.txt", [(0.5, 1, "a"), (4.0, 5.0, "a")])
    (tmp_path / "rec.selections.txt").unlink()
    with pytest.raises(ParameterError, match=r"line 3: .* another recording"):
        annotation_windows(read_table(after, recordings=tmp_path), window_s=1.0)


# -- the window rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "rule", "positive"),
    [
        (1.0, 1.25, 0.25, True),  # overlap 0.25 s == 0.25 s: at the threshold counts
        (1.0, 1.24, 0.25, False),  # just below
        (1.0, 1.26, 0.25, True),  # just above
        (1.0, 1.25, "0.25s", True),
        (1.0, 2.5, "50%", True),  # 1.5 s annotation: half the 1 s window, has exactly 0.5 s
        (1.0, 2.5, "51%", False),
        (1.0, 2.5, "49%", True),
        (1.2, 1.8, "50%", True),  # 0.6 s annotation, shorter than the window: needs 0.3, has 0.3
        (1.2, 1.8, "51%", False),
        (1.1, 1.4, "100%", True),  # all of a 0.3 s annotation inside the window
    ],
)
def test_overlap_rule_on_the_boundary(tmp_path, rec, start, end, rule, positive):
    # 1 s windows every 0.5 s: the window 0.5-1.5 overlaps the annotation [start, end) by
    # min(end, 1.5) - start; the window 0.0-1.0 does not touch it.
    table = raven(tmp_path / "rec.selections.txt", [(start, end, "a")])
    w = annotation_windows(table, window_s=1.0, hop_s=0.5, min_overlap=rule, complete=True)
    row = w[np.isclose(w["start_s"], 0.5)]
    if positive:
        assert row["label"].tolist() == ["a"]
    else:
        assert row.empty  # below the threshold: ambiguous, dropped (not a negative)
    assert w[np.isclose(w["start_s"], 0.0)]["label"].tolist() == [""]


def test_fraction_of_the_shorter_of_window_and_annotation(tmp_path, rec):
    # a 3 s annotation, 1 s windows: "50%" asks half a window (0.5 s), not 1.5 s
    table = raven(tmp_path / "rec.selections.txt", [(0.5, 3.5, "a")])
    w = annotation_windows(table, window_s=1.0, hop_s=0.5, min_overlap="50%", last="drop")
    assert [s for s, lab in labels(w) if lab == "a"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_complete_tables_give_negatives_and_incomplete_do_not(tmp_path, rec):
    table = raven(tmp_path / "rec.selections.txt", [(1.0, 2.0, "a")])
    kw = {"window_s": 1.0, "hop_s": 0.5, "min_overlap": "50%", "last": "drop"}
    incomplete = annotation_windows(table, **kw)
    assert labels(incomplete) == [(0.5, "a"), (1.0, "a"), (1.5, "a")]
    complete = annotation_windows(table, complete=True, **kw)
    assert labels(complete) == [
        (0.0, ""), (0.5, "a"), (1.0, "a"), (1.5, "a"), (2.0, ""), (2.5, ""), (3.0, ""),
    ]  # fmt: skip
    assert set(complete["group"]) == {str(rec.resolve())}
    assert set(complete["filepath"]) == {str(rec.resolve())}
    assert windows_summary(complete) == {"<negative>": 4, "a": 3}


def test_ambiguous_windows_dropped_kept_negative_or_listed(tmp_path, rec):
    table = raven(tmp_path / "rec.selections.txt", [(0.8, 1.1, "a"), (0.0, 2.0, "b")])
    kw = {"window_s": 1.0, "hop_s": 1.0, "min_overlap": "0.25", "complete": True, "last": "drop"}
    w = annotation_windows(table, **kw)
    # window 0-1: a overlaps 0.2 s (ambiguous), b 1 s (positive); window 1-2: a 0.1 s, b 1 s
    assert w["label"].tolist()[:2] == ["b", "b"]
    assert w["ambiguous"].tolist()[:2] == ["a", "a"]
    only_a = raven(tmp_path / "rec.selections.txt", [(0.8, 1.1, "a")])
    assert annotation_windows(only_a, **kw)["start_s"].tolist() == [2.0, 3.0]
    kept = annotation_windows(only_a, ambiguous="negative", **kw)
    assert labels(kept) == [(0.0, ""), (1.0, ""), (2.0, ""), (3.0, "")]


def test_multi_label_windows_are_joined_sorted(tmp_path, rec):
    table = raven(tmp_path / "rec.selections.txt", [(0.0, 1.0, "zeta"), (0.0, 1.0, "alpha")])
    w = annotation_windows(table, window_s=1.0, min_overlap="50%", last="drop")
    assert w["label"].tolist() == ["alpha;zeta"]


@pytest.mark.parametrize("bad", ["0", "-1", "0%", "150%", "abc", "nan", True])
def test_min_overlap_values_refused(bad):
    with pytest.raises(ParameterError, match="min_overlap"):
        MinOverlap.parse(bad)


def test_min_overlap_forms():
    assert MinOverlap.parse(0.2) == MinOverlap(seconds=0.2)
    assert MinOverlap.parse("0.2s") == MinOverlap(seconds=0.2)
    assert MinOverlap.parse("50%") == MinOverlap(fraction=0.5)


# -- inspect ------------------------------------------------------------------------------------


def _scene(tmp_path: Path) -> Path:
    write_noise(tmp_path / "r1.wav", 3.0)
    write_noise(tmp_path / "r2.wav", 3.0)
    write_noise(tmp_path / "r3.wav", 1.0)  # no table covers it
    raven(
        tmp_path / "r1.selections.txt",
        [(0.0, 1.0, "a"), (0.5, 1.5, "a"), (1.2, 2.0, "b"), (2.5, 3.5, "b")],
    )
    (tmp_path / "r2.txt").write_text("0.1\t0.4\ta\n")
    return tmp_path


def test_summary_counts(tmp_path):
    s = read_annotations(_scene(tmp_path)).summary()
    assert s["annotations"] == 5 and s["tables"] == 2 and s["recordings"] == 2
    assert s["classes"]["a"]["count"] == 3
    assert s["classes"]["a"]["total_s"] == pytest.approx(2.3)
    assert s["classes"]["b"]["mean_s"] == pytest.approx(0.9)
    assert s["overlaps"] == {"same_class": 1, "different_classes": 1}
    assert [(o["line"], o["duration_s"]) for o in s["outside"]] == [(5, 3.0)]
    assert s["recorded_s"] == pytest.approx(6.0)


def test_inspect_cli_on_tables(tmp_path):
    folder = _scene(tmp_path)
    assert is_annotation_source(folder)
    runner = CliRunner()
    res = runner.invoke(app, ["inspect", str(folder), "--recordings", str(folder), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["classes"]["a"]["count"] == 3
    assert [Path(p).name for p in doc["without_annotations"]] == ["r3.wav"]
    res = runner.invoke(app, ["inspect", str(folder / "r1.selections.txt")])
    assert res.exit_code == 0, res.output
    assert "outside their file: 1" in res.stdout


def test_inspect_cli_errors(tmp_path, rec):
    runner = CliRunner()
    table = raven(tmp_path / "rec.selections.txt", [(2.0, 1.0, "a")])
    res = runner.invoke(app, ["inspect", str(table)])
    assert res.exit_code == 1
    assert "line 2" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    ok = raven(tmp_path / "rec.selections.txt", [(0.0, 1.0, "a")])
    res = runner.invoke(app, ["inspect", str(ok), "--label-column", "Nope"])
    assert res.exit_code == 1 and "unknown label column" in res.stderr
    write_noise(tmp_path / "other.wav", 1.0)
    raven(tmp_path / "other.selections.txt", [(0.0, 0.5, "b")])
    rec.write_bytes(b"not audio at all" * 10)
    res = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert res.exit_code == 3  # one recording cannot be read: reported, partial
    assert json.loads(res.stdout)["unreadable"][0]["recording"] == str(rec.resolve())
    assert "unreadable:" in res.stderr
    res = runner.invoke(app, ["inspect", str(ok)])
    assert res.exit_code == 1  # nothing readable
    res = runner.invoke(app, ["inspect", str(ok), "--format", "mp3"])
    assert res.exit_code == 2 and "unknown annotation format" in res.stderr
