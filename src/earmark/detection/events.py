"""From window scores to events and counts.

A window fires for a class when its (optionally median-smoothed) score reaches the class's
threshold, among the ``top_n`` best classes of that window, and the class is not a
background class. Each firing window stands for a span of the recording: its central
``hop`` seconds (``bounds="center"``, the default: consecutive windows tile the recording
without overlap, so an event's onset is known to half a hop) or the whole window
(``bounds="window"``). Touching spans of a class join into one event; events of a class
closer than ``merge_gap`` seconds join too; events shorter than ``min_duration`` are dropped.
An event's score is the highest window score inside it.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from earmark.audio import AUDIO_EXTENSIONS
from earmark.config import JsonConfig
from earmark.detection.scores import ScoreTrack
from earmark.errors import ParameterError

__all__ = [
    "Event",
    "EventRules",
    "count_events",
    "file_key",
    "find_events",
    "load_thresholds",
    "recording_stem",
]

Bounds = Literal["center", "window"]

MAX_EVENT_SECONDS = 86_400.0  # merge_gap and min_duration: a day is already absurd
MAX_SMOOTH = 999  # windows in the median filter (its cost grows with the length)


@dataclass(frozen=True)
class Event:
    """One detected (or reference) event: ``file``, ``start`` and ``end`` in seconds,
    ``label``, ``score`` (the highest window score inside; 1.0 for reference events)."""

    file: str
    start: float
    end: float
    label: str
    score: float = 1.0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "start_s": round(self.start, 4),
            "end_s": round(self.end, 4),
            "label": self.label,
            "score": round(self.score, 6),
        }


@dataclass(frozen=True)
class EventRules(JsonConfig):
    """How score tracks become events (see the module docstring).

    Args:
        threshold: the score a window needs to fire, for classes not in ``thresholds``.
        thresholds: per-class thresholds (label -> score).
        smooth: median filter length over the score track, in windows (1: none; odd).
        merge_gap: events of one class separated by at most this many seconds are merged.
        min_duration: events shorter than this many seconds are dropped.
        top_n: only the ``top_n`` highest-scoring classes of a window may fire (None: all).
        background: classes that are never reported (noise, "other").
        bounds: ``center`` (a window stands for its central hop) or ``window`` (all of it).
    """

    threshold: float = 0.5
    thresholds: dict[str, float] = field(default_factory=dict)
    smooth: int = 1
    merge_gap: float = 0.0
    min_duration: float = 0.0
    top_n: int | None = None
    background: tuple[str, ...] = ()
    bounds: Bounds = "center"

    def __post_init__(self) -> None:
        background = self.background
        if isinstance(background, str):  # one class, not its letters
            background = (background,)
        object.__setattr__(self, "background", tuple(background))
        try:
            object.__setattr__(self, "threshold", float(self.threshold))
            object.__setattr__(
                self, "thresholds", {str(k): float(v) for k, v in self.thresholds.items()}
            )
        except (TypeError, ValueError):
            raise ParameterError(
                f"thresholds must be numbers, got {self.threshold!r} and {self.thresholds!r}"
            ) from None
        for name, value in [("threshold", self.threshold), *self.thresholds.items()]:
            if not 0 <= value <= 1:  # also refuses NaN
                raise ParameterError(
                    f"threshold{'' if name == 'threshold' else f' of {name}'} must be a score "
                    f"between 0 and 1, got {value}"
                )
        smooth = self.smooth
        if (
            isinstance(smooth, bool)
            or not isinstance(smooth, (int, np.integer))
            or not 1 <= smooth <= MAX_SMOOTH
            or smooth % 2 == 0
        ):
            raise ParameterError(
                f"smooth must be an odd number of windows from 1 to {MAX_SMOOTH}, got {smooth!r}"
            )
        for name in ("merge_gap", "min_duration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and 0 <= value <= MAX_EVENT_SECONDS):
                raise ParameterError(
                    f"{name} must be a finite number of seconds from 0 to "
                    f"{MAX_EVENT_SECONDS:g}, got {value}"
                )
        top_n = self.top_n
        if top_n is not None and (
            isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)) or top_n < 1
        ):
            raise ParameterError(f"top_n must be a whole number >= 1, got {top_n!r}")
        if self.bounds not in ("center", "window"):
            raise ParameterError(f"bounds must be center or window, got {self.bounds!r}")

    def check_classes(self, classes: Sequence[str]) -> None:
        """Refuse thresholds or background classes the model does not know."""
        unknown = (set(self.thresholds) | set(self.background)) - set(classes)
        if unknown:
            raise ParameterError(
                f"unknown classes {', '.join(sorted(unknown))}; the model knows "
                f"{', '.join(classes)}"
            )

    def class_thresholds(self, classes: Sequence[str]) -> np.ndarray:
        return np.array([self.thresholds.get(c, self.threshold) for c in classes], np.float64)


def recording_stem(name: str) -> str:
    """A file name without its audio extension (``rec.2024-05-01.wav`` ->
    ``rec.2024-05-01``); a name without a known audio extension is kept whole
    (``rec.2024-05-01`` stays itself, not ``rec``)."""
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix and suffix.lower() in AUDIO_EXTENSIONS else name


def file_key(path: str) -> str:
    """How files are matched between tables: the name without folders and without its audio
    extension (:func:`recording_stem`)."""
    return recording_stem(Path(path.replace("\\", "/")).name)


def load_thresholds(path: str | Path) -> dict[str, float]:
    """Per-class thresholds from a JSON object (``{"label": 0.8}``) or a CSV with columns
    ``label,threshold``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read thresholds ({exc.strerror})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("expected an object of label -> threshold")
            return {str(k): float(v) for k, v in data.items()}
        rows = list(csv.DictReader(text.splitlines()))
        return {row["label"]: float(row["threshold"]) for row in rows}
    except (ValueError, KeyError, TypeError) as exc:
        raise ParameterError(
            f"{path}: thresholds must be JSON {{label: score}} or a CSV with columns "
            f"label,threshold ({exc})"
        ) from None


