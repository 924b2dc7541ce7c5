"""`earmark reviews add / list / delete / export`, `earmark train --reviews` and the review
flags of `earmark serve`: parse, call, print; a wrong value is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, tone
from typer.testing import CliRunner

from earmark.cli import app
from earmark.detection.events import Event, EventRules
from earmark.detection.tables import write_events_csv
from earmark.detection.windows import Windowing


def _noise(seconds: float, seed: int) -> np.ndarray:
    return (0.01 * np.random.default_rng(seed).standard_normal(round(seconds * SR))).astype(
        np.float32
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A detection run's folder as `earmark detect` leaves it: events naming their recording
    relative to where it ran (tmp_path), the settings record beside them."""
    rec = tmp_path / "recordings" / "scene.wav"
    rec.parent.mkdir()
    y = _noise(6.0, 0)
    y[SR : 2 * SR] += tone(440.0, 1.0)
    sf.write(rec, y, SR)
    out = tmp_path / "detections"
    out.mkdir()
    events = [
        Event("recordings/scene.wav", 1.0, 2.0, "tone", 0.97),
        Event("recordings/scene.wav", 3.5, 4.25, "tone", 0.61),
    ]
    write_events_csv(out / "events.csv", events)
    record = {
        "version": 1,
        "status": "complete",
        "model": {"name": "logreg", "family": "classical", "fingerprint": "0123456789abcdef"},
        "classes": ["background", "tone"],
        "windowing": Windowing(hop=0.25).to_dict(),
        "rules": EventRules(threshold=0.5).to_dict(),
    }
    (out / "detection.json").write_text(json.dumps(record))
    return out


