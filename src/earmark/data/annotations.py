"""Annotation tables over long recordings: Raven selection tables, Audacity label tracks and
CSV, read into one table of annotations, checked, summarised (``earmark inspect``), and cut
into labelled windows that training reads from the recordings (no clip files written).

Formats (``format="auto"`` tells them apart by suffix and first line):

* **Raven** selection tables (tab-separated, ``Begin Time (s)``, ``End Time (s)``, optional
  ``Low Freq (Hz)`` / ``High Freq (Hz)``; the label from ``label_column`` or the first of
  :data:`RAVEN_LABEL_COLUMNS`). Only ``Spectrogram`` view rows count (Raven repeats each
  selection once per view). The recording is ``Begin Path`` (when that file exists) or
  ``Begin File`` when the table spans files (times then come from ``File Offset (s)`` when
  present: ``Begin Time`` counts from the start of the first file of the sequence), else
  the recording named by the table's file name (``rec.Table.1.selections.txt`` -> ``rec``).
* **Audacity** label tracks (``start<TAB>end<TAB>label``; an optional ``\\<TAB>low<TAB>high``
  line after a label gives its frequency band); the recording is named by the file name
  (``rec.txt``, ``rec.labels.txt``).
* **CSV** with columns ``file, start_s, end_s, label[, low_hz, high_hz]`` (also accepted:
  ``filepath / path / recording``, ``start / onset / begin``, ``end / offset``,
  ``class / species / annotation``); other columns are ignored.
* **crowsetta** formats (``format="crowsetta:textgrid"``, ``"crowsetta:simple-seq"``...):
  everything else crowsetta 5 reads. Raven, Audacity and CSV are read here rather than
  through crowsetta because its readers give no line numbers in their errors, read no
  ``Begin File`` / ``View`` columns, refuse empty tables (a complete table of a recording
  with no calls is a valid, all-negative table) and need a band in every Audacity label.

Recordings are found, in order: as a path that exists (absolute, or relative to the
table's folder), then by file name, then by name without extension (any audio extension),
in ``recordings`` (a folder) and in the table's folder. A folder of tables next to their
recordings is a data set too: :func:`read_annotations` on the folder reads every table.

A label ``a;b`` is two annotations (``a`` and ``b``) over the same span. Every problem with a
row is one line naming the table and its line number: a recording that cannot be found, a
time that is not a number, negative, or reversed (``end <= start``), a missing required or
unknown label column, an empty label. Annotations past the end of their recording are
reported by :meth:`Annotations.summary`; :func:`annotation_windows` clips one that runs past
the end (``outside="clip"``, the default) and refuses one that begins at or after the end
(it belongs to another file), or refuses both with ``outside="error"``.

The window rule (:func:`annotation_windows`): windows of ``window_s`` every ``hop_s`` over
each recording (:func:`earmark.detection.windows.window_starts`, in samples at the file's
rate). The overlap of a window ``[ws, we)`` and an annotation ``[as, ae)`` is
``min(we, ae) - max(ws, as)`` seconds. A window is positive for a class when its overlap
with one annotation of that class is at least the threshold (equal counts; a microsecond of
tolerance absorbs float rounding): ``min_overlap`` seconds (``0.2`` or ``"0.2s"``), or a
fraction of the shorter of window and annotation (``"50%"``). A window that overlaps an
annotation by less is *ambiguous* for that class: with no positive class it is dropped
(``ambiguous="drop"``) or kept as a negative (``ambiguous="negative"``); beside a positive
class the ambiguous classes are listed in the ``ambiguous`` column. Windows that touch no
annotation are negatives (label ``""``) only when the tables are declared complete
(``complete=True``: every call in the recording was annotated); otherwise they are left out.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from earmark.audio import AUDIO_EXTENSIONS
from earmark.errors import AudioError, ParameterError

__all__ = [
    "ANNOTATION_COLUMNS",
    "RAVEN_LABEL_COLUMNS",
    "WINDOW_COLUMNS",
    "Annotations",
    "MinOverlap",
    "annotation_windows",
    "check_format",
    "find_tables",
    "is_annotation_source",
    "read_annotations",
    "read_table",
    "windows_summary",
]

#: Columns of :attr:`Annotations.frame`.
ANNOTATION_COLUMNS = (
    "recording",
    "start_s",
    "end_s",
    "label",
    "low_hz",
    "high_hz",
    "table",
    "line",
)
#: Columns of the window table :func:`annotation_windows` returns.
WINDOW_COLUMNS = ("filepath", "start_s", "end_s", "label", "group", "ambiguous")
#: Raven label columns tried in order when ``label_column`` is not given.
RAVEN_LABEL_COLUMNS = ("Annotation", "Label", "Species", "Class", "Common Name", "Sound Type")

TableFormat = Literal["auto", "raven", "audacity", "csv"]
Outside = Literal["clip", "error"]
Ambiguous = Literal["drop", "negative"]

#: Seconds of tolerance in the overlap rule and the end-of-file checks: float rounding of
#: sample positions (1 us is below one sample at any rate earmark reads, 768 kHz at most).
TIME_EPS = 1e-6

_CSV_ALIASES = {
    "file": ("file", "filepath", "path", "filename", "recording", "audio"),
    "start": ("start_s", "start", "onset", "onset_s", "begin", "begin time (s)"),
    "end": ("end_s", "end", "offset", "offset_s", "stop", "end time (s)"),
    "label": ("label", "class", "species", "annotation", "event_label"),
    "low": ("low_hz", "low_freq", "low freq (hz)", "fmin"),
    "high": ("high_hz", "high_freq", "high freq (hz)", "fmax"),
}
_TABLE_SUFFIX = re.compile(r"(\.Table\.\d+)?\.selections$|\.labels$|[._]labels?$", re.IGNORECASE)


# -- rows -------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One annotation while a table is read: where it came from and what it says."""

    recording: str  # as written in the table (resolved later)
    start: float
    end: float
    label: str
    low: float | None
    high: float | None
    line: int