def _median(scores: np.ndarray, size: int) -> np.ndarray:
    if size == 1 or len(scores) < 2:
        return scores
    from scipy.ndimage import median_filter

    return median_filter(scores, size=(size, 1), mode="nearest")


def firing(track: ScoreTrack, rules: EventRules) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed scores ``[windows, classes]`` and the boolean mask of firing windows."""
    rules.check_classes(track.classes)
    scores = _median(track.scores.astype(np.float64), rules.smooth)
    mask = scores >= rules.class_thresholds(track.classes)[None, :]
    if rules.top_n is not None and rules.top_n < scores.shape[1]:
        rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1, kind="stable")
        mask &= rank < rules.top_n
    for name in rules.background:
        mask[:, track.classes.index(name)] = False
    return scores, mask


def find_events(track: ScoreTrack, rules: EventRules | None = None) -> list[Event]:
    """The events of one score track, sorted by start time then label."""
    rules = rules or EventRules()
    scores, mask = firing(track, rules)
    starts = track.starts.astype(np.float64)
    if rules.bounds == "center":
        side = (track.window - min(track.hop, track.window)) / 2
        span_start = starts + side
        span_end = starts + side + min(track.hop, track.window)
    else:
        span_start, span_end = starts, starts + track.window
    span_end = np.minimum(span_end, track.duration)
    span_start = np.minimum(span_start, span_end)
    events: list[Event] = []
    for c, label in enumerate(track.classes):
        idx = np.flatnonzero(mask[:, c])
        current: list[float] | None = None  # [start, end, score]
        for i in idx:
            s, e, v = float(span_start[i]), float(span_end[i]), float(scores[i, c])
            if current is not None and s <= current[1] + rules.merge_gap + 1e-9:
                current[1] = max(current[1], e)
                current[2] = max(current[2], v)
                continue
            if current is not None:
                events.append(Event(track.path, current[0], current[1], label, current[2]))
            current = [s, e, v]
        if current is not None:
            events.append(Event(track.path, current[0], current[1], label, current[2]))
    kept = [ev for ev in events if ev.duration >= rules.min_duration - 1e-9]
    return sorted(kept, key=lambda ev: (ev.start, ev.label))


def count_events(
    events: Iterable[Event], files: Sequence[str], labels: Sequence[str]
) -> list[dict[str, object]]:
    """Rows ``{file, label, n}`` for every file and label (zeros included)."""
    counts = {(f, lab): 0 for f in files for lab in labels}
    for ev in events:
        if (ev.file, ev.label) in counts:
            counts[(ev.file, ev.label)] += 1
    return [{"file": f, "label": lab, "n": n} for (f, lab), n in counts.items()]


def events_to_rows(events: Iterable[Event]) -> list[dict[str, object]]:
    """Events as plain rows (``file, start_s, end_s, label, score``)."""
    return [ev.to_dict() for ev in events]


def event_from_row(row: dict[str, object]) -> Event:
    """The inverse of :meth:`Event.to_dict`."""
    return Event(
        str(row["file"]),
        float(row["start_s"]),  # type: ignore[arg-type]
        float(row["end_s"]),  # type: ignore[arg-type]
        str(row["label"]),
        float(row.get("score", 1.0)),  # type: ignore[arg-type]
    )
