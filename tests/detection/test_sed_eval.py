"""earmark's event-based scores against sed_eval, the DCASE reference implementation.

Both count a detection as a hit when a reference event of the same file and label has its
onset within the tolerance (sed_eval: ``EventBasedMetrics(evaluate_onset=True,
evaluate_offset=False, t_collar=tolerance)``), pair detections and reference events one to
one with a maximum matching (sed_eval's default ``event_matching_type="optimal"``), and
micro-average over files and classes. Where they differ by definition (tested below):

* sed_eval's ``greedy`` matching pairs each reference event with the first unmatched
  detection in list order; earmark has only the maximum matching, which can find more hits.
* a class with no detections: sed_eval's precision (and F) is NaN by default, earmark's 0.
* earmark counts an onset difference up to ``tolerance + 1e-9`` as within the tolerance, so
  ``|1.3 - 1.0| = 0.30000000000000004`` is a hit at 0.3 s; sed_eval compares exactly.
* sed_eval needs a tolerance > 0; earmark takes 0 (onsets must coincide).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from earmark.detection.events import Event
from earmark.detection.truth import score_events

with warnings.catch_warnings():  # dcase_util imports pkg_resources, deprecated by setuptools
    warnings.simplefilter("ignore")
    import dcase_util
    import sed_eval


def sed_eval_scores(
    detected: list[Event],
    truth: list[Event],
    labels: list[str],
    tolerance: float,
    matching: str = "optimal",
) -> sed_eval.sound_event.EventBasedMetrics:
    def container(events: list[Event], file: str) -> dcase_util.containers.MetaDataContainer:
        return dcase_util.containers.MetaDataContainer(
            [
                {"filename": file, "event_label": e.label, "onset": e.start, "offset": e.end}
                for e in events
                if e.file == file
            ]
        )

    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels,
        evaluate_onset=True,
        evaluate_offset=False,
        t_collar=tolerance,
        event_matching_type=matching,
    )
    for file in sorted({e.file for e in truth} | {e.file for e in detected}):  # file by file
        metrics.evaluate(
            reference_event_list=container(truth, file),
            estimated_event_list=container(detected, file),
        )
    return metrics


def overall(metrics: sed_eval.sound_event.EventBasedMetrics) -> dict[str, float]:
    """sed_eval's overall counts and P/R/F."""
    return {**metrics.overall, **metrics.results_overall_metrics()["f_measure"]}


def class_wise(metrics: sed_eval.sound_event.EventBasedMetrics, label: str) -> dict[str, float]:
    f = metrics.results_class_wise_metrics()[label]["f_measure"]
    return {**metrics.class_wise[label], **f}


def assert_same(ours: dict[str, float], theirs: dict[str, float]) -> None:
    assert ours["tp"] + ours["fp"] == theirs["Nsys"]
    assert ours["tp"] + ours["fn"] == theirs["Nref"]
    assert ours["tp"] == theirs["Ntp"]
    f = theirs
    assert ours["precision"] == pytest.approx(f["precision"], abs=1e-12)
    assert ours["recall"] == pytest.approx(f["recall"], abs=1e-12)
    assert ours["f1"] == pytest.approx(f["f_measure"], abs=1e-12)


def generated(rng: np.random.Generator, labels: list[str]) -> tuple[list[Event], list[Event]]:
    """Reference events on a few files, and detections: most reference events found with an
    onset error of up to ~1 s (some within the tolerance, some not), some missed, some
    spurious, some doubled."""
    truth, detected = [], []
    for f in range(4):
        file = f"rec{f}.wav"
        onsets = np.sort(rng.uniform(0, 60, size=int(rng.integers(5, 25))))
        for t in onsets:
            label = str(rng.choice(labels))
            truth.append(Event(file, float(t), float(t) + 0.8, label))
            if rng.random() < 0.8:  # found, more or less on time
                d = float(t + rng.normal(0, 0.4))
                detected.append(Event(file, d, d + 0.5, label))
            if rng.random() < 0.1:  # found twice
                d = float(t + rng.normal(0, 0.3))
                detected.append(Event(file, d, d + 0.5, label))
        for t in rng.uniform(0, 60, size=int(rng.integers(0, 6))):  # false alarms
            detected.append(Event(file, float(t), float(t) + 0.5, str(rng.choice(labels))))
    rng.shuffle(detected)  # the order of the tables must not matter
    return detected, truth


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tolerance", [0.2, 0.5, 1.0])
def test_precision_recall_f1_equal_sed_eval_on_generated_events(
    seed: int, tolerance: float
) -> None:
    labels = ["bird", "frog", "owl"]
    detected, truth = generated(np.random.default_rng(seed), labels)
    ours = score_events(detected, truth, tolerance=tolerance, labels=labels)
    theirs = sed_eval_scores(detected, truth, labels, tolerance)
    assert_same(ours.overall, overall(theirs))
    for label in labels:
        assert_same(ours.per_class[label], class_wise(theirs, label))
    assert 0 < ours.overall["f1"] < 1  # neither trivial case


def test_where_greedy_matching_differs_earmark_is_sed_eval_optimal() -> None:
    # greedy (sed_eval "greedy"): reference 1.0 takes the first detection within 0.5 s, 1.5;
    # reference 1.6 is then left with 0.6 (1 s away): one hit. The maximum matching pairs
    # 1.0 with 0.6 and 1.6 with 1.5: two hits.
    truth = [Event("a.wav", 1.0, 1.4, "bird"), Event("a.wav", 1.6, 2.0, "bird")]
    detected = [Event("a.wav", 1.5, 1.8, "bird"), Event("a.wav", 0.6, 0.9, "bird")]
    ours = score_events(detected, truth, tolerance=0.5, labels=["bird"]).overall
    assert_same(ours, overall(sed_eval_scores(detected, truth, ["bird"], 0.5)))
    assert ours["tp"] == 2 and ours["f1"] == 1.0
    greedy = overall(sed_eval_scores(detected, truth, ["bird"], 0.5, "greedy"))
    assert greedy["Ntp"] == 1 and greedy["f_measure"] == 0.5


def test_the_documented_differences() -> None:
    truth = [Event("a.wav", 1.0, 1.4, "bird"), Event("a.wav", 5.0, 5.4, "frog")]
    # a class without detections: sed_eval's precision is NaN, earmark's 0
    detected = [Event("a.wav", 1.1, 1.4, "bird")]
    ours = score_events(detected, truth, tolerance=0.5, labels=["bird", "frog"])
    theirs = sed_eval_scores(detected, truth, ["bird", "frog"], 0.5)
    frog = theirs.results_class_wise_metrics()["frog"]["f_measure"]
    assert math.isnan(frog["precision"]) and ours.per_class["frog"]["precision"] == 0.0
    assert_same(ours.overall, overall(theirs))  # overall: the same
    # an onset difference that is the tolerance up to float rounding
    detected = [Event("a.wav", 1.3, 1.5, "bird")]
    assert abs(1.3 - 1.0) > 0.3
    ours = score_events(detected, truth[:1], tolerance=0.3, labels=["bird"]).overall
    theirs = overall(sed_eval_scores(detected, truth[:1], ["bird"], 0.3))
    assert ours["tp"] == 1 and theirs["Ntp"] == 0
    # exactly the tolerance (no rounding): a hit for both
    detected = [Event("a.wav", 1.5, 1.7, "bird")]
    ours = score_events(detected, truth[:1], tolerance=0.5, labels=["bird"]).overall
    assert_same(ours, overall(sed_eval_scores(detected, truth[:1], ["bird"], 0.5)))
    assert ours["tp"] == 1
