from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark.classifier import Classifier
from earmark.detection import Windowing
from earmark.detection.events import EventRules
from earmark.detection.run import (
    SettingConflict,
    detect,
    model_fingerprint,
    read_record,
    recording_names,
    resolve_settings,
)
from earmark.detection.tables import read_events, read_raven, read_scores
from earmark.errors import EarmarkError, ParameterError


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
    # other windowing: refused, not silently recomputed
    with pytest.raises(SettingConflict, match=r"hop = 0.25, but .* was made with hop = none"):
        detect(detector, files, out, rules=RULES, resume=True, windowing=Windowing(hop=0.25))
    # a fresh run (no resume) in the same folder may change anything: nothing is reused
    other = detect(detector, files, out, rules=RULES, windowing=Windowing(hop=0.25))
    assert other.resumed == 0 and other.scored == 2


def test_resume_takes_the_run_settings_from_its_record(
    detector: Classifier, folder: Path, tmp_path: Path
) -> None:
    (folder / "site1" / "broken.wav").unlink()
    files = paths(folder)
    out = tmp_path / "det"
    given = {"hop": 0.5, "threshold": 0.3, "merge_gap": 0.5, "background": ["one"]}
    first = detect(detector, files, out, settings=given)
    table = (out / "events.csv").read_text()
    record = read_record(out)
    assert record is not None and record["status"] == "complete"
    assert record["windowing"] == {"window": None, "hop": 0.5, "overlap": None, "last": "pad"}
    assert record["rules"]["threshold"] == 0.3 and record["rules"]["merge_gap"] == 0.5
    assert record["rules"]["background"] == ["one"]
    assert record["model"]["fingerprint"] == model_fingerprint(detector)
    assert (record["files"], record["scored"], record["events"]) == (2, 2, len(first.events))
    assert not any(e.label == "one" for e in first.events)

    # nothing given: the record's settings, every recording reused, the same events
    again = detect(detector, files, out, resume=True)
    assert (again.resumed, again.scored) == (2, 0)
    assert again.events == first.events
    assert read_record(out)["windowing"] == record["windowing"]
    # what is given equal to the record is fine; a difference is refused, naming it
    same = detect(detector, files, out, resume=True, settings={"hop": 0.5, "background": "one"})
    assert same.resumed == 2 and same.events == first.events
    record = read_record(out)
    for setting, value in [("hop", 0.25), ("threshold", 0.5), ("background", []), ("last", "end")]:
        with pytest.raises(SettingConflict, match=f"^{setting} = ") as err:
            detect(detector, files, out, resume=True, settings={setting: value})
        assert err.value.setting == setting
    with pytest.raises(SettingConflict, match="merge_gap"):
        detect(detector, files, out, resume=True, rules=EventRules(threshold=0.3))
    assert read_record(out) == record  # a refused run changes nothing
    assert (out / "events.csv").read_text() == table


def test_a_record_is_written_before_anything_is_scored(
    detector: Classifier, folder: Path, tmp_path: Path
) -> None:
    (folder / "site1" / "broken.wav").unlink()
    out = tmp_path / "det"
    seen = []

    def first_file(path: str, seconds: float) -> None:
        seen.append(read_record(out))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        detect(detector, paths(folder), out, settings={"hop": 0.5}, on_file=first_file)
    assert seen[0]["status"] == "running" and seen[0]["windowing"]["hop"] == 0.5
    resumed = detect(detector, paths(folder), out, resume=True)
    assert (resumed.resumed, resumed.scored) == (1, 1)
    assert read_record(out)["windowing"]["hop"] == 0.5


class Stub:
    """Just what the settings checks read of a model."""

    def __init__(self, model: str = "logreg", classes: tuple[str, ...] = ("a", "b")) -> None:
        self.model, self.classes_ = model, list(classes)
        self.training_ = {"files": 10}


def write_record(out: Path, model: Stub, **settings: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "version": 1,
        "model": {"name": model.model, "fingerprint": model_fingerprint(model)},
        "classes": model.classes_,
        "windowing": Windowing(**settings.pop("windowing", {})).to_dict(),  # type: ignore[arg-type]
        "rules": EventRules(**settings).to_dict(),  # type: ignore[arg-type]
    }
    (out / "detection.json").write_text(json.dumps(record))


