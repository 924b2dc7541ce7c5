"""Reviews of detections, predictions, search hits and suggestions, kept in SQLite.

A review says of one *item* (a span ``[start_s, end_s)`` of a recording, the label a model
gave it) that the label is ``correct``, ``wrong``, or should be ``new_label`` (``relabel``),
with who said so, the model (name and artifact SHA-256) and the settings (window, hop,
threshold, calibration...) the item came from, and when (UTC). A later review of the same
item (same recording, span and label) supersedes an earlier one: :meth:`ReviewStore.latest`
gives the verdict that counts, and deleting a review (undo) brings the one before it back.

The database (stdlib :mod:`sqlite3`):

- **WAL journal** (readers never wait for a writer), ``synchronous=NORMAL`` (a commit is
  durable once the WAL is synced at checkpoints: a power cut may lose the last reviews, never
  corrupt the file), a ``busy_timeout`` so a writer waits for another instead of failing,
  and every write in ``BEGIN IMMEDIATE`` (the write lock taken up front: two transactions
  never both read, then both try to upgrade and one fail with "database is locked").
- **One connection per thread** (a :class:`threading.local`): the server's worker threads
  read at once, writes are serialised by SQLite itself, across processes too.
- **A versioned schema**: ``PRAGMA user_version`` is the version, :data:`MIGRATIONS` the
  ordered steps from each version to the next, applied in one write transaction when a store
  opens (so two processes opening an old file at once migrate it once). A file from a newer
  earmark is refused rather than guessed at.

Paths: ``path`` is the audio file on this machine (reviews are for retraining: the audio
must be found again). A file inside the database's folder (the server's kept uploads,
``<db-stem>-audio/``) is stored relative to it, so the database and its audio can be moved
together. ``recording`` is the :class:`earmark.serve.Recordings` id clients know the file
by, ``name`` what they are shown; the server never sends ``path`` to a client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from earmark.errors import EarmarkError, ParameterError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SOURCES",
    "VERDICTS",
    "Review",
    "ReviewStore",
    "artifact_sha256",
    "opened",
]

VERDICTS = ("correct", "wrong", "relabel")
#: Where a reviewed item came from (what the page, the API and the CLI review).
SOURCES = ("detection", "prediction", "search", "suggestion")
#: Longest label, name, reviewer or model text accepted (a label is a class name).
MAX_TEXT = 200
#: Largest settings record (JSON characters): settings, not data.
MAX_SETTINGS = 8192
#: Digits the times of a span are rounded to (0.1 ms): the same span reviewed twice is the
#: same item, whatever float noise the client adds.
TIME_DIGITS = 4

#: The schema, as ordered steps: ``MIGRATIONS[v]`` takes a database from version ``v`` to
#: ``v + 1``. Never edit a step that has shipped: add one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the reviews table
    (
        """CREATE TABLE reviews (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            recording TEXT NOT NULL,
            path TEXT NOT NULL,
            name TEXT NOT NULL,
            start_s REAL NOT NULL,
            end_s REAL NOT NULL,
            label TEXT,
            verdict TEXT NOT NULL CHECK (verdict IN ('correct', 'wrong', 'relabel')),
            new_label TEXT,
            score REAL,
            source TEXT NOT NULL,
            reviewer TEXT,
            model TEXT,
            model_sha256 TEXT,
            settings TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        )""",
    ),
    # 2: indexes: the latest review of an item, and lists by recording / source
    (
        "CREATE INDEX reviews_item ON reviews (recording, start_s, end_s, label, id)",
        "CREATE INDEX reviews_source ON reviews (source, id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "id",
    "recording",
    "path",
    "name",
    "start_s",
    "end_s",
    "label",
    "verdict",
    "new_label",
    "score",
    "source",
    "reviewer",
    "model",
    "model_sha256",
    "settings",
    "created_at",
)


def _text(what: str, value: object, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise ParameterError(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise ParameterError(f"{what} must be text, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ParameterError(f"{what} must not be empty")
    if len(value) > MAX_TEXT:
        raise ParameterError(f"{what} is over {MAX_TEXT} characters")
    return value


def _seconds(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ParameterError(f"{what} must be a finite number >= 0, got {value!r}")
    return round(float(value), TIME_DIGITS)


@dataclass
class Review:
    """One review (see the module doc). ``id`` and ``created_at`` are given by the store.

    :meth:`checked` validates and normalises it (a one-line :class:`ParameterError` for a
    bad verdict, a relabel without ``new_label``, a span that is not ``0 <= start < end``,
    an unknown source, a label holding ``;``, settings that are not a small JSON object)."""

    recording: str
    path: str
    name: str
    start_s: float
    end_s: float
    label: str | None
    verdict: str
    new_label: str | None = None
    score: float | None = None
    source: str = "detection"
    reviewer: str | None = None
    model: str | None = None
    model_sha256: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    created_at: str | None = None

    def checked(self) -> Review:
        """A validated, normalised copy (times rounded to 0.1 ms, texts stripped)."""
        verdict = self.verdict
        if verdict not in VERDICTS:
            raise ParameterError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        if self.source not in SOURCES:
            raise ParameterError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        label = _text("label", self.label)
        new_label = _text("new_label", self.new_label)
        if verdict == "relabel":
            if new_label is None:
                raise ParameterError("a relabel needs new_label (the right class)")
            if new_label == label:
                raise ParameterError(f"new_label {new_label!r} is the label itself: use correct")
        elif new_label is not None:
            raise ParameterError(f"new_label goes with the verdict relabel, not {verdict}")
        if verdict in ("correct", "wrong") and label is None:
            raise ParameterError(f"a review saying {verdict} needs the item's label")
        for what, text in (("label", label), ("new_label", new_label)):
            if text is not None and ";" in text:
                raise ParameterError(f"{what} {text!r} holds ';' (it joins several classes)")
        start = _seconds("start_s", self.start_s)
        end = _seconds("end_s", self.end_s)
        if end <= start:
            raise ParameterError(f"end_s {end:g} must be after start_s {start:g}")
        score = self.score
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise ParameterError(f"score must be a number, got {score!r}")
            if not math.isfinite(score):
                raise ParameterError(f"score must be finite, got {score!r}")
            score = float(score)
        settings = self.settings if self.settings is not None else {}
        if not isinstance(settings, Mapping):
            raise ParameterError("settings must be a JSON object")
        try:
            text = json.dumps(dict(settings), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            raise ParameterError("settings must be plain JSON (no NaN, no objects)") from None
        if len(text) > MAX_SETTINGS:
            raise ParameterError(f"settings are over {MAX_SETTINGS} characters of JSON")
        return dataclasses.replace(
            self,
            recording=_text("recording", self.recording, required=True),  # type: ignore[arg-type]
            path=_text_path(self.path),
            name=_text("name", self.name, required=True),  # type: ignore[arg-type]
            start_s=start,
            end_s=end,
            label=label,
            new_label=new_label,
            score=score,
            reviewer=_text("reviewer", self.reviewer),
            model=_text("model", self.model),
            model_sha256=_text("model_sha256", self.model_sha256),
            settings=json.loads(text),
        )

    @property
    def target(self) -> str | None:
        """The class the reviewer says the span holds: the label (correct), the new label
        (relabel), ``None`` for wrong."""
        if self.verdict == "correct":
            return self.label
        if self.verdict == "relabel":
            return self.new_label
        return None

    def to_dict(self, *, with_path: bool = False) -> dict[str, Any]:
        """The review as JSON (what the API answers; ``path`` only ``with_path``: the
        server's own paths never reach a client)."""
        out = dataclasses.asdict(self)
        if not with_path:
            out.pop("path")
        return out


def _text_path(path: object) -> str:
    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise ParameterError("a review needs the path of its audio file")
    return str(path)


def artifact_sha256(run: str | Path) -> str:
    """The SHA-256 that names a trained model: of an artifact directory's ``earmark.json``
    (which lists the SHA-256 of every weight file, so it pins the weights too), or of a
    single-file model (``.onnx``)."""
    from earmark.artifact import META_FILE

    path = Path(run)
    target = path / META_FILE if path.is_dir() else path
    digest = hashlib.sha256()
    try:
        with target.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise EarmarkError(f"{target}: cannot read ({exc.strerror})") from None
    return digest.hexdigest()


@contextlib.contextmanager
def opened(reviews: ReviewStore | str | Path) -> Iterator[ReviewStore]:
    """``reviews`` as a store: a :class:`ReviewStore` as it is, or the database file at a
    path (which must exist: reading a mistyped path must not create an empty database),
    closed at the end of the block."""
    if isinstance(reviews, ReviewStore):
        yield reviews
        return
    path = Path(reviews)
    if not path.is_file():
        raise ParameterError(f"{path}: no such reviews database")
    store = ReviewStore(path)
    try:
        yield store
    finally:
        store.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class ReviewStore:
    """The reviews in the SQLite file ``path`` (created with its folder when missing).

    Thread-safe (a connection per thread) and safe across processes (SQLite's locks, a
    ``timeout`` in seconds to wait for another writer). :meth:`close` closes every
    connection it opened (call it only when no other thread is using the store). Usable as
    a context manager."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ParameterError(f"timeout must be a finite number > 0, got {timeout!r}")
        self.path = Path(path)
        self.timeout = float(timeout)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise EarmarkError(f"{self.path}: is a folder, not a reviews database")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EarmarkError(f"{self.path.parent}: cannot create ({exc.strerror})") from None
        self._base = self.path.parent.resolve()
        self.journal_mode = ""
        self._migrate()

    # -- connections --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            # Switching to WAL takes an exclusive lock, and SQLite may answer "locked"
            # at once (no busy handler) while another process opens the file: retried.
            mode = self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            raise EarmarkError(f"{self.path}: not a reviews database ({exc})") from None
        self.journal_mode = str(mode).lower()
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _retry(self, fn: Any) -> Any:
        """``fn()``, again while SQLite says the database is locked, up to ``timeout``."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise EarmarkError(f"{self.path}: {exc}") from None

    def _write(self, fn: Any) -> Any:
        """``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction, committed (retried from the
        start while the database is locked)."""
        conn = self._connect()

        def attempt() -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return out

        try:
            return self._retry(attempt)
        except sqlite3.DatabaseError as exc:
            raise EarmarkError(f"{self.path}: {exc}") from None

    def _migrate(self) -> None:
        def step(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise EarmarkError(
                    f"{self.path}: made by a newer earmark (schema version {version}; this "
                    f"one reads up to {SCHEMA_VERSION}): upgrade earmark"
                )
            if version == 0:
                tables = conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                ).fetchall()
                if tables:
                    raise EarmarkError(
                        f"{self.path}: an SQLite file, but not a reviews database (it holds "
                        f"tables {', '.join(sorted(t[0] for t in tables))})"
                    )
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {v + 1}")

        self._write(step)

    @property
    def version(self) -> int:
        """The schema version of the file."""
        with self._reading() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close every connection (of every thread; the last one to close checkpoints the
        WAL into the database). Using the store again opens new ones."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ReviewStore({str(self.path)!r})"

    # -- rows ---------------------------------------------------------------------------------

    def _stored_path(self, path: str) -> str:
        resolved = Path(path).resolve()
        try:
            return resolved.relative_to(self._base).as_posix()
        except ValueError:
            return str(resolved)

    def _row(self, row: sqlite3.Row) -> Review:
        values = dict(zip(row.keys(), tuple(row), strict=True))
        stored = Path(values["path"])
        values["path"] = str(stored if stored.is_absolute() else self._base / stored)
        values["settings"] = json.loads(values["settings"] or "{}")
        return Review(**values)

    def add(self, review: Review) -> Review:
        """Store ``review`` (checked first: :meth:`Review.checked`); the stored review, with
        its ``id`` and ``created_at``."""
        return self.add_many([review])[0]

    def add_many(self, reviews: Iterable[Review]) -> list[Review]:
        """Store several reviews in one transaction (all or none)."""
        checked = [r.checked() for r in reviews]
        now = _now()

        def insert(conn: sqlite3.Connection) -> list[Review]:
            out = []
            for r in checked:
                r = dataclasses.replace(r, created_at=now, path=str(Path(r.path).resolve()))
                row = dataclasses.asdict(r)
                row["path"] = self._stored_path(r.path)
                row["settings"] = json.dumps(r.settings, sort_keys=True)
                names = [c for c in _COLUMNS if c != "id"]
                cur = conn.execute(
                    f"INSERT INTO reviews ({', '.join(names)}) "
                    f"VALUES ({', '.join('?' * len(names))})",
                    [row[c] for c in names],
                )
                out.append(dataclasses.replace(r, id=int(cur.lastrowid)))
            return out

        return self._write(insert)

    def get(self, review_id: int) -> Review | None:
        """The review ``review_id``, or ``None``."""
        with self._reading() as conn:
            row = conn.execute("SELECT * FROM reviews WHERE id = ?", (int(review_id),)).fetchone()
        return None if row is None else self._row(row)

    def delete(self, review_id: int) -> bool:
        """Remove review ``review_id`` (undo: an earlier review of the item counts again);
        whether there was one."""

        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM reviews WHERE id = ?", (int(review_id),)).rowcount > 0

        return bool(self._write(remove))

    def list(
        self,
        *,
        recording: str | None = None,
        source: str | None = None,
        verdict: str | None = None,
        latest: bool = False,
        limit: int | None = 50,
        offset: int = 0,
    ) -> tuple[list[Review], int]:
        """Reviews, newest first, and how many match: ``recording`` / ``source`` /
        ``verdict`` filter; ``latest`` keeps only the review that counts for each item;
        ``limit`` (``None``: all) and ``offset`` page."""
        if source is not None and source not in SOURCES:
            raise ParameterError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if verdict is not None and verdict not in VERDICTS:
            raise ParameterError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        if limit is not None and not (isinstance(limit, int) and 1 <= limit <= 10_000):
            raise ParameterError(f"limit must be 1 to 10000, got {limit!r}")
        if not (isinstance(offset, int) and offset >= 0):
            raise ParameterError(f"offset must be >= 0, got {offset!r}")
        where, args = [], []
        if latest:
            # The review that counts for an item is its newest (highest id): the index on
            # (recording, start_s, end_s, label, id) answers this without a table scan.
            where.append(
                "id IN (SELECT MAX(id) FROM reviews GROUP BY recording, start_s, end_s, label)"
            )
        for column, value in (("recording", recording), ("source", source)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if verdict is not None:
            where.append("verdict = ?")
            args.append(verdict)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._reading() as conn:
            # one read transaction: the count and the page see the same rows
            conn.execute("BEGIN")
            try:
                total = conn.execute(f"SELECT COUNT(*) FROM reviews{clause}", args).fetchone()[0]
                page = conn.execute(
                    f"SELECT * FROM reviews{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                    [*args, -1 if limit is None else limit, offset],
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        return [self._row(r) for r in page], int(total)

    def latest(self, *, recording: str | None = None, source: str | None = None) -> list[Review]:
        """The review that counts for every item (the newest of each), newest first."""
        rows, _ = self.list(recording=recording, source=source, latest=True, limit=None)
        return rows

    def __len__(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0])
