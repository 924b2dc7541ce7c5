"""Event tables in the formats other tools read, each written atomically, and read back.

* events CSV / JSON: ``file, start_s, end_s, label, score``
* counts CSV: ``file, label, n``
* Raven selection tables (tab-separated, ``Begin Time (s)`` / ``End Time (s)``), one per
  recording, as Raven Pro and BirdNET write them
* Audacity label tracks (``start<TAB>end<TAB>label``), one per recording
* the raw score track as Parquet: ``file, start_s, end_s`` and one column per class
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from earmark.atomic import atomic_text, atomic_write
from earmark.detection.events import Event, event_from_row, file_key
from earmark.detection.scores import ScoreTrack
from earmark.errors import ParameterError

__all__ = [
    "RAVEN_COLUMNS",
    "read_audacity",
    "read_events",
    "read_raven",
    "read_scores",
    "write_audacity",
    "write_counts",
    "write_events_csv",
    "write_events_json",
    "write_raven",
    "write_scores",
]

EVENT_COLUMNS = ["file", "start_s", "end_s", "label", "score"]
RAVEN_COLUMNS = [
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Label",
    "Score",
]


def _csv_text(
    rows: Iterable[dict[str, object]], columns: Sequence[str], delimiter: str = ","
) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), delimiter=delimiter, lineterminator="\n")
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


def write_raven(path: str | Path, events: Iterable[Event], *, max_freq: float) -> Path:
    """A Raven selection table of one recording's events (frequency band: 0..``max_freq``
    Hz, the model's whole band)."""
    rows = [
        {
            "Selection": i,
            "View": "Spectrogram 1",
            "Channel": 1,
            "Begin Time (s)": f"{ev.start:.4f}",
            "End Time (s)": f"{ev.end:.4f}",
            "Low Freq (Hz)": "0.0",
            "High Freq (Hz)": f"{max_freq:.1f}",
            "Label": ev.label,
            "Score": f"{ev.score:.6f}",
        }
        for i, ev in enumerate(events, start=1)
    ]
    return atomic_text(path, _csv_text(rows, RAVEN_COLUMNS, delimiter="\t"))


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
        label_col = next(
            (c for c in ("Label", "Annotation", "Species", "Common Name", "Class") if c in row),
            None,
        )
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