def _cli(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def _says(text: str, said: str) -> bool:
    """Whether ``said`` holds ``text``, rich's panel borders and line wrapping set aside (a
    long temporary path wraps the message at a different place on each machine)."""
    squeeze = str.maketrans("", "", "\u2502 \n")
    return text.translate(squeeze) in said.translate(squeeze)


def test_add_events_list_and_delete(run_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    res = _cli("reviews", "add", db, "--events", run_dir / "events.csv", "--row", "1",
               "--verdict", "correct", "--reviewer", "ann")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1: correct: tone at scene.wav 1-2 s" in res.stdout
    res = _cli("reviews", "add", db, "--events", run_dir, "--row", "2", "--verdict", "wrong",
               "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    (made,) = json.loads(res.stdout)["reviews"]
    assert made["path"] == str((tmp_path / "recordings" / "scene.wav").resolve())
    assert made["model"] == "logreg" and made["score"] == 0.61
    assert made["settings"]["windowing"]["hop"] == 0.25 and made["settings"]["row"] == 2
    assert made["settings"]["model_fingerprint"] == "0123456789abcdef"
    res = _cli("reviews", "add", db, "--file", tmp_path / "recordings" / "scene.wav",
               "--start", "5", "--end", "6", "--verdict", "relabel", "--label", "tone",
               "--new-label", "background", "--source", "search")  # fmt: skip
    assert res.exit_code == 0, res.output
    listed = json.loads(_cli("reviews", "list", db, "--json").stdout)
    assert listed["total"] == 3 and [r["id"] for r in listed["reviews"]] == [3, 2, 1]
    table = _cli("reviews", "list", db)
    assert table.exit_code == 0 and "relabel -> background" in table.stdout
    only = json.loads(_cli("reviews", "list", db, "--json", "--source", "search").stdout)
    assert only["total"] == 1
    assert _cli("reviews", "delete", db, "3").exit_code == 0
    res = _cli("reviews", "delete", db, "3")
    assert res.exit_code == 1 and "no review 3" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--verdict", "correct"], "give --events (with --row) or --file"),
        (["--verdict", "maybe", "--events", "EV", "--row", "1"], "verdict must be one of"),
        (["--verdict", "correct", "--events", "EV", "--row", "9"], "no event 9 (it has 2"),
        (["--verdict", "correct", "--events", "EV"], "name the events to review"),
        (["--verdict", "relabel", "--events", "EV", "--row", "1"], "needs new_label"),
        (["--verdict", "correct", "--events", "EV", "--row", "1", "--start", "1"], "go with"),
        (["--verdict", "correct", "--file", "REC", "--start", "1"], "needs --start and --end"),
        (
            [
                "--verdict",
                "correct",
                "--file",
                "REC",
                "--start",
                "9",
                "--end",
                "10",
                "--label",
                "tone",
            ],
            "starts past its end",
        ),
        (
            [
                "--verdict",
                "correct",
                "--file",
                "REC",
                "--start",
                "nan",
                "--end",
                "1",
                "--label",
                "tone",
            ],
            "finite",
        ),
        (
            [
                "--verdict",
                "correct",
                "--file",
                "nowhere.wav",
                "--start",
                "1",
                "--end",
                "2",
                "--label",
                "tone",
            ],
            "no such file",
        ),
    ],
)
def test_add_refuses_bad_options_with_one_line(
    run_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    rec = tmp_path / "recordings" / "scene.wav"
    args = [str(run_dir / "events.csv") if a == "EV" else str(rec) if a == "REC" else a
            for a in args]  # fmt: skip
    res = _cli("reviews", "add", tmp_path / "r.sqlite", *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr.replace("\n", " ")
    assert "Traceback" not in res.output


def test_a_recording_that_cannot_be_found_names_the_option(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "recordings" / "scene.wav").rename(tmp_path / "scene.wav")
    args = ["--events", run_dir / "events.csv", "--row", "1", "--verdict", "correct"]
    res = _cli("reviews", "add", tmp_path / "r.sqlite", *args)
    assert res.exit_code == 2 and "give --recordings DIR" in res.stderr
    res = _cli("reviews", "add", tmp_path / "r.sqlite", *args, "--recordings", tmp_path)
    assert res.exit_code == 0, res.output


def _reviewed(run_dir: Path, tmp_path: Path) -> Path:
    db = tmp_path / "r.sqlite"
    for row, verdict in (("1", "correct"), ("2", "wrong")):
        res = _cli("reviews", "add", db, "--events", run_dir, "--row", row, "--verdict", verdict)
        assert res.exit_code == 0, res.output
    return db


def test_export_writes_tables_the_annotation_reader_takes_back(
    run_dir: Path, tmp_path: Path
) -> None:
    from earmark.data.annotations import read_annotations
    from earmark.data.segments import load_windows

    db = _reviewed(run_dir, tmp_path)
    rec = str((tmp_path / "recordings" / "scene.wav").resolve())
    res = _cli("reviews", "export", db, "--out", tmp_path / "t.csv")
    assert res.exit_code == 0, res.output
    assert "2 rows (background 1, tone 1)" in res.stdout
    for table in ("t.csv", "t.txt"):
        if table == "t.txt":
            assert _cli("reviews", "export", db, "--out", tmp_path / table).exit_code == 0
        ann = read_annotations(tmp_path / table).frame
        got = sorted(zip(ann["recording"], ann["start_s"], ann["end_s"], ann["label"],
                         strict=True))  # fmt: skip
        assert got == [(rec, 1.0, 2.0, "tone"), (rec, 3.5, 4.25, "background")]
    # the Raven export also reads back through the detection reader, on the same recording
    from earmark.detection.tables import read_raven

    assert [(e.file, e.start, e.end, e.label) for e in read_raven(tmp_path / "t.txt")] == [
        ("scene", 1.0, 2.0, "tone"),
        ("scene", 3.5, 4.25, "background"),
    ]
    header, first, _ = (tmp_path / "t.txt").read_text().splitlines()
    assert header.split("\t")[-3:] == ["Begin Path", "Begin File", "Annotation"]
    assert first.split("\t")[5:9] == ["0.0", "8000.0", rec, "scene.wav"]
    # the hard negatives train as the background class (`earmark train t.csv --annotations`)
    windows = load_windows(tmp_path / "t.csv", window_s=0.5)
    assert set(windows.classes) == {"background", "tone"}
    res = _cli("reviews", "export", db, "--out", tmp_path / "t.csv")
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    res = _cli("reviews", "export", db, "--out", tmp_path / "t.csv", "--overwrite",
               "--negative-label", "noise")  # fmt: skip
    assert res.exit_code == 0 and "noise 1" in res.stdout
    for args, message in (
        (["--out", tmp_path / "t.json"], "name a .csv"),
        (["--out", tmp_path / "r.csv", "--format", "raven"], "name it *.txt"),
        (["--out", tmp_path / "r.csv", "--format", "xml"], "unknown table format"),
        (["--out", tmp_path / "r.csv", "--negative-label", "a;b"], "must be a class name"),
    ):
        res = _cli("reviews", "export", db, *args)
        assert res.exit_code == 2 and message in res.stderr, res.output
    res = _cli("reviews", "export", tmp_path / "none.sqlite", "--out", tmp_path / "x.csv")
    assert res.exit_code == 2 and _says("no such reviews database", res.stderr)


def test_train_adds_the_reviewed_windows(run_dir: Path, tmp_path: Path) -> None:
    db = _reviewed(run_dir, tmp_path)
    data = tmp_path / "data"
    for i in range(6):
        for name, y in (("tone", tone(440.0 + 10 * i, 1.0) + _noise(1.0, i)),
                        ("background", _noise(1.0, 50 + i))):  # fmt: skip
            (data / name).mkdir(parents=True, exist_ok=True)
            sf.write(data / name / f"{i}.wav", y, SR)
    args = ["train", data, "--model", "logreg", "--features", "mfcc", "--duration", "1",
            "--quiet"]  # fmt: skip
    res = _cli(*args, "--out", tmp_path / "run", "--reviews", db, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["reviews"] == {"windows": 2, "positives": 1, "negatives": 1, "skipped": {}}
    res = _cli(*args[:-1], "--out", tmp_path / "run3", "--reviews", db, "--negative-label",
               "noise")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1 positive and 0 hard-negative windows" in res.stdout
    assert "1 reviewed spans left out: single-label data without the negative" in res.stdout
    res = _cli(*args, "--out", tmp_path / "run4", "--negative-label", "noise")
    assert res.exit_code == 2 and "goes with --reviews" in res.stderr
    res = _cli(*args, "--out", tmp_path / "run5", "--reviews", tmp_path / "nope.sqlite")
    assert res.exit_code == 2 and _says("no such reviews database", res.stderr)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict]:
    """What `earmark serve` would serve, from ``tmp_path`` (the server is not started)."""
    import gc

    import earmark.serve

    monkeypatch.chdir(tmp_path)
    calls: list[dict] = []
    monkeypatch.setattr(earmark.serve, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    yield calls
    gc.unfreeze()  # (serve freezes what it loaded: undone for the rest of the tests)


@pytest.fixture
def small_run(tmp_path: Path) -> Path:
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier
    from earmark.data.manifest import Manifest

    paths = []
    for i in range(4):
        for name, y in (("tone", tone(440.0, 1.0)), ("background", _noise(1.0, i))):
            paths.append((tmp_path / "clips" / f"{name}{i}.wav", name))
            paths[-1][0].parent.mkdir(exist_ok=True)
            sf.write(paths[-1][0], y, SR)
    m = Manifest.from_records([str(p) for p, _ in paths], [n for _, n in paths])
    clf = Classifier("logreg", features="mfcc", audio=AudioConfig(duration=1.0)).fit(m)
    return clf.save(tmp_path / "run")


def test_serve_keeps_reviews_by_default_and_says_where(
    small_run: Path, served: list[dict], tmp_path: Path
) -> None:
    from earmark.review.store import artifact_sha256

    res = _cli("serve", small_run)
    assert res.exit_code == 0, res.output
    assert "reviews: saved to reviews.sqlite" in res.stdout and "reviews-audio" in res.stdout
    state = served[0]["app"].state
    assert state.reviews.path == Path("reviews.sqlite") and (tmp_path / "reviews.sqlite").exists()
    assert state.recordings.keep_dir == Path("reviews-audio")
    from fastapi.testclient import TestClient

    client = TestClient(served[0]["app"])
    assert client.get("/v1/model").json()["reviews"] is True
    rid = state.recordings.add_file(tmp_path / "clips" / "tone0.wav")
    item = {"recording": rid, "start_s": 0.0, "end_s": 1.0, "label": "tone", "score": 0.9,
            "source": "prediction", "verdict": "correct"}  # fmt: skip
    res = client.post("/v1/reviews", json=item)
    assert res.status_code == 201, res.text
    review = res.json()["review"]
    assert review["model"] == "run" and review["model_sha256"] == artifact_sha256(small_run)


def test_serve_review_flags(small_run: Path, served: list[dict], tmp_path: Path) -> None:
    res = _cli("serve", small_run, "--no-reviews", "--quiet")
    assert res.exit_code == 0 and served[-1]["app"].state.reviews is None
    assert not (tmp_path / "reviews.sqlite").exists()
    res = _cli("serve", small_run, "--reviews", tmp_path / "db" / "mine.sqlite", "--quiet")
    assert res.exit_code == 0 and (tmp_path / "db" / "mine-audio").is_dir()
    res = _cli("serve", small_run, "--reviews", "x.sqlite", "--no-reviews")
    assert res.exit_code == 2 and "choose one of" in res.stderr
    table = tmp_path / "s.csv"
    table.write_text(
        "file,start_s,end_s,label,score,uncertainty\n"
        "clips/tone0.wav,0,1,tone,0.5,0.99\nclips/gone.wav,0,1,tone,0.5,0.9\n"
    )
    res = _cli("serve", small_run, "--suggestions", table)
    assert res.exit_code == 0, res.output
    assert "suggestions: 1 windows to review" in res.stdout
    assert "1 suggestions left out" in res.stderr and "line 3: clips/gone.wav" in res.stderr
    assert len(served[-1]["app"].state.suggestions) == 1
    table.write_text("file,start_s\n")
    res = _cli("serve", small_run, "--suggestions", table)
    assert res.exit_code == 1 and "not a suggestion list" in res.stderr