def test_resolving_settings_with_and_without_a_record(tmp_path: Path) -> None:
    model = Stub()
    w, r = resolve_settings(model, tmp_path / "none", settings={"hop": 0.5, "threshold": 0.7})
    assert (w.hop, r.threshold) == (0.5, 0.7)
    w, r = resolve_settings(model, tmp_path / "none", resume=True)  # nothing to resume
    assert (w, r) == (Windowing(), EventRules())
    out = tmp_path / "det"
    write_record(out, model, windowing={"hop": 0.5}, threshold=0.7, thresholds={"a": 0.9})
    w, r = resolve_settings(model, out, resume=True)
    assert (w.hop, r.threshold, r.thresholds) == (0.5, 0.7, {"a": 0.9})
    assert resolve_settings(model, out, resume=True, settings={"thresholds": {"a": 0.9}}) == (w, r)
    assert resolve_settings(model, out, settings={"hop": 1.0})[0].hop == 1.0  # not resuming
    with pytest.raises(SettingConflict, match=r"thresholds = \{a: 0.8\}"):
        resolve_settings(model, out, resume=True, settings={"thresholds": {"a": 0.8}})
    with pytest.raises(SettingConflict, match=r"overlap = 0\.5"):
        resolve_settings(model, out, resume=True, settings={"overlap": 0.5})
    with pytest.raises(ParameterError, match="was made with another model"):
        resolve_settings(Stub("svm"), out, resume=True)
    with pytest.raises(ParameterError, match="unknown detection settings colour"):
        resolve_settings(model, out, settings={"colour": 1})
    with pytest.raises(ParameterError, match="hop must be a finite number"):
        resolve_settings(model, out, resume=True, settings={"hop": float("nan")})
    (out / "detection.json").write_text("{not json")
    with pytest.raises(ParameterError, match="not the settings record of a detection run"):
        resolve_settings(model, out, resume=True)


def test_a_recording_given_twice_is_detected_once(
    detector: Classifier, folder: Path, tmp_path: Path
) -> None:
    (folder / "site1" / "broken.wav").unlink()
    b = folder / "b.wav"
    twice = [str(b), str(folder / "site1" / "a.wav"), str(folder / "site1" / ".." / "b.wav")]
    summary = detect(detector, twice, tmp_path / "det", rules=RULES)
    assert (summary.files, summary.scored) == (2, 2)
    events = read_events(tmp_path / "det" / "events.csv")
    assert len(events) == len(summary.events)
    assert {e.file for e in events} <= {str(b), str(folder / "site1" / "a.wav")}
    counts = (tmp_path / "det" / "counts.csv").read_text().splitlines()
    assert len(counts) == 1 + 2 * 10


def test_a_second_run_into_a_folder_in_use_is_refused(
    detector: Classifier, folder: Path, tmp_path: Path
) -> None:
    """While one run writes into a folder, another (here started from the first's progress
    callback: another lock holder, as another process would be) is refused at once; the
    first finishes as if alone, and the folder is free again afterwards."""
    (folder / "site1" / "broken.wav").unlink()
    out = tmp_path / "det"
    refused: list[str] = []

    def second(path: str, seconds: float) -> None:
        if refused:
            return
        with pytest.raises(EarmarkError) as err:
            detect(detector, [path], out, rules=EventRules(threshold=0.9))
        refused.append(str(err.value))

    summary = detect(detector, paths(folder), out, rules=RULES, on_file=second)
    assert refused == [f"{out}: another earmark detect is writing into it"]
    assert summary.scored == 2 and read_record(out)["rules"]["threshold"] == 0.3
    alone = detect(detector, paths(folder), tmp_path / "alone", rules=RULES)
    assert read_events(out / "events.csv") == read_events(tmp_path / "alone" / "events.csv")
    assert alone.scored == 2
    detect(detector, paths(folder), out, rules=RULES, resume=True)  # free again


def test_recording_names_are_unique_and_safe() -> None:
    names = recording_names(["/d/x/a.wav", "/d/y/a.wav", "/d/y/a.flac", "/d/y/b c.wav"])
    assert names == ["x__a", "y__a", "y__a~2", "y__b_c"]


def test_a_model_keeps_its_fingerprint_through_save_and_load(tmp_path: Path) -> None:
    from earmark import data, load
    from earmark.audio import AudioConfig

    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    for label, k in [(lab, k) for lab in ("tone", "noise") for k in range(8)]:
        y = 0.05 * rng.standard_normal(16_000)
        if label == "tone":
            y += 0.3 * np.sin(2 * np.pi * rng.uniform(900, 1100) * t)
        (tmp_path / "train" / label).mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "train" / label / f"{k}.wav", y.astype(np.float32), 16_000)
    train = data.load(tmp_path / "train")
    clf = Classifier("logreg", features="logmel", audio=AudioConfig(duration=1.0)).fit(train)
    again = load(clf.save(tmp_path / "run"))
    assert model_fingerprint(again) == model_fingerprint(clf)
    other = Classifier(
        "logreg", features="logmel", audio=AudioConfig(duration=1.0), params={"C": 0.01}
    ).fit(train)
    assert model_fingerprint(other) != model_fingerprint(clf)
