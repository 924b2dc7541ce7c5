"""Score a detection run against a reference: what ``earmark score-events`` does.

The run's own record (``detection.json``) says which classes it reported (background
classes left out) and which recordings it analysed (so a recording with no detections still
counts its misses); the threshold sweep recomputes the events from the run's stored window
scores (``scores.parquet``) with the run's own rules at each threshold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.detection.events import Event, EventRules, find_events
from earmark.detection.run import read_record
from earmark.detection.tables import read_events, read_tracks
from earmark.detection.truth import EventScores, read_truth, score_events
from earmark.errors import EarmarkError

__all__ = ["RunScores", "score_run", "sweep_thresholds"]

#: The thresholds a sweep tries.
SWEEP = tuple(float(t) for t in np.round(np.arange(0.05, 1.0, 0.05), 2))


@dataclass
class RunScores:
    """Event scores of a run (:class:`EventScores`) and, when asked, the sweep: one row per
    threshold with precision, recall and F1 over all classes."""

    scores: EventScores
    sweep: list[dict[str, float]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, float] | None:
        """The sweep row of the highest F1 (the lowest threshold among ties)."""
        return max(self.sweep, key=lambda r: r["f1"]) if self.sweep else None


def score_run(
    events: str | Path, truth: str | Path, *, tolerance: float = 0.5, sweep: bool = False
) -> RunScores:
    """Score ``events`` (the ``events.csv`` of a run) against ``truth`` (CSV, a Raven table
    or a folder of them); ``sweep``: also for every threshold of :data:`SWEEP`."""
    events = Path(events)
    detected, reference = read_events(events), read_truth(truth)
    record = read_record(events.parent)
    labels = files = None
    if record is not None:
        labels = [c for c in record["classes"] if c not in record["rules"]["background"]]
        files = list(record.get("durations", {})) or None
    result = score_events(detected, reference, tolerance=tolerance, labels=labels, files=files)
    rows = []
    if sweep:
        if record is None:
            raise EarmarkError(f"{events.parent}: --sweep needs the detection.json of a run")
        rows = sweep_thresholds(
            events.parent, record, reference, tolerance=tolerance, labels=labels, files=files
        )
    return RunScores(result, rows)


def sweep_thresholds(
    folder: str | Path,
    record: dict[str, Any],
    reference: list[Event],
    *,
    tolerance: float = 0.5,
    labels: list[str] | None = None,
    files: list[str] | None = None,
    thresholds: tuple[float, ...] = SWEEP,
) -> list[dict[str, float]]:
    """Precision, recall and F1 over all classes at each threshold, the events recomputed
    from the run's window scores with its own rules (per-class thresholds set aside)."""
    folder = Path(folder)
    if not (folder / "scores.parquet").exists():
        raise EarmarkError(f"{folder}: a threshold sweep needs the run's scores.parquet")
    tracks = read_tracks(folder)
    base = EventRules.from_dict(record["rules"])
    rows = []
    for threshold in thresholds:
        rules = dataclasses.replace(base, threshold=threshold, thresholds={})
        found = [ev for t in tracks for ev in find_events(t, rules)]
        o = score_events(found, reference, tolerance=tolerance, labels=labels, files=files).overall
        rows.append({"threshold": threshold, **{k: o[k] for k in ("precision", "recall", "f1")}})
    return rows