def _where(table: Path, line: int) -> str:
    return f"{table}: line {line}"


def _number(table: Path, line: int, what: str, text: object, *, optional: bool = False):
    """A finite float from a cell, or a one-line error naming the row."""
    if text is None or (isinstance(text, str) and not text.strip()):
        if optional:
            return None
        raise ParameterError(f"{_where(table, line)}: {what} is empty")
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ParameterError(f"{_where(table, line)}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ParameterError(f"{_where(table, line)}: {what} must be finite, got {text!r}")
    return value


def _checked(table: Path, rows: list[_Row]) -> list[_Row]:
    """Times and labels of every row checked; ``a;b`` labels split into one row per class."""
    out = []
    for r in rows:
        where = _where(table, r.line)
        if r.start < 0:
            raise ParameterError(f"{where}: negative start time {r.start:g} s")
        if r.end <= r.start:
            raise ParameterError(
                f"{where}: end {r.end:g} s is not after start {r.start:g} s (reversed or empty)"
            )
        if r.low is not None and r.high is not None and (r.low < 0 or r.high < r.low):
            raise ParameterError(f"{where}: frequency band {r.low:g}-{r.high:g} Hz is reversed")
        parts = [p.strip() for p in r.label.split(";")]
        if not r.label.strip() or not all(parts):
            raise ParameterError(f"{where}: empty label")
        for part in dict.fromkeys(parts):
            out.append(_Row(r.recording, r.start, r.end, part, r.low, r.high, r.line))
    return out


# -- readers ----------------------------------------------------------------------------------


def _recording_name(table: Path) -> str:
    """The recording a one-recording table names: its file name without ``.txt``,
    ``.selections`` / ``.Table.1.selections``, ``.labels`` and an audio extension."""
    name = table.name
    if name.lower().endswith((".txt", ".csv", ".tsv")):
        name = name[:-4]
    name = _TABLE_SUFFIX.sub("", name)
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix.lower() in AUDIO_EXTENSIONS else name


def _read_text(table: Path) -> str:
    try:
        return table.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ParameterError(f"{table}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{table}: not a text table (not UTF-8)") from None


def _read_raven(table: Path, text: str, label_column: str | None) -> list[_Row]:
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    for need in ("Begin Time (s)", "End Time (s)"):
        if need not in columns:
            raise ParameterError(f"{_where(table, 1)}: no {need!r} column (a Raven table needs it)")
    if label_column is not None:
        if label_column not in columns:
            raise ParameterError(
                f"{_where(table, 1)}: unknown label column {label_column!r}; "
                f"the columns are {', '.join(columns)}"
            )
        label_col = label_column
    else:
        label_col = next((c for c in RAVEN_LABEL_COLUMNS if c in columns), None)
        if label_col is None:
            raise ParameterError(
                f"{_where(table, 1)}: no label column (one of {', '.join(RAVEN_LABEL_COLUMNS)}; "
                "or name it with label_column / --label-column)"
            )
    own = _recording_name(table)
    rows = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise ParameterError(f"{_where(table, line)}: more cells than columns")
        if "Spectrogram" not in (row.get("View") or "Spectrogram"):
            continue
        start = _number(table, line, "Begin Time (s)", row["Begin Time (s)"])
        end = _number(table, line, "End Time (s)", row["End Time (s)"])
        recording = own
        path = (row.get("Begin Path") or "").strip()
        named = (row.get("Begin File") or "").strip()
        if path or named:
            recording = path if path and Path(path).is_file() else (named or path)
            offset = _number(
                table, line, "File Offset (s)", row.get("File Offset (s)"), optional=True
            )
            if offset is not None:  # times count from the start of the file sequence
                start, end = offset, offset + (end - start)
        rows.append(
            _Row(
                recording,
                start,
                end,
                row.get(label_col) or "",
                _number(table, line, "Low Freq (Hz)", row.get("Low Freq (Hz)"), optional=True),
                _number(table, line, "High Freq (Hz)", row.get("High Freq (Hz)"), optional=True),
                line,
            )
        )
    return rows


def _read_audacity(table: Path, text: str) -> list[_Row]:
    own = _recording_name(table)
    rows: list[_Row] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if parts[0].strip() == "\\":  # the band of the label on the line before
            if not rows or rows[-1].line != line - 1 or len(parts) < 3:
                raise ParameterError(f"{_where(table, line)}: a frequency line with no label")
            rows[-1].low = _number(table, line, "low frequency", parts[1])
            rows[-1].high = _number(table, line, "high frequency", parts[2])
            continue
        if len(parts) < 2:
            raise ParameterError(
                f"{_where(table, line)}: not an Audacity label line (start<TAB>end<TAB>label)"
            )
        start = _number(table, line, "start", parts[0])
        end = _number(table, line, "end", parts[1])
        label = "\t".join(parts[2:])
        rows.append(_Row(own, start, end, label, None, None, line))
    return rows


def _read_csv(table: Path, text: str) -> list[_Row]:
    delimiter = "\t" if table.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    lower = {c.strip().lower(): c for c in reader.fieldnames or []}
    cols: dict[str, str | None] = {}
    for want, names in _CSV_ALIASES.items():
        cols[want] = next((lower[n] for n in names if n in lower), None)
    missing = [_CSV_ALIASES[w][0] for w in ("start", "end", "label") if cols[w] is None]
    if missing:
        raise ParameterError(
            f"{_where(table, 1)}: missing column {', '.join(missing)} (an annotation CSV has "
            f"file, start_s, end_s, label[, low_hz, high_hz]); the columns are "
            f"{', '.join(reader.fieldnames or []) or 'none'}"
        )
    own = _recording_name(table)
    rows = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise ParameterError(f"{_where(table, line)}: more cells than columns")
        file_col = cols["file"]
        recording = (row.get(file_col) or "").strip() if file_col else own
        if not recording:
            raise ParameterError(f"{_where(table, line)}: empty file name")
        rows.append(
            _Row(
                recording,
                _number(table, line, "start", row[cols["start"]]),
                _number(table, line, "end", row[cols["end"]]),
                row[cols["label"]] or "",
                _number(table, line, "low_hz", row.get(cols["low"] or ""), optional=True),
                _number(table, line, "high_hz", row.get(cols["high"] or ""), optional=True),
                line,
            )
        )
    return rows


def _read_crowsetta(table: Path, name: str) -> list[_Row]:
    """Any other format crowsetta reads: its sequences or boxes as rows (row numbers are the
    segment's position, crowsetta does not keep line numbers)."""
    try:
        import crowsetta
    except ImportError:
        raise ParameterError(
            f"{table}: the {name} format is read by crowsetta: pip install 'crowsetta>=5'"
        ) from None
    if name not in crowsetta.formats.as_list():
        raise ParameterError(
            f"unknown crowsetta format {name!r}; one of {', '.join(crowsetta.formats.as_list())}"
        )
    try:
        annots = crowsetta.Transcriber(format=name).from_file(table).to_annot()
    except Exception as exc:  # crowsetta raises many kinds (ValueError, pandera, KeyError)
        raise ParameterError(f"{table}: cannot read as {name} ({exc})".splitlines()[0]) from None
    rows = []
    for annot in annots if isinstance(annots, list) else [annots]:
        recording = str(annot.notated_path) if annot.notated_path else _recording_name(table)
        if getattr(annot, "seq", None) is not None:
            seqs = annot.seq if isinstance(annot.seq, list) else [annot.seq]
            for seq in seqs:
                for i, seg in enumerate(seq.segments, start=1):
                    rows.append(
                        _Row(recording, seg.onset_s, seg.offset_s, str(seg.label), None, None, i)
                    )
        for i, box in enumerate(getattr(annot, "bboxes", None) or [], start=1):
            rows.append(
                _Row(
                    recording, box.onset, box.offset, str(box.label), box.low_freq,
                    box.high_freq, i,
                )
            )  # fmt: skip
    return rows


def detect_format(table: str | Path) -> str | None:
    """``raven``, ``audacity`` or ``csv`` from the suffix and first line; ``None`` when the
    file looks like none of them (an empty ``.txt`` is an Audacity track with no labels)."""
    table = Path(table)
    suffix = table.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix != ".txt":
        return None
    try:
        with table.open(encoding="utf-8-sig") as f:
            first = next((line for line in f if line.strip()), "")
    except (OSError, UnicodeDecodeError):
        return None
    if "Begin Time (s)" in first:
        return "raven"
    if not first:
        return "audacity"
    parts = first.split("\t")
    try:
        float(parts[0])
        float(parts[1])
    except (ValueError, IndexError):
        return None
    return "audacity"


# -- resolving recordings -----------------------------------------------------------------------


class _Finder:
    """Finds recordings by path, name or stem in the recordings folder and the tables'
    folders (each folder listed once)."""

    def __init__(self, recordings: Path | None) -> None:
        self.recordings = recordings
        self._index: dict[Path, tuple[dict[str, Path], dict[str, list[Path]]]] = {}

    def _listing(self, folder: Path) -> tuple[dict[str, Path], dict[str, list[Path]]]:
        if folder not in self._index:
            names: dict[str, Path] = {}
            stems: dict[str, list[Path]] = defaultdict(list)
            files = folder.rglob("*") if folder == self.recordings else folder.iterdir()
            for p in sorted(files):
                if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:
                    names.setdefault(p.name, p)
                    stems[p.stem].append(p)
            self._index[folder] = (names, stems)
        return self._index[folder]

    def find(self, written: str, table: Path) -> Path | None:
        candidate = Path(written.replace("\\", "/"))
        for base in (table.parent, self.recordings):
            if base is not None and (base / candidate).is_file():
                return (base / candidate).resolve()
        name = candidate.name
        for folder in (self.recordings, table.parent):
            if folder is None or not folder.is_dir():
                continue
            names, stems = self._listing(folder)
            if name in names:
                return names[name].resolve()
            if stems.get(name):
                return stems[name][0].resolve()
        return None


def _resolve(table: Path, rows: list[_Row], finder: _Finder) -> list[_Row]:
    found: dict[str, Path] = {}
    for r in rows:
        if r.recording not in found:
            path = finder.find(r.recording, table)
            if path is None:
                where = finder.recordings or table.parent
                raise ParameterError(
                    f"{_where(table, r.line)}: recording {r.recording!r} not found (looked in "
                    f"{where}{'' if where == table.parent else ' and ' + str(table.parent)})"
                )
            found[r.recording] = path
        r.recording = str(found[r.recording])
    return rows


# -- the annotations of a data set ---------------------------------------------------------------


@dataclass
class Annotations:
    """Annotations read from one or more tables.

    ``frame`` has :data:`ANNOTATION_COLUMNS` (``recording`` an absolute path); ``covered``
    lists every recording a table covers, also those with no annotation (an empty Raven or
    Audacity table of a recording: complete, it makes all its windows negatives); ``tables``
    the tables read; ``skipped`` the files of a folder that are not tables.
    """

    frame: pd.DataFrame
    covered: list[str]
    tables: list[str]
    skipped: list[str] = field(default_factory=list)
    recordings_dir: str | None = None
    _durations: dict[str, float] = field(default_factory=dict, repr=False)
    _unreadable: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return sorted(self.frame["label"].unique().tolist())

    def durations(self) -> tuple[dict[str, float], dict[str, str]]:
        """Seconds of every covered recording (from its header), and the recordings that
        cannot be read with the reason (read once)."""
        from earmark import audio as audio_io

        for rec in self.covered:
            if rec in self._durations or rec in self._unreadable:
                continue
            try:
                meta = audio_io.info(rec)
                self._durations[rec] = meta.frames / meta.sample_rate
            except AudioError as exc:
                self._unreadable[rec] = exc.problem
        return dict(self._durations), dict(self._unreadable)

    def outside(self) -> pd.DataFrame:
        """Annotations that run past the end of their recording (``end_s`` beyond its
        duration), with a ``duration_s`` column."""
        durations, _ = self.durations()
        frame = self.frame.assign(duration_s=self.frame["recording"].map(durations))
        return frame[frame["end_s"] > frame["duration_s"] + TIME_EPS]

    def overlaps(self) -> dict[str, int]:
        """Pairs of annotations of one recording that overlap in time (by more than
        :data:`TIME_EPS`), of the same class and of different classes. Rows split from one
        ``a;b`` label are not counted against each other."""
        same = different = 0
        for _, rows in self.frame.groupby("recording", sort=False):
            rows = rows.sort_values("start_s")
            starts, ends = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()
            labels, keys = (
                rows["label"].to_numpy(),
                list(zip(rows["table"], rows["line"], strict=True)),
            )
            for i in range(len(rows)):
                j = i + 1
                while j < len(rows) and starts[j] < ends[i] - TIME_EPS:
                    if keys[i] != keys[j]:
                        if labels[i] == labels[j]:
                            same += 1
                        else:
                            different += 1
                    j += 1
        return {"same_class": same, "different_classes": different}

    def summary(self) -> dict:
        """What ``earmark inspect`` prints: tables, recordings, classes with counts and total
        / mean / min / max duration, overlapping pairs, annotations outside their file,
        recordings without annotations, unreadable recordings."""
        durations, unreadable = self.durations()
        frame = self.frame
        length = frame["end_s"] - frame["start_s"]
        per_class = {}
        for label, d in length.groupby(frame["label"]):
            per_class[str(label)] = {
                "count": len(d),
                "total_s": float(d.sum()),
                "mean_s": float(d.mean()),
                "min_s": float(d.min()),
                "max_s": float(d.max()),
                "recordings": int(frame.loc[d.index, "recording"].nunique()),
            }
        outside = self.outside()
        annotated = set(frame["recording"])
        unannotated = [r for r in self.covered if r not in annotated]
        if self.recordings_dir is not None:
            folder = Path(self.recordings_dir)
            listed = {str(p.resolve()) for p in folder.rglob("*") if p.suffix.lower() in
                      AUDIO_EXTENSIONS and p.is_file()}  # fmt: skip
            unannotated += sorted(listed - set(self.covered))
        return {
            "tables": len(self.tables),
            "recordings": len(self.covered),
            "recorded_s": float(sum(durations.values())),
            "annotations": len(frame),
            "classes": per_class,
            "overlaps": self.overlaps(),
            "outside": [
                {
                    "table": r.table,
                    "line": int(r.line),
                    "recording": r.recording,
                    "label": r.label,
                    "start_s": float(r.start_s),
                    "end_s": float(r.end_s),
                    "duration_s": float(r.duration_s),
                }
                for r in outside.itertuples()
            ],
            "without_annotations": unannotated,
            "unreadable": [{"recording": k, "error": v} for k, v in unreadable.items()],
            "skipped_files": list(self.skipped),
        }


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ANNOTATION_COLUMNS})


