"""PSDS, the polyphonic sound detection score of DCASE, from a detection's window scores.

PSDS (Bilen et al., ICASSP 2020) scores a detector over all its thresholds at once: each
threshold gives events, a detection counts when enough of it lies on reference events of
its class (``dtc``), a reference event counts as found when enough of it is covered
(``gtc``), and the true-positive rate is drawn against the false positives per hour (the
effective FPR, eFPR; with ``alpha_ct`` > 0, cross-triggers on other classes' events, judged
by ``cttc``, are added). The score is the area under that ROC up to ``max_efpr`` per hour,
normalised to 0..1, with the classes' spread subtracted (``alpha_st`` times their standard
deviation). The defaults are DCASE's (scenario 1 of the DCASE 2021-2023 task 4).

The computation is ``sed_scores_eval``'s (the exact, threshold-free one of Ebbers et al.,
ICASSP 2022; the ``sed-scores-eval-np2`` build works with numpy 2). It needs scores on
frames that tile the recording; ``earmark detect`` scores overlapping windows
(``scores.parquet``: ``file, start_s, end_s`` and a column per class), so each window stands
for the stretch between the midpoints to its neighbours' centres (with a regular hop: its
central hop, the same span ``find_events`` gives it), the first from the recording's start
and the last to its end.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.config import JsonConfig
from earmark.detection.events import Event, file_key
from earmark.errors import ParameterError

__all__ = ["PsdsResult", "PsdsSettings", "psds", "psds_of_run", "score_frames"]

#: The columns of a score table that are not classes.
INDEX_COLUMNS = ("file", "start_s", "end_s")
#: Decimals of the times handed to sed_scores_eval (its own default): frame edges that
#: differ below a microsecond are one edge.
TIME_DECIMALS = 6


@dataclass(frozen=True)
class PsdsSettings(JsonConfig):
    """How PSDS judges detections (see the module docstring); DCASE's defaults.

    Args:
        dtc: detection tolerance criterion: the fraction of a detection that must lie on
            reference events of its class for it to count as a true detection.
        gtc: ground-truth intersection criterion: the fraction of a reference event that
            true detections must cover for it to count as found.
        cttc: cross-trigger tolerance criterion: the fraction of a false detection on
            another class's event that makes it a cross-trigger (used when ``alpha_ct`` > 0).
        alpha_ct: weight of the cross-trigger rate added to the false positive rate.
        alpha_st: weight of the standard deviation over classes subtracted from their mean.
        max_efpr: the effective false positives per hour up to which the ROC is integrated.
    """

    dtc: float = 0.7
    gtc: float = 0.7
    cttc: float = 0.3
    alpha_ct: float = 0.0
    alpha_st: float = 1.0
    max_efpr: float = 100.0

    def __post_init__(self) -> None:
        for name in ("dtc", "gtc", "cttc", "alpha_ct", "alpha_st", "max_efpr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"PSDS {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ParameterError(f"PSDS {name} must be finite, got {value}")
            object.__setattr__(self, name, float(value))
        for name in ("dtc", "gtc", "cttc"):
            if not 0 < getattr(self, name) <= 1:
                raise ParameterError(
                    f"PSDS {name} must be a fraction in (0, 1], got {getattr(self, name)}"
                )
        for name in ("alpha_ct", "alpha_st"):
            if getattr(self, name) < 0:
                raise ParameterError(f"PSDS {name} must be >= 0, got {getattr(self, name)}")
        if self.max_efpr <= 0:
            raise ParameterError(
                f"PSDS max_efpr must be > 0 false positives per hour, got {self.max_efpr}"
            )


@dataclass
class PsdsResult:
    """PSDS over ``classes`` and per class (each class's own ROC, no spread term), the
    effective ROC (``roc``: points ``{efpr, tpr}``, eFPR per hour, up to ``max_efpr``),
    the classes left out because the reference has no event of theirs (PSDS needs at
    least one per class), and how many recordings and hours were scored."""

    settings: PsdsSettings
    psds: float
    per_class: dict[str, float] = field(default_factory=dict)
    roc: list[dict[str, float]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    no_reference: list[str] = field(default_factory=list)
    files: int = 0
    hours: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "psds": self.psds,
            "per_class": self.per_class,
            "settings": self.settings.to_dict(),
            "classes": self.classes,
            "no_reference": self.no_reference,
            "files": self.files,
            "hours": self.hours,
            "roc": self.roc,
        }


def _sed_scores_eval():
    """The sed_scores_eval modules PSDS needs, or a one-line error when it is missing."""
    try:
        with warnings.catch_warnings():  # it imports sed_eval -> dcase_util -> pkg_resources
            warnings.simplefilter("ignore")
            from sed_scores_eval import intersection_based
            from sed_scores_eval.base_modules.scores import create_score_dataframe
    except ImportError as exc:
        raise ParameterError(
            f"PSDS needs sed_scores_eval (pip install sed-scores-eval-np2): {exc}"
        ) from None
    return intersection_based, create_score_dataframe


def _frame_class():
    """A DataFrame whose ``to_numpy`` returns a writable array.

    sed_scores_eval 0.0.4 hands ``frame[classes].to_numpy()`` to a Cython function that
    needs a writable buffer; under pandas 3's copy-on-write that array is a read-only view
    (fixed upstream in fgnt/sed_scores_eval#17, not in the -np2 build). A subclass is
    pandas's own extension point, so the library runs unchanged."""
    import pandas as pd

    class WritableFrame(pd.DataFrame):
        @property
        def _constructor(self):
            return WritableFrame

        def to_numpy(self, *args: Any, **kwargs: Any) -> np.ndarray:
            return np.array(super().to_numpy(*args, **kwargs))

    return WritableFrame


def score_frames(
    table: Any,
    *,
    classes: Sequence[str] | None = None,
    durations: Mapping[str, float] | None = None,
    source: str = "scores",
) -> tuple[dict[str, Any], dict[str, float]]:
    """sed_scores_eval's score frames (``onset, offset`` and a column per class, frames
    tiling each recording: see the module docstring) from a window score table (pandas:
    ``file, start_s, end_s`` and a column per class, as in ``scores.parquet``), keyed by
    :func:`file_key`, and each recording's duration (``durations``, keyed by path or file
    key, else its last window's end). ``classes``: the columns to keep (default: all)."""
    _, create_score_dataframe = _sed_scores_eval()
    frame_class = _frame_class()
    missing = [c for c in INDEX_COLUMNS if c not in table.columns]
    if missing:
        raise ParameterError(
            f"{source}: not a window score table (no {', '.join(missing)} column; "
            "earmark detect writes scores.parquet)"
        )
    all_classes = [c for c in table.columns if c not in INDEX_COLUMNS]
    classes = all_classes if classes is None else list(classes)
    unknown = [c for c in classes if c not in all_classes]
    if unknown:
        raise ParameterError(
            f"{source}: no scores for {', '.join(unknown)}; it has {', '.join(all_classes)}"
        )
    if not classes:
        raise ParameterError(f"{source}: no class columns to score")
    known = {file_key(str(k)): float(v) for k, v in (durations or {}).items()}
    frames: dict[str, Any] = {}
    lengths: dict[str, float] = {}
    paths: dict[str, str] = {}
    for name, rows in table.groupby("file", sort=False):
        key = file_key(str(name))
        if key in paths:
            raise ParameterError(
                f"{source}: two recordings are both named {key} ({paths[key]}, {name}); "
                "scores and reference are matched by file name"
            )
        paths[key] = str(name)
        rows = rows.sort_values("start_s", kind="stable")
        starts = rows["start_s"].to_numpy(np.float64)
        ends = rows["end_s"].to_numpy(np.float64)
        scores = rows[classes].to_numpy(np.float64)
        if not (np.isfinite(starts).all() and np.isfinite(ends).all()):
            raise ParameterError(f"{source}: {name} has window times that are not numbers")
        if not np.isfinite(scores).all():
            raise ParameterError(f"{source}: {name} has scores that are NaN or infinite")
        if len(np.unique(starts)) != len(starts):
            raise ParameterError(f"{source}: {name} has two windows starting at the same time")
        duration = known.get(key, float(ends.max()))
        window = float((ends - starts).max())  # the last window may be cut at the end
        centres = starts + window / 2
        edges = np.concatenate(
            [[min(0.0, starts[0])], (centres[1:] + centres[:-1]) / 2, [max(duration, ends[-1])]]
        )
        # frames narrower than sed_scores_eval's time resolution would tie their edges
        edges = np.round(edges, TIME_DECIMALS)
        keep = np.concatenate([np.diff(edges) > 0, [True]])[:-1]
        if not keep.all():
            scores = scores[keep]
            edges = np.concatenate([edges[:-1][keep], edges[-1:]])
        frames[key] = frame_class(create_score_dataframe(scores, edges, classes))
        lengths[key] = float(edges[-1])
    return frames, lengths


def psds(
    table: Any,
    truth: Iterable[Event],
    *,
    settings: PsdsSettings | None = None,
    classes: Sequence[str] | None = None,
    durations: Mapping[str, float] | None = None,
    source: str = "scores",
) -> PsdsResult:
    """PSDS of the window score table ``table`` (see :func:`score_frames`) against the
    reference events ``truth``. ``classes``: the classes to score (default: every score
    column; a detection's background classes should be left out); classes without a
    reference event are reported in ``no_reference`` and left out. Every reference class
    must have scores and every reference recording must be in the table."""
    settings = settings or PsdsSettings()
    intersection_based, _ = _sed_scores_eval()
    reference = list(truth)
    frames, lengths = score_frames(table, classes=classes, durations=durations, source=source)
    if not frames:
        raise ParameterError(f"{source}: the score table has no windows")
    classes = list(next(iter(frames.values())).columns[2:])
    labels = sorted({ev.label for ev in reference})
    absent = [lab for lab in labels if lab not in classes]
    if absent:
        raise ParameterError(
            f"the reference has events of {', '.join(absent)}, which {source} has no scores "
            f"for (it scores {', '.join(classes)})"
        )
    unscored = sorted({file_key(ev.file) for ev in reference} - set(frames))
    if unscored:
        more = f" and {len(unscored) - 3} more" if len(unscored) > 3 else ""
        raise ParameterError(
            f"the reference has events in {', '.join(unscored[:3])}{more}, which {source} "
            "has no scores for (PSDS needs every reference recording scored)"
        )
    ground_truth: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for ev in reference:
        if ev.end <= ev.start:
            raise ParameterError(
                f"reference event {ev.label} in {ev.file} at {ev.start:g} s does not end after "
                "it starts"
            )
        key = file_key(ev.file)
        if ev.start >= lengths[key]:
            raise ParameterError(
                f"reference event {ev.label} in {ev.file} starts at {ev.start:g} s, after the "
                f"recording's end ({lengths[key]:g} s)"
            )
        ground_truth[key].append((ev.start, min(ev.end, lengths[key]), ev.label))
    scored = [c for c in classes if c in labels]
    if not scored:
        raise ParameterError(f"the reference has no events of {', '.join(classes)}")
    if scored != classes:
        frames = {k: f[["onset", "offset", *scored]] for k, f in frames.items()}
    ground_truth = {k: ground_truth.get(k, []) for k in frames}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warnings of a class's empty curve ends
        value, single, (tpr, efpr), _ = intersection_based.psds(
            scores=frames,
            ground_truth=ground_truth,
            audio_durations=lengths,
            dtc_threshold=settings.dtc,
            gtc_threshold=settings.gtc,
            # sed_scores_eval refuses a cttc without cross-trigger weight
            cttc_threshold=settings.cttc if settings.alpha_ct > 0 else None,
            alpha_ct=settings.alpha_ct,
            alpha_st=settings.alpha_st,
            unit_of_time="hour",
            max_efpr=settings.max_efpr,
            time_decimals=TIME_DECIMALS,
        )
    keep = np.asarray(efpr) <= settings.max_efpr
    roc = [
        {"efpr": float(x), "tpr": float(y)}
        for x, y in zip(np.asarray(efpr)[keep], np.asarray(tpr)[keep], strict=True)
    ]
    return PsdsResult(
        settings=settings,
        psds=float(value),
        per_class={c: float(single[c]) for c in scored},
        roc=roc,
        classes=scored,
        no_reference=[c for c in classes if c not in labels],
        files=len(frames),
        hours=sum(lengths.values()) / 3600,
    )


def psds_of_run(
    scores: str | Path,
    truth: Iterable[Event],
    *,
    settings: PsdsSettings | None = None,
) -> PsdsResult:
    """PSDS of a detection run from its ``scores.parquet`` (``scores``); the run's record
    (``detection.json`` beside it), when there is one, gives the recordings' durations and
    the background classes, which are not scored."""
    from earmark.detection.run import read_record
    from earmark.detection.tables import read_scores

    scores = Path(scores)
    if not scores.is_file():
        raise ParameterError(
            f"{scores}: no such score table (earmark detect writes scores.parquet beside "
            "events.csv)"
        )
    table = read_scores(scores)
    record = read_record(scores.parent)
    classes = durations = None
    if record is not None:
        background = set(record["rules"].get("background", ()))
        classes = [c for c in table.columns if c not in INDEX_COLUMNS and c not in background]
        durations = record.get("durations") or None
    return psds(
        table, truth, settings=settings, classes=classes, durations=durations, source=str(scores)
    )
