"""Compare detected events with reference ("truth") events.

Event-based scoring (:func:`score_events`) as in sed_eval / DCASE: a detection is a true
positive when a reference event of the same file and label starts within ``tolerance``
seconds of it; each reference event matches at most one detection and the pairing is a
maximum matching (so the counts do not depend on the order of events). Files are matched by
name, without folders and without the audio extension, so ``recordings/a.wav`` in the
events and ``a.wav`` in the truth are one file, and ``rec.2024-05-01.wav`` and
``rec.2024-05-02.wav`` are two.

Segment-based scoring (:func:`score_segments`) as sed_eval's ``SegmentBasedMetrics``: each
recording is cut into fixed segments (1 s by default) and a class is active in a segment
when an event of it overlaps the segment (an event from ``onset`` to ``offset`` covers the
segments ``floor(onset / s)`` to ``ceil(offset / s)``, end excluded); every (segment, class)
pair is then a true positive, a false positive or a miss. It judges where sound is, not how
many events: a long call found as three pieces is one event miss and two false events, but
no segment error.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earmark.detection.events import Event, file_key, recording_stem
from earmark.errors import ParameterError

__all__ = [
    "EventScores",
    "SegmentScores",
    "file_key",
    "read_truth",
    "recording_stem",
    "score_events",
    "score_segments",
]

_ALIASES = {
    "file": ("file", "filename", "filepath", "path", "recording", "audio"),
    "start": ("start_s", "start", "onset", "begin", "begin time (s)"),
    "end": ("end_s", "end", "offset", "stop", "end time (s)"),
    "label": ("label", "event_label", "class", "annotation", "species"),
}


def read_truth(path: str | Path) -> list[Event]:
    """Reference events from a CSV (columns ``file, start_s, end_s, label``; also accepted:
    ``filename / onset / offset / event_label`` and similar), a Raven selection table, or a
    folder of Raven tables (``<recording>.selections.txt``)."""
    from earmark.detection.tables import read_raven

    path = Path(path)
    if path.is_dir():
        tables = sorted(path.rglob("*.txt"))
        if not tables:
            raise ParameterError(f"{path}: no Raven selection tables (*.txt) inside")
        return [ev for t in tables for ev in read_raven(t)]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read the truth table ({exc.strerror})") from None
    first = text.splitlines()[0] if text.strip() else ""
    if "\t" in first and "Begin Time (s)" in first:
        return read_raven(path)
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        return []
    lower = {c.lower().strip(): c for c in rows[0]}
    cols = {}
    for want, names in _ALIASES.items():
        found = next((lower[n] for n in names if n in lower), None)
        if found is None:
            raise ParameterError(
                f"{path}: the truth table needs its {want} column (one of {', '.join(names)}); "
                f"it has {', '.join(rows[0])}"
            )
        cols[want] = found
    try:
        return [
            Event(r[cols["file"]], float(r[cols["start"]]), float(r[cols["end"]]), r[cols["label"]])
            for r in rows
        ]
    except ValueError as exc:
        raise ParameterError(f"{path}: a start or end is not a number ({exc})") from None


@dataclass
class EventScores:
    """Event-based precision, recall and F1 per class and overall (micro-averaged), and the
    count error (detected minus true) per file and class."""

    tolerance: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    overall: dict[str, float] = field(default_factory=dict)
    counts: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "tolerance_s": self.tolerance,
            "overall": self.overall,
            "per_class": self.per_class,
            "counts": self.counts,
        }


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def _matches(det: Sequence[float], ref: Sequence[float], tolerance: float) -> int:
    """Size of a maximum matching between detected and reference onsets within tolerance."""
    if not det or not ref:
        return 0
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    d = np.asarray(det)[:, None]
    r = np.asarray(ref)[None, :]
    close = np.abs(d - r) <= tolerance + 1e-9
    if not close.any():
        return 0
    match = maximum_bipartite_matching(csr_matrix(close.astype(np.int8)), perm_type="column")
    return int((match >= 0).sum())


def score_events(
    detected: Iterable[Event],
    truth: Iterable[Event],
    *,
    tolerance: float = 0.5,
    labels: Sequence[str] | None = None,
    files: Sequence[str] | None = None,
) -> EventScores:
    """Match ``detected`` to ``truth`` by onset within ``tolerance`` seconds (see the module
    docstring). ``labels``: the classes to score (default: every label in either table);
    ``files``: the recordings analysed (default: every file in either table), so a file
    with no detections still counts its misses."""
    if tolerance < 0:
        raise ParameterError(f"tolerance must be >= 0 seconds, got {tolerance}")
    det: dict[tuple[str, str], list[float]] = defaultdict(list)
    ref: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ev in detected:
        det[(file_key(ev.file), ev.label)].append(ev.start)
    for ev in truth:
        ref[(file_key(ev.file), ev.label)].append(ev.start)
    labels = sorted({k[1] for k in det} | {k[1] for k in ref}) if labels is None else list(labels)
    keys = (
        sorted({k[0] for k in det} | {k[0] for k in ref})
        if files is None
        else sorted({file_key(f) for f in files})
    )
    result = EventScores(tolerance)
    totals = [0, 0, 0]
    for label in labels:
        tp = fp = fn = 0
        for f in keys:
            d, r = det.get((f, label), []), ref.get((f, label), [])
            m = _matches(d, r, tolerance)
            tp, fp, fn = tp + m, fp + len(d) - m, fn + len(r) - m
            result.counts.append(
                {
                    "file": f,
                    "label": label,
                    "detected": len(d),
                    "true": len(r),
                    "error": len(d) - len(r),
                }
            )
        result.per_class[label] = _prf(tp, fp, fn)
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
    result.overall = _prf(*totals)
    errors = [abs(int(c["error"])) for c in result.counts]  # type: ignore[call-overload]
    result.overall["count_mae"] = float(np.mean(errors)) if errors else 0.0
    return result


@dataclass
class SegmentScores:
    """Segment-based precision, recall and F1 per class, micro-averaged (the counts of all
    classes summed) and macro-averaged (the mean of the classes' values), over
    ``segment``-second segments."""

    segment: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    micro: dict[str, float] = field(default_factory=dict)
    macro: dict[str, float] = field(default_factory=dict)
    segments: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "segment_s": self.segment,
            "segments": self.segments,
            "micro": self.micro,
            "macro": self.macro,
            "per_class": self.per_class,
        }


def _activity(events: Sequence[tuple[float, float]], n: int, segment: float) -> np.ndarray:
    """Which of ``n`` segments the ``(onset, offset)`` spans touch (sed_eval's event roll:
    ``floor(onset / segment)`` to ``ceil(offset / segment)``; 1e-9 absorbs float noise, so
    an event ending on a segment edge does not spill into the next segment)."""
    active = np.zeros(n, dtype=bool)
    for onset, offset in events:
        first = max(0, math.floor(onset / segment + 1e-9))
        last = min(n, math.ceil(offset / segment - 1e-9))
        active[first:last] = True
    return active


def score_segments(
    detected: Iterable[Event],
    truth: Iterable[Event],
    *,
    segment: float = 1.0,
    labels: Sequence[str] | None = None,
    files: Sequence[str] | None = None,
    durations: Mapping[str, float] | None = None,
) -> SegmentScores:
    """Segment-based scores of ``detected`` against ``truth`` (see the module docstring).
    ``labels`` and ``files`` as in :func:`score_events`; ``durations``: each recording's
    length in seconds (keyed by path or file name), which fixes its number of segments
    (default: the latest event end in either table, as sed_eval does).

    Written here rather than calling sed_eval: it is a few lines of numpy, and sed_eval
    needs dcase_util (slow to import, and it imports setuptools' deprecated
    pkg_resources); tests/detection/test_segment_f1.py checks both agree."""
    if not (isinstance(segment, (int, float)) and math.isfinite(segment) and segment > 0):
        raise ParameterError(f"segment length must be > 0 seconds, got {segment}")
    det: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    ref: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    ends: dict[str, float] = defaultdict(float)
    for table, events in ((det, detected), (ref, truth)):
        for ev in events:
            key = file_key(ev.file)
            table[(key, ev.label)].append((ev.start, ev.end))
            ends[key] = max(ends[key], ev.end)
    lengths = {file_key(str(k)): float(v) for k, v in (durations or {}).items()}
    labels = sorted({k[1] for k in det} | {k[1] for k in ref}) if labels is None else list(labels)
    keys = sorted(ends) if files is None else sorted({file_key(f) for f in files})
    sizes = {f: math.ceil(lengths.get(f, ends.get(f, 0.0)) / segment - 1e-9) for f in keys}
    result = SegmentScores(float(segment), segments=sum(sizes.values()))
    totals = [0, 0, 0]
    for label in labels:
        tp = fp = fn = 0
        for f in keys:
            d = _activity(det.get((f, label), []), sizes[f], segment)
            r = _activity(ref.get((f, label), []), sizes[f], segment)
            tp += int((d & r).sum())
            fp += int((d & ~r).sum())
            fn += int((~d & r).sum())
        result.per_class[label] = _prf(tp, fp, fn)
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
    result.micro = _prf(*totals)
    result.macro = {
        k: float(np.mean([m[k] for m in result.per_class.values()])) if labels else 0.0
        for k in ("precision", "recall", "f1")
    }
    return result
