from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from earmark.classifier import Classifier
from earmark.detection import Windowing
from earmark.detection.events import EventRules
from earmark.detection.run import detect, recording_names
from earmark.detection.tables import read_events, read_raven, read_scores


@pytest.fixture
def folder(recording: Path, broken_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "recordings"
    (root / "site1").mkdir(parents=True)
    shutil.copy(recording, root / "site1" / "a.wav")
    shutil.copy(recording, root / "b.wav")
    shutil.copy(broken_dir / "cut.wav", root / "site1" / "broken.wav")
    return root


def paths(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.wav"))


RULES = EventRules(threshold=0.3)  # a small model: mechanics, not accuracy


def test_a_folder_with_a_corrupt_file_is_analysed_and_the_file_listed(
    detector: Classifier, folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "det"
    summary = detect(detector, paths(folder), out, rules=RULES, windowing=Windowing(hop=0.5))
    assert (summary.files, summary.scored, summary.failed) == (3, 2, 1)
    assert summary.partial and "broken.wav" in (out / "errors.csv").read_text()
    assert summary.audio_seconds == pytest.approx(40.0)
    events = read_events(out / "events.csv")
    assert events and {e.file for e in events} <= set(paths(folder))
    assert sorted(p.name for p in (out / "tables").iterdir()) == [
        "b.labels.txt",
        "b.selections.txt",
        "site1__a.labels.txt",
        "site1__a.selections.txt",
    ]
    per_file = read_raven(out / "tables" / "b.selections.txt")
    assert len(per_file) == sum(e.file.endswith("b.wav") for e in events)
    assert len(read_scores(out / "scores.parquet")) == 2 * 39
    counts = (out / "counts.csv").read_text().splitlines()
    assert counts[0] == "file,label,n" and len(counts) == 1 + 2 * 10


def test_resume_after_a_kill_reuses_finished_recordings(
    detector: Classifier, folder: Path, tmp_path: Path
) -> None:
    (folder / "site1" / "broken.wav").unlink()
    files = paths(folder)
    full = detect(detector, files, tmp_path / "full", rules=RULES)

    def kill_after_first(path: str, seconds: float) -> None:
        raise KeyboardInterrupt  # what Ctrl-C or a kill leaves: the first part is written

    out = tmp_path / "det"
    with pytest.raises(KeyboardInterrupt):
        detect(detector, files, out, rules=RULES, on_file=kill_after_first)
    assert len(list((out / "parts").glob("*.npz"))) == 1
    assert not list((out / "parts").glob(".*"))  # no half-written part
    again = detect(detector, files, out, rules=RULES, resume=True)
    assert (again.resumed, again.scored) == (1, 1)
    assert read_events(out / "events.csv") == read_events(tmp_path / "full" / "events.csv")
    assert len(full.events) == len(again.events)
    # other windowing: nothing can be reused
    other = detect(detector, files, out, rules=RULES, resume=True, windowing=Windowing(hop=0.25))
    assert other.resumed == 0 and other.scored == 2


def test_recording_names_are_unique_and_safe() -> None:
    names = recording_names(["/d/x/a.wav", "/d/y/a.wav", "/d/y/a.flac", "/d/y/b c.wav"])
    assert names == ["x__a", "y__a", "y__a~2", "y__b_c"]