def read_table(
    path: str | Path,
    *,
    recordings: str | Path | None = None,
    format: str = "auto",
    label_column: str | None = None,
) -> Annotations:
    """The annotations of one table (see the module doc for formats and checks)."""
    return _read([Path(path)], recordings, format, label_column, skipped=[])


def find_tables(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """The annotation tables under ``folder`` (any depth: ``.txt`` Raven / Audacity tables,
    ``.csv`` / ``.tsv`` tables) and the text files that are not tables."""
    tables, other = [], []
    for p in sorted(Path(folder).rglob("*")):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in (
            ".txt", ".csv", ".tsv",
        ):  # fmt: skip
            continue
        (tables if detect_format(p) else other).append(p)
    return tables, other


def read_annotations(
    source: str | Path | Sequence[str | Path],
    *,
    recordings: str | Path | None = None,
    format: str = "auto",
    label_column: str | None = None,
) -> Annotations:
    """The annotations of a table, a list of tables, or a folder of tables (next to their
    recordings, or with the recordings in ``recordings``)."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    paths: list[Path] = []
    skipped: list[str] = []
    for s in map(Path, sources):
        if s.is_dir():
            tables, other = find_tables(s)
            if not tables:
                raise ParameterError(f"{s}: no annotation tables (.txt, .csv) inside")
            paths += tables
            skipped += [str(p) for p in other]
        elif s.is_file():
            paths.append(s)
        else:
            raise ParameterError(f"{s}: no such table or folder")
    return _read(paths, recordings, format, label_column, skipped=skipped)


def _read(
    paths: list[Path],
    recordings: str | Path | None,
    format: str,
    label_column: str | None,
    *,
    skipped: list[str],
) -> Annotations:
    rec_dir = None if recordings is None else Path(recordings)
    if rec_dir is not None and not rec_dir.is_dir():
        raise ParameterError(f"{rec_dir}: the recordings folder does not exist")
    check_format(format)
    finder = _Finder(rec_dir)
    records, covered = [], {}
    for table in paths:
        kind = detect_format(table) if format == "auto" else format
        if kind is None:
            raise ParameterError(
                f"{table}: not an annotation table (Raven .txt, Audacity .txt, .csv); "
                "name the format with format= / --format"
            )
        if kind.startswith("crowsetta:"):
            rows = _read_crowsetta(table, kind.split(":", 1)[1])
        else:
            text = _read_text(table)
            if kind == "raven":
                rows = _read_raven(table, text, label_column)
            elif kind == "audacity":
                rows = _read_audacity(table, text)
            else:
                rows = _read_csv(table, text)
        rows = _resolve(table, _checked(table, rows), finder)
        if not rows and kind in ("raven", "audacity"):  # an empty table still covers its file
            path = finder.find(_recording_name(table), table)
            if path is None:
                raise ParameterError(
                    f"{table}: recording {_recording_name(table)!r} not found (an empty table "
                    "covers the recording its file name names)"
                )
            covered[str(path)] = None
        for r in rows:
            covered[r.recording] = None
            records.append(
                (r.recording, r.start, r.end, r.label, r.low, r.high, str(table), r.line)
            )
    frame = pd.DataFrame.from_records(records, columns=list(ANNOTATION_COLUMNS))
    if frame.empty:
        frame = _empty_frame()
    frame["line"] = frame["line"].astype("int64")
    for c in ("start_s", "end_s", "low_hz", "high_hz"):
        frame[c] = frame[c].astype("float64")
    return Annotations(
        frame,
        list(covered),
        [str(p) for p in paths],
        skipped,
        None if rec_dir is None else str(rec_dir),
    )


def check_format(format: str) -> str:
    """``format`` when it names a table format (``auto``, ``raven``, ``audacity``, ``csv``,
    ``crowsetta:<name>``), else a one-line :class:`ParameterError`."""
    if format not in ("auto", "raven", "audacity", "csv") and not (
        format.startswith("crowsetta:") and len(format) > len("crowsetta:")
    ):
        raise ParameterError(
            f"unknown annotation format {format!r}; use auto, raven, audacity, csv or "
            "crowsetta:<name>"
        )
    return format


def is_annotation_source(path: str | Path) -> bool:
    """Whether ``path`` is an annotation table, or a folder of them that is not also a data
    set of a known layout (a manifest CSV or folder-per-class data set is not)."""
    path = Path(path)
    if path.is_file():
        kind = detect_format(path)
        if kind != "csv":
            return kind is not None
        try:
            with path.open(encoding="utf-8-sig") as f:
                header = {c.strip().lower() for c in next(csv.reader(f), [])}
        except (OSError, UnicodeDecodeError):
            return False
        return any(n in header for n in _CSV_ALIASES["start"]) and any(
            n in header for n in _CSV_ALIASES["end"]
        )
    if not path.is_dir():
        return False
    from earmark.data.layouts import detect_layout

    if detect_layout(path) not in ("folder", "csv"):
        return False
    return any(
        detect_format(p) == "raven" or (p.suffix.lower() != ".csv" and detect_format(p))
        for p in path.rglob("*.txt")
    ) or any(is_annotation_source(p) for p in path.glob("*.csv"))


# -- windows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinOverlap:
    """The overlap a window needs with an annotation to be positive for its class:
    ``seconds``, or ``fraction`` of the shorter of window and annotation."""

    seconds: float | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, value: float | str | MinOverlap) -> MinOverlap:
        """``0.2`` or ``"0.2s"``: seconds; ``"50%"``: a fraction of the shorter of window
        and annotation (``0%`` < fraction <= ``100%``)."""
        if isinstance(value, MinOverlap):
            return value
        text = str(value).strip().lower()
        try:
            if isinstance(value, bool):
                raise ValueError
            if text.endswith("%"):
                number = float(text[:-1])
                if not 0 < number <= 100:
                    raise ParameterError(
                        f"min_overlap as a fraction must be in (0%, 100%], got {value!r}"
                    )
                return cls(fraction=number / 100)
            number = float(text.removesuffix("s"))
        except ValueError:
            raise ParameterError(
                f"min_overlap must be seconds (0.2, '0.2s') or a fraction ('50%'), got {value!r}"
            ) from None
        if not (math.isfinite(number) and number > 0):
            raise ParameterError(f"min_overlap must be more than 0 seconds, got {value!r}")
        return cls(seconds=number)

    def threshold(self, window_s: float, annotation_s: np.ndarray) -> np.ndarray:
        """Seconds of overlap needed, per annotation."""
        if self.fraction is not None:
            return self.fraction * np.minimum(window_s, annotation_s)
        return np.full(len(annotation_s), float(self.seconds))

    def __str__(self) -> str:
        return f"{self.fraction * 100:g}%" if self.fraction is not None else f"{self.seconds:g}s"


def annotation_windows(
    source: Annotations | str | Path | Sequence[str | Path],
    *,
    window_s: float,
    hop_s: float | None = None,
    min_overlap: float | str | MinOverlap = "50%",
    complete: bool = False,
    ambiguous: Ambiguous = "drop",
    outside: Outside = "clip",
    last: Literal["pad", "end", "drop"] = "pad",
    recordings: str | Path | None = None,
    label_column: str | None = None,
) -> pd.DataFrame:
    """The labelled windows of annotated recordings (the rule is in the module doc).

    Returns a DataFrame with :data:`WINDOW_COLUMNS`: ``filepath`` (the recording), ``start_s``
    and ``end_s`` (``end_s`` may pass the end of the recording with ``last="pad"``: the
    reader zero-pads), ``label`` (``;``-joined classes, sorted; ``""`` for a negative),
    ``group`` (the recording: splits never put one recording on both sides) and ``ambiguous``
    (``;``-joined classes the window overlaps below the threshold). Recordings that cannot be
    read are skipped and listed in ``frame.attrs["unreadable"]`` (path -> problem).
    """
    from earmark.detection.windows import Windowing, window_starts

    if ambiguous not in ("drop", "negative"):
        raise ParameterError(f"ambiguous must be drop or negative, got {ambiguous!r}")
    if outside not in ("clip", "error"):
        raise ParameterError(f"outside must be clip or error, got {outside!r}")
    rule = MinOverlap.parse(min_overlap)
    hop_s = window_s if hop_s is None else hop_s
    Windowing(window=window_s, hop=hop_s, last=last)  # checks the numbers
    ann = (
        source
        if isinstance(source, Annotations)
        else read_annotations(source, recordings=recordings, label_column=label_column)
    )
    durations, unreadable = ann.durations()
    problems = ann.outside()
    if len(problems):
        starts_after = problems[problems["start_s"] >= problems["duration_s"] - TIME_EPS]
        bad = problems if outside == "error" else starts_after
        if len(bad):
            r = bad.iloc[0]
            raise ParameterError(
                f"{_where(Path(r['table']), int(r['line']))}: annotation {r['start_s']:g}-"
                f"{r['end_s']:g} s is past the end of {Path(r['recording']).name} "
                f"({r['duration_s']:g} s)"
                + ("" if outside == "error" else "; it belongs to another recording?")
            )
    rows = []
    by_rec = {rec: g for rec, g in ann.frame.groupby("recording", sort=False)}
    from earmark import audio as audio_io

    for rec in ann.covered:
        if rec in unreadable:
            continue
        meta = audio_io.info(rec)
        sr = meta.sample_rate
        win, hop = max(1, round(window_s * sr)), max(1, round(hop_s * sr))
        starts = window_starts(meta.frames, win, hop, last) / sr
        ends = starts + win / sr
        group = by_rec.get(rec)
        if group is None or group.empty:
            a_start = a_end = np.zeros(0)
            labels = np.zeros(0, dtype=object)
        else:
            a_start = group["start_s"].to_numpy()
            a_end = np.minimum(group["end_s"].to_numpy(), durations[rec])
            labels = group["label"].to_numpy(dtype=object)
        need = rule.threshold(win / sr, a_end - a_start)
        # windows x annotations overlap in seconds (recordings hold thousands of windows and
        # at most thousands of annotations: the matrix is chunked to bound memory)
        for lo in range(0, len(starts), 4096):
            s, e = starts[lo : lo + 4096, None], ends[lo : lo + 4096, None]
            overlap = np.minimum(e, a_end[None, :]) - np.maximum(s, a_start[None, :])
            touching = overlap > TIME_EPS
            passing = overlap >= need[None, :] - TIME_EPS
            for k in range(len(s)):
                pos = sorted(set(labels[passing[k]]))
                amb = sorted(set(labels[touching[k] & ~passing[k]]) - set(pos))
                if not pos:
                    if amb and ambiguous == "drop":
                        continue
                    if not complete:
                        continue
                    amb = []
                rows.append(
                    (rec, float(s[k, 0]), float(e[k, 0]), ";".join(pos), rec, ";".join(amb))
                )
    frame = pd.DataFrame.from_records(rows, columns=list(WINDOW_COLUMNS))
    frame["start_s"] = frame["start_s"].astype("float64")
    frame["end_s"] = frame["end_s"].astype("float64")
    frame.attrs["unreadable"] = unreadable
    frame.attrs["min_overlap"] = str(rule)
    return frame


def windows_summary(frame: pd.DataFrame) -> dict[str, int]:
    """Windows per class (a multi-label window counts for each class) and negatives."""
    counts: dict[str, int] = defaultdict(int)
    for label in frame["label"]:
        for c in label.split(";") if label else ["<negative>"]:
            counts[c] += 1
    return dict(sorted(counts.items()))
