"""Segment-based scores (earmark.detection.truth.score_segments): a hand-computed case, and
the counts of sed_eval's SegmentBasedMetrics on random event lists."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from earmark.detection.events import Event
from earmark.detection.truth import score_segments
from earmark.errors import ParameterError


def test_a_hand_computed_example() -> None:
    truth = [Event("rec/a.wav", 0.5, 2.2, "bird"), Event("a.wav", 3.0, 4.0, "frog")]
    detected = [
        Event("a.wav", 1.2, 1.8, "bird"),  # segment 1: hit; 0 and 2 missed
        Event("a.wav", 4.1, 4.3, "bird"),  # segment 4: false
        Event("a.wav", 2.9, 4.5, "frog"),  # segments 2, 3, 4: one hit, two false
    ]
    r = score_segments(detected, truth, segment=1.0, durations={"a.wav": 6.0})
    assert r.segments == 6
    bird, frog = r.per_class["bird"], r.per_class["frog"]
    assert (bird["tp"], bird["fp"], bird["fn"]) == (1, 1, 2)
    assert (frog["tp"], frog["fp"], frog["fn"]) == (1, 2, 0)
    assert bird["f1"] == pytest.approx(0.4) and frog["f1"] == pytest.approx(0.5)
    assert (r.micro["tp"], r.micro["fp"], r.micro["fn"]) == (2, 3, 2)
    assert r.micro["precision"] == pytest.approx(0.4) and r.micro["recall"] == 0.5
    assert r.micro["f1"] == pytest.approx(4 / 9)
    assert r.macro == pytest.approx({"precision": 5 / 12, "recall": 2 / 3, "f1": 0.45})
    # half-second segments: the frog's offset at 4.0 ends its segments at 4.0
    half = score_segments(detected, truth, segment=0.5, durations={"a": 6.0})
    assert half.segments == 12
    assert (half.per_class["frog"]["tp"], half.per_class["frog"]["fp"]) == (2, 2)


def test_files_labels_and_lengths() -> None:
    truth = [Event("a.wav", 0.0, 1.0, "bird")]
    # a recording without events still counts its segments; a class nobody saw scores 0
    r = score_segments([], truth, labels=["bird", "owl"], files=["a.wav", "b.wav"])
    assert r.per_class["owl"]["f1"] == 0.0 and r.micro["fn"] == 1
    assert r.segments == 1  # no durations: each file as long as its latest event
    r = score_segments([], truth, files=["a.wav", "b.wav"], durations={"a": 3.0, "b": 2.5})
    assert r.segments == 6 and r.macro["f1"] == 0.0
    assert score_segments([], []).micro["f1"] == 0.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ParameterError, match="segment length must be > 0"):
            score_segments([], truth, segment=bad)


def random_events(rng: np.random.Generator, files: list[str], labels: list[str]) -> list[Event]:
    events = []
    for f in files:
        for _ in range(rng.integers(2, 9)):
            start = round(float(rng.uniform(0, 28)), 2)
            events.append(
                Event(f, start, round(start + float(rng.uniform(0.05, 3)), 2), rng.choice(labels))
            )
    return events


@pytest.mark.parametrize(("seed", "segment"), [(0, 1.0), (1, 0.5), (2, 2.0)])
def test_counts_match_sed_eval(seed: int, segment: float) -> None:
    with warnings.catch_warnings():  # dcase_util imports pkg_resources
        warnings.simplefilter("ignore")
        import dcase_util
        import sed_eval

    rng = np.random.default_rng(seed)
    files, labels = ["a", "b", "c"], ["bird", "frog", "owl"]
    truth, detected = random_events(rng, files, labels), random_events(rng, files, labels)
    length = 32.0
    ours = score_segments(
        detected, truth, segment=segment, labels=labels, durations=dict.fromkeys(files, length)
    )
    metrics = sed_eval.sound_event.SegmentBasedMetrics(labels, time_resolution=segment)
    for f in files:

        def container(events: list[Event], f: str = f) -> dcase_util.containers.MetaDataContainer:
            return dcase_util.containers.MetaDataContainer(
                [
                    {"filename": f, "event_label": e.label, "onset": e.start, "offset": e.end}
                    for e in events
                    if e.file == f
                ]
            )

        metrics.evaluate(container(truth), container(detected), evaluated_length_seconds=length)
    o = metrics.overall
    assert ours.micro["tp"] == o["Ntp"] and ours.micro["tp"] + ours.micro["fp"] == o["Nsys"]
    assert ours.micro["tp"] + ours.micro["fn"] == o["Nref"]
    f = metrics.results_overall_metrics()["f_measure"]
    assert ours.micro["f1"] == pytest.approx(f["f_measure"], abs=1e-12)
    for label in labels:
        c = metrics.class_wise[label]
        m = ours.per_class[label]
        assert (m["tp"], m["tp"] + m["fp"], m["tp"] + m["fn"]) == (c["Ntp"], c["Nsys"], c["Nref"])
    average = metrics.results_class_wise_average_metrics()["f_measure"]["f_measure"]
    assert ours.macro["f1"] == pytest.approx(average, abs=1e-12)
