"""The review store: rows, the verdict that counts, migrations, and writers at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from earmark.errors import EarmarkError, ParameterError
from earmark.review.store import SCHEMA_VERSION, Review, ReviewStore, artifact_sha256


def _review(path: Path | str = "/data/a.wav", **kw) -> Review:
    fields = {
        "recording": "f0123456789abcdef",
        "path": str(path),
        "name": "a.wav",
        "start_s": 1.0,
        "end_s": 2.0,
        "label": "seven",
        "verdict": "correct",
    }
    return Review(**(fields | kw))


def test_rows_round_trip_with_model_settings_and_time(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "r.sqlite")
    assert store.version == SCHEMA_VERSION and store.journal_mode == "wal"
    r = store.add(
        _review(
            score=0.91,
            source="suggestion",
            reviewer="ann",
            model="cnn",
            model_sha256="ab" * 32,
            settings={"window": 1.0, "hop": 0.25, "threshold": 0.5, "calibrated": True},
            start_s=1.00000004,
        )
    )
    assert r.id == 1 and r.created_at.endswith("Z") and r.start_s == 1.0
    again = ReviewStore(tmp_path / "r.sqlite").get(r.id)
    assert again == r
    assert again.settings["hop"] == 0.25 and again.model_sha256 == "ab" * 32
    assert "path" not in r.to_dict() and r.to_dict(with_path=True)["path"] == "/data/a.wav"
    assert store.get(99) is None


def test_list_filters_and_pages_newest_first(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "r.sqlite")
    for i in range(7):
        src = "search" if i % 2 else "detection"
        store.add(_review(recording=f"f{i:016x}", start_s=float(i), end_s=i + 1.0, source=src))
    rows, total = store.list(limit=3)
    assert total == 7 and [r.id for r in rows] == [7, 6, 5]
    rows, total = store.list(limit=3, offset=6)
    assert total == 7 and [r.id for r in rows] == [1]
    rows, total = store.list(source="search")
    assert total == 3 and {r.source for r in rows} == {"search"}
    rows, total = store.list(recording=f"f{4:016x}")
    assert total == 1 and rows[0].start_s == 4.0
    with pytest.raises(ParameterError, match="limit"):
        store.list(limit=0)
    with pytest.raises(ParameterError, match="source"):
        store.list(source="bogus")


def test_a_later_review_supersedes_and_undo_restores_the_earlier(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "r.sqlite")
    first = store.add(_review(verdict="correct"))
    other = store.add(_review(label="two", verdict="wrong"))  # another item: another label
    second = store.add(_review(verdict="relabel", new_label="one"))
    latest = {r.label: r for r in store.latest()}
    assert latest["seven"].id == second.id and latest["seven"].target == "one"
    assert latest["two"].id == other.id and latest["two"].target is None
    assert store.list(latest=True)[1] == 2 and len(store) == 3
    assert store.delete(second.id) and not store.delete(second.id)
    assert {r.label: r.id for r in store.latest()}["seven"] == first.id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "maybe"}, "verdict must be one of"),
        ({"verdict": "relabel"}, "needs new_label"),
        ({"verdict": "relabel", "new_label": "seven"}, "is the label itself"),
        ({"new_label": "one"}, "goes with the verdict relabel"),
        ({"label": None}, "needs the item's label"),
        ({"start_s": 2.0}, "must be after"),
        ({"start_s": float("nan")}, "finite"),
        ({"start_s": -1.0}, ">= 0"),
        ({"source": "email"}, "source must be"),
        ({"label": "a;b"}, "holds ';'"),
        ({"score": float("inf")}, "finite"),
        ({"settings": {"x": float("nan")}}, "plain JSON"),
        ({"settings": {"x": "y" * 9000}}, "over 8192"),
        ({"reviewer": "r" * 300}, "over 200"),
    ],
)
def test_bad_reviews_are_refused_with_one_line(tmp_path: Path, change: dict, message: str) -> None:
    store = ReviewStore(tmp_path / "r.sqlite")
    with pytest.raises(ParameterError, match=message):
        store.add(_review(**change))
    assert len(store) == 0


# The schema as version 1 wrote it: a frozen copy, not MIGRATIONS[0] (a file on a user's
# disk does not change when the code does).
V1_SCHEMA = """CREATE TABLE reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recording TEXT NOT NULL, path TEXT NOT NULL,
    name TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL, label TEXT,
    verdict TEXT NOT NULL CHECK (verdict IN ('correct', 'wrong', 'relabel')), new_label TEXT,
    score REAL, source TEXT NOT NULL, reviewer TEXT, model TEXT, model_sha256 TEXT,
    settings TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL)"""


def test_a_version_1_database_is_migrated_with_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(db)
    conn.execute(V1_SCHEMA)
    conn.execute(
        "INSERT INTO reviews (recording, path, name, start_s, end_s, label, verdict, source, "
        "settings, created_at) VALUES ('f0123456789abcdef', '/x/a.wav', 'a.wav', 0.5, 1.5, "
        "'seven', 'wrong', 'detection', '{\"hop\": 0.25}', '2025-01-01T00:00:00.000Z')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = ReviewStore(db)
    assert store.version == SCHEMA_VERSION > 1
    (row,) = store.latest()
    assert (row.id, row.verdict, row.settings, row.path) == (1, "wrong", {"hop": 0.25}, "/x/a.wav")
    indexes = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "reviews_item" in indexes
    assert store.add(_review()).id == 2


def test_files_that_are_not_this_store_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(EarmarkError, match="newer earmark"):
        ReviewStore(newer)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE birds (x)")
    conn.close()
    with pytest.raises(EarmarkError, match="not a reviews database"):
        ReviewStore(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(EarmarkError, match="not a reviews database"):
        ReviewStore(junk)
    with pytest.raises(EarmarkError, match="is a folder"):
        ReviewStore(tmp_path)


def test_audio_beside_the_database_is_stored_relative_to_it(tmp_path: Path) -> None:
    kept = tmp_path / "db" / "r-audio" / "abc.wav"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"")
    store = ReviewStore(tmp_path / "db" / "r.sqlite")
    store.add(_review(path=kept))
    store.close()
    raw = sqlite3.connect(tmp_path / "db" / "r.sqlite").execute("SELECT path FROM reviews")
    assert raw.fetchone()[0] == "r-audio/abc.wav"
    (tmp_path / "db").rename(tmp_path / "moved")
    (row,) = ReviewStore(tmp_path / "moved" / "r.sqlite").latest()
    assert Path(row.path) == (tmp_path / "moved" / "r-audio" / "abc.wav").resolve()


WRITER = """
import sys
from earmark.review.store import Review, ReviewStore
store = ReviewStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    store.add(Review("f0123456789abcdef", "/x/a.wav", "a.wav", float(i), i + 1.0, "p",
                     "correct", source="search"))
print("done")
"""


def test_threads_and_another_process_write_at_once_without_loss(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    n_threads, per_thread, per_process = 8, 40, 150
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(per_process)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = ReviewStore(db)
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def write(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                store.add(_review(start_s=float(i), end_s=i + 1.0, label=f"t{t}"))
                if i % 10 == 0:
                    store.list(limit=5)  # readers alongside the writers
        except BaseException as exc:  # collected: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "done", err
    assert errors == []
    assert len(store) == n_threads * per_thread + per_process
    assert store.list(source="search")[1] == per_process
    ids = [r.id for r in store.list(limit=None)[0]]
    assert len(set(ids)) == len(ids)


def test_artifact_sha256_names_the_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "earmark.json").write_text('{"a": 1}')
    digest = artifact_sha256(run)
    assert len(digest) == 64 and digest == artifact_sha256(run / "earmark.json")
    (run / "earmark.json").write_text('{"a": 2}')
    assert artifact_sha256(run) != digest
    with pytest.raises(EarmarkError, match="cannot read"):
        artifact_sha256(tmp_path / "missing")
