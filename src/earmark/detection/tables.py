"""Event tables in the formats other tools read, each written atomically, and read back.

* events CSV / JSON: ``file, start_s, end_s, label, score``
* counts CSV: ``file, label, n``
* Raven selection tables (tab-separated, ``Begin Time (s)`` / ``End Time (s)``), one per
  recording, as Raven Pro and BirdNET write them. :func:`raven_text` /
  :func:`write_raven_table` are earmark's one Raven writer (detections, the field scenes'
  truth and exported reviews all go through it); :func:`write_raven` is its detection form
* Audacity label tracks (``start<TAB>end<TAB>label``), one per recording
* the raw score track as Parquet: ``file, start_s, end_s`` and one column per class
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark.atomic import atomic_text, atomic_write
from earmark.detection.events import Event, event_from_row, file_key
from earmark.detection.scores import ScoreTrack
from earmark.errors import ParameterError

__all__ = [
    "RAVEN_COLUMNS",
    "RAVEN_LABEL_COLUMNS",
    "RAVEN_OPTIONAL_COLUMNS",
    "RavenSelection",
    "raven_text",
    "read_audacity",
    "read_events",
    "read_raven",
    "read_scores",
    "write_audacity",
    "write_counts",
    "write_events_csv",
    "write_events_json",
    "write_raven",
    "write_raven_table",
    "write_scores",
]

EVENT_COLUMNS = ["file", "start_s", "end_s", "label", "score"]
#: The columns every Raven selection table earmark writes starts with.
RAVEN_COLUMNS = [
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
]
#: Label columns the Raven readers (:func:`read_raven` and :mod:`earmark.data.annotations`)
#: both take; :func:`read_raven` tries them in this order.
RAVEN_LABEL_COLUMNS = ("Label", "Annotation", "Species", "Common Name", "Class")
#: Columns written only when asked for; the label column sits between ``Begin File`` and
#: ``Score``.
RAVEN_OPTIONAL_COLUMNS = ("Begin Path", "Begin File", "Score")


def _csv_text(
    rows: Iterable[dict[str, object]],
    columns: Sequence[str],
    delimiter: str = ",",
    extras: str = "raise",
) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf,
        fieldnames=list(columns),
        delimiter=delimiter,
        lineterminator="\n",
        extrasaction=extras,
    )
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_events_csv(path: str | Path, events: Iterable[Event]) -> Path:
    """``file,start_s,end_s,label,score``, one row per event."""
    return atomic_text(path, _csv_text((ev.to_dict() for ev in events), EVENT_COLUMNS))


def write_events_json(path: str | Path, events: Iterable[Event]) -> Path:
    """A JSON list of ``{file, start_s, end_s, label, score}``."""
    return atomic_text(path, json.dumps([ev.to_dict() for ev in events], indent=1) + "\n")


def read_events(path: str | Path) -> list[Event]:
    """Events from an events CSV or JSON written by :func:`write_events_csv` / ``_json``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        rows = (
            json.loads(text)
            if path.suffix.lower() == ".json"
            else list(csv.DictReader(io.StringIO(text)))
        )
        return [event_from_row(r) for r in rows]
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read ({exc.strerror})") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise ParameterError(
            f"{path}: not an events table (columns {', '.join(EVENT_COLUMNS)}): {exc}"
        ) from None


def write_counts(path: str | Path, rows: Iterable[dict[str, object]]) -> Path:
    """``file,label,n``."""
    return atomic_text(path, _csv_text(rows, ["file", "label", "n"]))


@dataclass(frozen=True)
class RavenSelection:
    """One selection (row) of a Raven selection table: a span in seconds from the start of
    its recording, a frequency band in Hz, and a label. ``score``, ``begin_path`` (the
    recording's path) and ``begin_file`` (its file name) fill the optional columns
    ``Score``, ``Begin Path`` and ``Begin File``; ``None`` leaves the cell empty."""

    start: float
    end: float
    low_hz: float
    high_hz: float
    label: str
    score: float | None = None
    begin_path: str | None = None
    begin_file: str | None = None


def raven_text(
    selections: Iterable[RavenSelection],
    *,
    label_column: str = "Annotation",
    columns: Sequence[str] = (),
) -> str:
    """The text of a Raven selection table: one header line, then one tab-separated row per
    selection, numbered from 1, view ``Spectrogram 1``, channel 1, in the order given.

    The columns are :data:`RAVEN_COLUMNS`, then ``Begin Path`` and ``Begin File``, the label
    (named ``label_column``, one of :data:`RAVEN_LABEL_COLUMNS`), and ``Score``; each
    optional column is there when a selection gives it or when ``columns`` names it (so an
    empty table keeps its header). Times have 4 decimals (0.1 ms), frequencies 1, scores 6.
    A cell holding a tab, a quote or a line break is quoted as CSV quotes it, which both of
    earmark's Raven readers undo."""
    selections = list(selections)
    if label_column not in RAVEN_LABEL_COLUMNS:
        raise ParameterError(
            f"Raven label column {label_column!r}: use one of {', '.join(RAVEN_LABEL_COLUMNS)}"
        )
    unknown = [c for c in columns if c not in RAVEN_OPTIONAL_COLUMNS]
    if unknown:
        raise ParameterError(
            f"unknown optional Raven column {unknown[0]!r}; use {', '.join(RAVEN_OPTIONAL_COLUMNS)}"
        )
    given = {
        "Begin Path": any(s.begin_path is not None for s in selections),
        "Begin File": any(s.begin_file is not None for s in selections),
        "Score": any(s.score is not None for s in selections),
    }
    wanted = [c for c in RAVEN_OPTIONAL_COLUMNS if given[c] or c in columns]
    header = [*RAVEN_COLUMNS, *[c for c in wanted if c != "Score"], label_column]
    header += ["Score"] if "Score" in wanted else []
    rows = []
    for i, sel in enumerate(selections, start=1):
        rows.append(
            {
                "Selection": i,
                "View": "Spectrogram 1",
                "Channel": 1,
                "Begin Time (s)": f"{sel.start:.4f}",
                "End Time (s)": f"{sel.end:.4f}",
                "Low Freq (Hz)": f"{sel.low_hz:.1f}",
                "High Freq (Hz)": f"{sel.high_hz:.1f}",
                "Begin Path": sel.begin_path or "",
                "Begin File": sel.begin_file or "",
                label_column: sel.label,
                "Score": "" if sel.score is None else f"{sel.score:.6f}",
            }
        )
    return _csv_text(rows, header, delimiter="\t", extras="ignore")


