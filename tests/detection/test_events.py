from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from earmark.detection.events import EventRules, count_events, find_events, load_thresholds
from earmark.detection.scores import ScoreTrack
from earmark.errors import ParameterError


def track(scores: list[list[float]], *, window: float = 1.0, hop: float = 0.5) -> ScoreTrack:
    s = np.asarray(scores, dtype=np.float32)
    starts = np.arange(len(s)) * hop
    duration = float(starts[-1] + window)
    return ScoreTrack("rec.wav", ["bird", "frog", "noise"], starts, window, hop, s, duration)


SCORES = [  # windows every 0.5 s, 1 s long
    [0.9, 0.0, 0.1],  # 0.0
    [0.95, 0.0, 0.05],  # 0.5
    [0.1, 0.0, 0.9],  # 1.0
    [0.8, 0.7, 0.0],  # 1.5
    [0.1, 0.1, 0.8],  # 2.0
    [0.1, 0.1, 0.8],  # 2.5
    [0.85, 0.1, 0.05],  # 3.0
]


def spans(events) -> list[tuple[str, float, float]]:
    return [(e.label, round(e.start, 3), round(e.end, 3)) for e in events]


def test_consecutive_windows_merge_and_centre_bounds_tile_the_recording() -> None:
    got = find_events(track(SCORES), EventRules(threshold=0.6, background=("noise",)))
    assert spans(got) == [
        ("bird", 0.25, 1.25),  # windows 0 and 0.5: their central halves
        ("bird", 1.75, 2.25),
        ("frog", 1.75, 2.25),
        ("bird", 3.25, 3.75),
    ]
    assert got[0].score == pytest.approx(0.95)
    whole = find_events(
        track(SCORES), EventRules(threshold=0.6, bounds="window", background=("noise",))
    )
    # whole windows: touching windows join (0.5 + 1.0 ends where 1.5 starts)
    assert spans(whole) == [("bird", 0.0, 2.5), ("frog", 1.5, 2.5), ("bird", 3.0, 4.0)]


def test_merge_gap_min_duration_top_n_and_per_class_thresholds() -> None:
    rules = EventRules(threshold=0.6, background=("noise",), merge_gap=0.5)
    assert spans(find_events(track(SCORES), rules))[0] == ("bird", 0.25, 2.25)
    rules = EventRules(threshold=0.6, background=("noise",), min_duration=0.75)
    assert spans(find_events(track(SCORES), rules)) == [("bird", 0.25, 1.25)]
    rules = EventRules(threshold=0.6, background=("noise",), top_n=1)
    assert "frog" not in {e.label for e in find_events(track(SCORES), rules)}
    rules = EventRules(threshold=0.6, thresholds={"bird": 0.88}, background=("noise",))
    assert spans(find_events(track(SCORES), rules)) == [("bird", 0.25, 1.25), ("frog", 1.75, 2.25)]
    with pytest.raises(ParameterError, match="unknown classes owl"):
        find_events(track(SCORES), EventRules(thresholds={"owl": 0.5}))


def test_median_smoothing_removes_a_one_window_blip() -> None:
    s = [[0.1, 0, 0]] * 3 + [[0.9, 0, 0]] + [[0.1, 0, 0]] * 3
    assert len(find_events(track(s), EventRules(threshold=0.5))) == 1
    assert find_events(track(s), EventRules(threshold=0.5, smooth=3)) == []
    with pytest.raises(ParameterError, match="odd"):
        EventRules(smooth=2)


def test_background_is_never_reported_and_counts_include_zeros() -> None:
    got = find_events(track(SCORES), EventRules(threshold=0.6, background=("noise",)))
    assert "noise" not in {e.label for e in got}
    rows = count_events(got, ["rec.wav", "quiet.wav"], ["bird", "frog"])
    assert {(r["file"], r["label"]): r["n"] for r in rows} == {
        ("rec.wav", "bird"): 3,
        ("rec.wav", "frog"): 1,
        ("quiet.wav", "bird"): 0,
        ("quiet.wav", "frog"): 0,
    }


def test_thresholds_from_csv_or_json(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("label,threshold\nbird,0.7\nfrog,0.4\n")
    (tmp_path / "t.json").write_text(json.dumps({"bird": 0.7}))
    assert load_thresholds(tmp_path / "t.csv") == {"bird": 0.7, "frog": 0.4}
    assert load_thresholds(tmp_path / "t.json") == {"bird": 0.7}
    (tmp_path / "bad.csv").write_text("name,value\nbird,x\n")
    with pytest.raises(ParameterError, match=r"bad\.csv"):
        load_thresholds(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"threshold": float("nan")}, "threshold must be a score between 0 and 1"),
        ({"threshold": 1.5}, "threshold must be a score between 0 and 1"),
        ({"thresholds": {"bird": -0.1}}, "threshold of bird must be"),
        ({"merge_gap": float("inf")}, "merge_gap must be a finite number"),
        ({"min_duration": -1.0}, "min_duration must be a finite number"),
        ({"min_duration": float("nan")}, "min_duration must be a finite number"),
        ({"merge_gap": 1e300}, "merge_gap must be a finite number of seconds from 0 to 86400"),
        ({"merge_gap": "soon"}, "merge_gap must be a number of seconds"),
        ({"threshold": "high"}, "thresholds must be numbers"),
        ({"smooth": 10**9 + 1}, "smooth must be an odd number of windows from 1 to 999"),
        ({"smooth": 0}, "smooth must be an odd number"),
        ({"smooth": 3.0}, "smooth must be an odd number"),
        ({"top_n": 0}, "top_n must be a whole number >= 1"),
        ({"top_n": 1.5}, "top_n must be a whole number >= 1"),
    ],
)
def test_nan_or_out_of_range_rules_are_refused(settings, message) -> None:
    with pytest.raises(ParameterError, match=message):
        EventRules(**settings)
    assert EventRules(background="noise").background == ("noise",)
