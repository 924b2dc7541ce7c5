from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from earmark.cli import app
from earmark.data.annotations import read_table
from earmark.data.field import make_field_scenes
from earmark.detection.tables import read_raven
from earmark.detection.truth import read_truth
from earmark.errors import ParameterError

TARGETS = ("seven", "three", "nine")


@pytest.fixture(scope="module")
def field(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory):
    """Four 15-s recordings (2 train, 1 valid, 1 test) at a fixed 12 dB, many overlaps."""
    return make_field_scenes(
        tmp_path_factory.mktemp("field") / "f",
        demo_digits,
        n_recordings=(2, 1, 1),
        seconds=15.0,
        overlap_share=0.5,
        snr_db=(12.0, 12.0),
        seed=4,
    )


def _raven(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_every_recording_has_a_raven_table_of_exactly_its_targets(field) -> None:
    placed = pd.read_csv(field.placements)
    for split in ("train", "valid", "test"):
        wavs = sorted(field.recordings[split].glob("*.wav"))
        assert [t.name for t in field.tables(split)] == [
            f"{w.stem}.Table.1.selections.txt" for w in wavs
        ]
        truth = pd.read_csv(field.truth[split])
        for wav in wavs:
            assert abs(sf.info(wav).duration - 15.0) < 1e-3
            rows = _raven(wav.with_name(f"{wav.stem}.Table.1.selections.txt"))
            mine = placed[(placed["file"] == wav.name) & (placed["role"] == "target")]
            mine = mine.sort_values("start_s")
            assert [r["Annotation"] for r in rows] == list(mine["word"])
            assert [float(r["Begin Time (s)"]) for r in rows] == pytest.approx(mine["start_s"])
            assert [float(r["End Time (s)"]) for r in rows] == pytest.approx(mine["end_s"])
            assert all(r["Begin File"] == wav.name for r in rows)
            assert all(0 <= float(r["Low Freq (Hz)"]) < float(r["High Freq (Hz)"]) for r in rows)
            got = truth[truth["file"] == wav.name]
            assert list(got["label"]) == list(mine["word"])
            assert list(got["start_s"]) == pytest.approx(mine["start_s"])
    # earmark's own readers agree: the truth CSV and the folder of Raven tables
    csv_events = read_truth(field.truth["test"])
    raven_events = read_truth(field.recordings["test"])
    assert [(e.start, e.end, e.label) for e in csv_events] == [
        (e.start, e.end, e.label) for e in raven_events
    ]


def test_field_tables_read_back_through_both_raven_readers(field) -> None:
    """Each table, read by the detection reader and by the annotation reader, gives the same
    spans and labels as the truth CSV, on the recording its ``Begin File`` names."""
    truth = pd.read_csv(field.truth["train"])
    for table in field.tables("train"):
        wav = table.parent / table.name.replace(".Table.1.selections.txt", ".wav")
        want = truth[truth["file"] == wav.name]
        want = [(round(a, 4), round(b, 4), c) for a, b, c in
                zip(want["start_s"], want["end_s"], want["label"], strict=True)]  # fmt: skip
        assert len(want) > 0
        events = read_raven(table)
        assert {e.file for e in events} == {wav.stem}
        assert [(e.start, e.end, e.label) for e in events] == want
        ann = read_table(table).frame
        assert set(ann["recording"]) == {str(wav.resolve())}
        got = list(zip(ann["start_s"], ann["end_s"], ann["label"], strict=True))
        assert got == want
        assert (ann["low_hz"] < ann["high_hz"]).all()


def test_annotations_sit_where_the_words_are_in_the_audio(field, demo_digits: Path) -> None:
    """Each isolated target's voiced part, found again in the mix by cross-correlation with
    every clip of that word, starts where its annotation says (to a millisecond)."""
    manifest = pd.read_csv(demo_digits / "manifest.csv")
    placed = pd.read_csv(field.placements)
    alone = placed[(placed["role"] == "target") & placed["overlaps"].isna()]
    assert len(alone) >= 3
    for ev in alone.head(4).itertuples():
        y, sr = sf.read(field.recordings[ev.split] / ev.file, dtype="float64")
        row = manifest[(manifest["label"] == ev.word) & (manifest["group"] == ev.voice)].iloc[0]
        clip, _ = sf.read(demo_digits / row["filepath"], dtype="float64")
        on = int(np.flatnonzero(np.abs(clip) > 0.1 * np.abs(clip).max())[0])
        lo = max(0, int((ev.start_s - 0.5) * sr) - on)
        seg = y[lo : lo + clip.size + sr]
        corr = np.correlate(seg, clip, mode="valid")
        start = lo + int(np.argmax(corr))
        assert abs((start + on) / sr - ev.start_s) <= 1e-3


def test_targets_overlap_at_times_and_distractors_are_never_annotated(field) -> None:
    placed = pd.read_csv(field.placements)
    targets = placed[placed["role"] == "target"]
    assert set(targets["word"]) <= set(TARGETS)
    pairs = 0
    for split in ("train", "valid", "test"):
        events = read_truth(field.truth[split])
        assert {e.label for e in events} <= set(TARGETS)
        for a in events:
            for b in events:
                if a.file == b.file and a.label < b.label and a.start < b.end and b.start < a.end:
                    pairs += 1
        distractors = placed[(placed["role"] == "distractor") & (placed["split"] == split)]
        assert len(distractors) and not set(distractors["word"]) & set(TARGETS)
        for d in distractors.itertuples():  # no annotation covers a distractor
            assert not [
                e for e in events if e.file == d.file and e.start < d.end_s and d.start_s < e.end
            ]
    assert pairs >= 2 and pairs == (targets["overlaps"].notna().sum()) // 2


def test_voices_of_the_three_splits_are_disjoint(field, demo_digits: Path) -> None:
    placed = pd.read_csv(field.placements)
    voices = {s: set(placed.loc[placed["split"] == s, "voice"]) for s in ("train", "valid", "test")}
    assert all(voices.values())
    assert not voices["test"] & (voices["train"] | voices["valid"])
    assert not voices["train"] & voices["valid"]
    everyone = sorted(set(pd.read_csv(demo_digits / "manifest.csv")["group"]))
    assert max(voices["train"]) < min(voices["test"]) and everyone[-1] not in voices["train"]


def test_the_same_seed_gives_the_same_files(demo_digits: Path, tmp_path: Path) -> None:
    kw = {"n_recordings": (1, 1, 1), "seconds": 8.0}
    a = make_field_scenes(tmp_path / "a", demo_digits, seed=7, **kw)
    b = make_field_scenes(tmp_path / "b", demo_digits, seed=7, **kw)
    c = make_field_scenes(tmp_path / "c", demo_digits, seed=8, **kw)
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert len(files) == 10  # 3 wavs + 3 tables + 3 truth CSVs + placements
    assert sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file()) == files
    assert all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files)
    wav = Path("recordings/test/test00.wav")
    assert (a.root / wav).read_bytes() != (c.root / wav).read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": ("seven", "eleven")}, "no word 'eleven'"),
        ({"targets": ("seven",)}, "at least two distinct target words"),
        ({"distractors": ("seven",)}, "distractors must be words"),
        ({"n_recordings": (1, 0, 1)}, "at least one recording per split"),
        ({"overlap_share": 1.5}, "overlap_share must be in 0..1"),
        ({"snr_db": (10.0, 2.0)}, "(low, high) ranges"),
    ],
)
def test_bad_settings_are_one_line_errors(
    demo_digits: Path, tmp_path: Path, kwargs: dict, message: str
) -> None:
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_field_scenes(tmp_path / "x", demo_digits, **kwargs)


def test_demo_scenes_multi_command(demo_digits: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["demo-scenes", str(tmp_path / "o"), "--digits", str(demo_digits), "--multi"]
    res = runner.invoke(app, [*args, "--splits", "1,1,1", "--seconds", "8", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "wrote 3 recordings (1 train, 1 valid, 1 test)" in res.output
    assert (tmp_path / "o" / "recordings" / "valid" / "valid00.Table.1.selections.txt").exists()
    assert (tmp_path / "o" / "truth" / "test.csv").exists()
    res = runner.invoke(app, [*args, "--splits", "1,1", "--quiet"])
    assert res.exit_code == 2 and "--splits takes three counts" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, [*args, "--targets", "seven,eleven", "--quiet"])
    assert res.exit_code == 1 and "no word 'eleven'" in res.output  # as without --multi
