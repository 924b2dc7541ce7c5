"""Choosing event rules on annotated (validation) recordings: the shared smoothing / merge /
minimum-duration settings and a threshold per class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from earmark.detection import Windowing
from earmark.detection.events import Event, EventRules
from earmark.detection.scoring import best_event_rules, best_event_thresholds
from earmark.detection.tables import write_scores
from earmark.errors import EarmarkError
from earmark.predict import ScoreTrack

HOP = 0.125
WINDOW = 0.5


def _run(folder: Path) -> list[Event]:
    """A detection folder whose "call" events (2 s each) have one low window in their middle
    (unsmoothed, each splits in two: the second half is a false positive 1 s late), and
    single-window spikes elsewhere; the reference events are the 2-s calls."""
    duration = 60.0
    starts = np.arange(0.0, duration - WINDOW + 1e-9, HOP)
    scores = np.full((len(starts), 2), 0.05, np.float32)
    reference = []
    for onset in np.arange(5.0, 55.0, 10.0):
        inside = (starts + WINDOW / 2 >= onset) & (starts + WINDOW / 2 < onset + 2.0)
        scores[inside, 0] = 0.9
        scores[np.flatnonzero(inside)[len(np.flatnonzero(inside)) // 2], 0] = 0.0  # the dip
        reference.append(Event("rec.wav", float(onset), float(onset + 2.0), "call"))
        scores[np.argmin(np.abs(starts - (onset + 5.0))), 0] = 0.95  # a spike, no call
    scores[:, 1] = 1.0 - scores[:, 0]
    track = ScoreTrack("rec.wav", ["call", "other"], starts, WINDOW, HOP, scores, duration)
    folder.mkdir()
    write_scores(folder / "scores.parquet", [track])
    record = {
        "windowing": Windowing(window=WINDOW, hop=HOP).to_dict(),
        "rules": EventRules(background=("other",)).to_dict(),
        "classes": ["call", "other"],
    }
    (folder / "detection.json").write_text(json.dumps(record))
    return reference


def test_the_rules_that_undo_fragments_and_spikes_are_chosen(tmp_path: Path) -> None:
    reference = _run(tmp_path / "det")
    plain = best_event_thresholds(tmp_path / "det", reference)
    assert plain["call"]["f1"] < 0.7  # every call split in two, every spike an event
    rules, per = best_event_rules(tmp_path / "det", reference)
    assert per["call"]["f1"] == 1.0
    # the first in grid order that works: no smoothing, the halves merged, spikes dropped
    assert (rules.smooth, rules.merge_gap, rules.min_duration) == (1, 0.2, 0.2)
    assert rules.thresholds == {"call": per["call"]["threshold"]}
    assert rules.background == ("other",)  # the run's own rules otherwise
    smoothed, per = best_event_rules(tmp_path / "det", reference, grid={"smooth": (1, 3)})
    assert per["call"]["f1"] == 1.0 and smoothed.smooth == 3


def test_a_grid_of_a_setting_rules_do_not_have_is_refused(tmp_path: Path) -> None:
    reference = _run(tmp_path / "det")
    for grid in ({"smoothing": (1, 3)}, {"threshold": (0.5,)}, {"smooth": ()}):
        with pytest.raises(EarmarkError):
            best_event_rules(tmp_path / "det", reference, grid=grid)
    with pytest.raises(EarmarkError, match=r"detection\.json"):
        best_event_rules(tmp_path, reference)