def write_raven_table(
    path: str | Path,
    selections: Iterable[RavenSelection],
    *,
    label_column: str = "Annotation",
    columns: Sequence[str] = (),
) -> Path:
    """Write :func:`raven_text` of ``selections`` to ``path`` atomically."""
    return atomic_text(path, raven_text(selections, label_column=label_column, columns=columns))


def write_raven(path: str | Path, events: Iterable[Event], *, max_freq: float) -> Path:
    """A Raven selection table of one recording's detected events: ``Label`` and ``Score``
    columns, the frequency band 0..``max_freq`` Hz (the model's whole band)."""
    selections = (
        RavenSelection(ev.start, ev.end, 0.0, max_freq, ev.label, score=ev.score) for ev in events
    )
    return write_raven_table(path, selections, label_column="Label", columns=("Score",))


def read_raven(path: str | Path, *, file: str | None = None) -> list[Event]:
    """Events of a Raven selection table. The label comes from the first column among
    ``Label``, ``Annotation``, ``Species``, ``Common Name``, ``Class``; the recording from
    ``Begin File`` or ``Begin Path`` when present, else ``file`` (default: the table's name
    without ``.selections.txt``). Only ``Spectrogram`` view rows count (Raven repeats each
    selection once per view)."""
    path = Path(path)
    default = file or path.name.split(".selections")[0].removesuffix(".txt")
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t"))
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read ({exc.strerror})") from None
    out = []
    for row in rows:
        if "Spectrogram" not in row.get("View", "Spectrogram"):
            continue
        label_col = next((c for c in RAVEN_LABEL_COLUMNS if c in row), None)
        if label_col is None or "Begin Time (s)" not in row or "End Time (s)" not in row:
            raise ParameterError(
                f"{path}: a Raven table needs Begin Time (s), End Time (s) and a Label or "
                "Annotation column"
            )
        named = row.get("Begin File") or row.get("Begin Path")
        score = row.get("Score") or row.get("Confidence") or 1.0
        out.append(
            Event(
                file_key(named) if named else default,
                float(row["Begin Time (s)"]),
                float(row["End Time (s)"]),
                row[label_col],
                float(score),
            )
        )
    return out


def write_audacity(path: str | Path, events: Iterable[Event]) -> Path:
    """An Audacity label track: ``start<TAB>end<TAB>label`` per line, seconds."""
    lines = [f"{ev.start:.6f}\t{ev.end:.6f}\t{ev.label}\n" for ev in events]
    return atomic_text(path, "".join(lines))


def read_audacity(path: str | Path, *, file: str | None = None) -> list[Event]:
    """Events of an Audacity label track (frequency lines starting with ``\\`` skipped)."""
    path = Path(path)
    name = file or path.name.split(".labels")[0]
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("\\"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ParameterError(f"{path}: not an Audacity label line: {line!r}")
        label = parts[2] if len(parts) > 2 else ""
        out.append(Event(name, float(parts[0]), float(parts[1]), label))
    return out


def write_scores(path: str | Path, tracks: Iterable[ScoreTrack]) -> Path:
    """The score tracks as one Parquet table: ``file, start_s, end_s`` and a float32 column
    per class."""
    import pandas as pd

    frames = []
    for t in tracks:
        frame = pd.DataFrame(t.scores.astype(np.float32), columns=list(t.classes))
        frame.insert(0, "end_s", t.ends.astype(np.float64))
        frame.insert(0, "start_s", t.starts.astype(np.float64))
        frame.insert(0, "file", t.path)
        frames.append(frame)
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["file", "start_s", "end_s"])
    )
    return atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


def read_scores(path: str | Path):  # -> pandas.DataFrame
    """The Parquet score table written by :func:`write_scores`."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path}: cannot read the score table ({exc})") from None


def read_tracks(det_dir: str | Path) -> list[ScoreTrack]:
    """The score tracks of a detection folder (its ``scores.parquet`` and the windowing in
    its ``detection.json``), one per recording, in the order they were written."""
    det_dir = Path(det_dir)
    settings_path = det_dir / "detection.json"
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterError(
            f"{settings_path}: not a detection folder's settings ({exc})"
        ) from None
    table = read_scores(det_dir / "scores.parquet")
    classes = [c for c in table.columns if c not in ("file", "start_s", "end_s")]
    tracks = []
    for name, rows in table.groupby("file", sort=False):
        starts = rows["start_s"].to_numpy(np.float64)
        ends = rows["end_s"].to_numpy(np.float64)
        window = float((ends - starts).max()) if len(rows) else 0.0
        hop = float(np.diff(starts).min()) if len(rows) > 1 else window
        windowing = settings.get("windowing", {})
        window = float(windowing.get("window") or window)
        tracks.append(
            ScoreTrack(
                str(name),
                classes,
                starts,
                window,
                hop,
                rows[classes].to_numpy(np.float32),
                float(ends.max()) if len(rows) else 0.0,
            )
        )
    return tracks
