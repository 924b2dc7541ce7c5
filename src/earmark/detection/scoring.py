"""Score a detection run against a reference: what ``earmark score-events`` does.

The run's own record (``detection.json``) says which classes it reported (background
classes left out) and which recordings it analysed (so a recording with no detections still
counts its misses); the threshold sweep recomputes the events from the run's stored window
scores (``scores.parquet``) with the run's own rules at each threshold. Beside the event
scores: segment-based scores of the same events (:func:`earmark.detection.truth.
score_segments`) and, when asked, PSDS from the window scores (:mod:`earmark.detection.psds`).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.detection.events import Event, EventRules, find_events
from earmark.detection.psds import PsdsResult, PsdsSettings, psds_of_run
from earmark.detection.run import read_record
from earmark.detection.tables import read_events, read_tracks
from earmark.detection.truth import (
    EventScores,
    SegmentScores,
    read_truth,
    score_events,
    score_segments,
)
from earmark.errors import EarmarkError

__all__ = [
    "RULES_GRID",
    "RunScores",
    "best_event_rules",
    "best_event_thresholds",
    "score_run",
    "sweep_thresholds",
]

#: The thresholds a sweep tries.
SWEEP = tuple(float(t) for t in np.round(np.arange(0.05, 1.0, 0.05), 2))
#: The event rules :func:`best_event_rules` tries (beside the per-class threshold): median
#: smoothing in windows, merge gap and minimum duration in seconds. Small on purpose: a few
#: validation recordings cannot tell many combinations apart without overfitting.
RULES_GRID: dict[str, tuple[Any, ...]] = {
    "smooth": (1, 3, 5),
    "merge_gap": (0.0, 0.1, 0.2, 0.3),
    "min_duration": (0.0, 0.1, 0.2, 0.3),
}


@dataclass
class RunScores:
    """Event scores of a run (:class:`EventScores`), its segment scores
    (:class:`SegmentScores`, unless turned off) and, when asked, the sweep (one row per
    threshold with precision, recall and F1 over all classes) and PSDS."""

    scores: EventScores
    sweep: list[dict[str, float]] = field(default_factory=list)
    segments: SegmentScores | None = None
    psds: PsdsResult | None = None

    @property
    def best(self) -> dict[str, float] | None:
        """The sweep row of the highest F1 (the lowest threshold among ties)."""
        return max(self.sweep, key=lambda r: r["f1"]) if self.sweep else None


def score_run(
    events: str | Path,
    truth: str | Path,
    *,
    tolerance: float = 0.5,
    sweep: bool = False,
    segment: float | None = 1.0,
    psds: PsdsSettings | bool | None = None,
    scores: str | Path | None = None,
) -> RunScores:
    """Score ``events`` (the ``events.csv`` of a run) against ``truth`` (CSV, a Raven table
    or a folder of them); ``sweep``: also for every threshold of :data:`SWEEP`;
    ``segment``: the segment length of the segment-based scores (None: none); ``psds``:
    also PSDS (``True``: DCASE's settings) from the window scores ``scores`` (default: the
    run's ``scores.parquet`` beside ``events``)."""
    events = Path(events)
    if psds is True:
        psds = PsdsSettings()
    if psds:  # before the events are read: a missing score table is the first error
        scores = Path(scores) if scores is not None else events.parent / "scores.parquet"
        if not scores.is_file():
            raise EarmarkError(
                f"{scores}: no such score table; PSDS needs the window scores "
                "(earmark detect writes scores.parquet beside events.csv)"
            )
    detected, reference = read_events(events), read_truth(truth)
    record = read_record(events.parent)
    labels = files = durations = None
    if record is not None:
        labels = [c for c in record["classes"] if c not in record["rules"]["background"]]
        files = list(record.get("durations", {})) or None
        durations = record.get("durations") or None
    result = score_events(detected, reference, tolerance=tolerance, labels=labels, files=files)
    by_segment = None
    if segment is not None:
        by_segment = score_segments(
            detected, reference, segment=segment, labels=labels, files=files, durations=durations
        )
    by_psds = None
    if isinstance(psds, PsdsSettings) and scores is not None:  # (both set above)
        by_psds = psds_of_run(scores, reference, settings=psds)
    rows = []
    if sweep:
        if record is None:
            raise EarmarkError(f"{events.parent}: --sweep needs the detection.json of a run")
        rows = sweep_thresholds(
            events.parent, record, reference, tolerance=tolerance, labels=labels, files=files
        )
    return RunScores(result, rows, by_segment, by_psds)


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


def best_event_thresholds(
    folder: str | Path,
    reference: list[Event],
    *,
    tolerance: float = 0.5,
    labels: list[str] | None = None,
    files: list[str] | None = None,
    thresholds: tuple[float, ...] = SWEEP,
) -> dict[str, dict[str, float]]:
    """Per class, the threshold of the highest event F1 (the lowest among ties) on a
    detection run over annotated recordings (validation recordings: the chosen thresholds
    then go into :class:`EventRules` ``thresholds`` for the test or field recordings). Events
    are recomputed from the run's window scores with its own rules; returns ``{class:
    {"threshold", "precision", "recall", "f1"}}``."""
    folder = Path(folder)
    record = read_record(folder)
    if record is None or not (folder / "scores.parquet").exists():
        raise EarmarkError(f"{folder}: choosing thresholds needs a run's detection.json and scores")
    tracks = read_tracks(folder)
    base = EventRules.from_dict(record["rules"])
    if labels is None:
        labels = [c for c in record["classes"] if c not in base.background]
    return _best_thresholds(tracks, base, reference, tolerance, labels, files, thresholds)


def _best_thresholds(
    tracks: list[Any],
    base: EventRules,
    reference: list[Event],
    tolerance: float,
    labels: list[str],
    files: list[str] | None,
    thresholds: tuple[float, ...],
) -> dict[str, dict[str, float]]:
    best: dict[str, dict[str, float]] = {}
    for threshold in thresholds:
        rules = dataclasses.replace(base, threshold=threshold, thresholds={})
        found = [ev for t in tracks for ev in find_events(t, rules)]
        per = score_events(
            found, reference, tolerance=tolerance, labels=labels, files=files
        ).per_class
        for label in labels:
            row = per.get(label)
            if row is not None and (label not in best or row["f1"] > best[label]["f1"]):
                best[label] = {
                    "threshold": threshold,
                    **{k: row[k] for k in ("precision", "recall", "f1")},
                }
    return best


def best_event_rules(
    folder: str | Path,
    reference: list[Event],
    *,
    tolerance: float = 0.5,
    labels: list[str] | None = None,
    files: list[str] | None = None,
    thresholds: tuple[float, ...] = SWEEP,
    grid: dict[str, tuple[Any, ...]] | None = None,
) -> tuple[EventRules, dict[str, dict[str, float]]]:
    """The event rules of the highest mean event F1 over ``labels`` on a detection run over
    annotated recordings (validation recordings), and each class's scores under them.

    Searched: every combination of ``grid`` (:data:`RULES_GRID`: smoothing, merge gap and
    minimum duration, shared by all classes, as :class:`EventRules` holds them) and, within
    each, the best threshold per class (as :func:`best_event_thresholds`). Ties go to the
    first combination in grid order (the least smoothing, merging and pruning). The rules
    returned are the run's own with those settings and per-class ``thresholds``: give them
    to the detection of the test or field recordings."""
    folder = Path(folder)
    record = read_record(folder)
    if record is None or not (folder / "scores.parquet").exists():
        raise EarmarkError(
            f"{folder}: choosing event rules needs a run's detection.json and scores"
        )
    grid = dict(RULES_GRID if grid is None else grid)
    unknown = sorted(set(grid) - {f.name for f in dataclasses.fields(EventRules)})
    if unknown or "thresholds" in grid or "threshold" in grid:
        raise EarmarkError(f"event rules have no setting {unknown or ['threshold']} to search")
    tracks = read_tracks(folder)
    base = EventRules.from_dict(record["rules"])
    if labels is None:
        labels = [c for c in record["classes"] if c not in base.background]
    names = list(grid)
    chosen: tuple[float, EventRules, dict[str, dict[str, float]]] | None = None
    for values in itertools.product(*(grid[n] for n in names)):
        rules = dataclasses.replace(base, **dict(zip(names, values, strict=True)))
        per = _best_thresholds(tracks, rules, reference, tolerance, labels, files, thresholds)
        mean = float(np.mean([per[c]["f1"] for c in labels])) if per else 0.0
        if chosen is None or mean > chosen[0] + 1e-12:
            chosen = (mean, rules, per)
    if chosen is None:
        raise EarmarkError(f"event rules: nothing to search in the grid {grid}")
    _, rules, per = chosen
    rules = dataclasses.replace(rules, thresholds={c: per[c]["threshold"] for c in per})
    return rules, per
