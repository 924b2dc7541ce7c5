"""PSDS from a detection's window scores (earmark.detection.psds) against sed_scores_eval.

Score tables here are hand-made like ``scores.parquet``: 1-s windows every 0.5 s, so each
window stands for its central half second (0.25..0.75 s past its start), the first from 0
and the last to the recording's end.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from earmark.detection.events import Event
from earmark.detection.psds import PsdsSettings, psds, psds_of_run, score_frames
from earmark.errors import ParameterError

WINDOW, HOP, LENGTH = 1.0, 0.5, 20.0
STARTS = np.arange(0.0, LENGTH - WINDOW + 1e-9, HOP)  # 0, 0.5, ..., 19
CENTRES = STARTS + WINDOW / 2

# two recordings, two classes that overlap in time (a multi-label scene), one background
TRUTH = [
    Event("site/a.wav", 4.0, 7.0, "bird"),
    Event("site/a.wav", 5.0, 6.0, "frog"),
    Event("site/a.wav", 12.0, 14.0, "frog"),
    Event("b.wav", 2.0, 3.5, "bird"),
    Event("b.wav", 15.0, 18.0, "frog"),
]


def activity(spans: list[tuple[float, float]], level: float = 1.0) -> np.ndarray:
    """``level`` for windows whose centre lies in one of ``spans``, else 0."""
    return np.array([level if any(a <= c < b for a, b in spans) else 0.0 for c in CENTRES])


def table(columns: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """A window score table: recording -> class -> scores per window."""
    frames = []
    for name, cols in columns.items():
        frame = pd.DataFrame({"file": name, "start_s": STARTS, "end_s": STARTS + WINDOW})
        for label, scores in cols.items():
            frame[label] = scores
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def spans_of(file: str, label: str) -> list[tuple[float, float]]:
    return [(e.start, e.end) for e in TRUTH if e.file.endswith(file) and e.label == label]


def perfect() -> pd.DataFrame:
    return table(
        {
            f"recordings/{name}": {
                "bird": activity(spans_of(name, "bird"), 0.9),
                "frog": activity(spans_of(name, "frog"), 0.8),
                "noise": np.full(len(STARTS), 0.5),
            }
            for name in ("a.wav", "b.wav")
        }
    )


def test_a_perfect_detector_scores_one() -> None:
    r = psds(perfect(), TRUTH, classes=["bird", "frog"])
    assert r.psds == pytest.approx(1.0)
    assert r.per_class == {"bird": pytest.approx(1.0), "frog": pytest.approx(1.0)}
    assert r.classes == ["bird", "frog"] and r.files == 2
    assert r.hours == pytest.approx(2 * LENGTH / 3600)
    assert r.roc[0] == {"efpr": 0.0, "tpr": 1.0}
    # every score column: the background class has no reference event, so is left out
    r = psds(perfect(), TRUTH)
    assert r.no_reference == ["noise"] and r.psds == pytest.approx(1.0)


def test_a_detector_that_never_overlaps_the_reference_scores_zero() -> None:
    away = table(
        {
            f"{name}.wav": {"bird": activity([(8.0, 11.0)]), "frog": activity([(0.0, 1.5)])}
            for name in ("a", "b")
        }
    )
    r = psds(away, TRUTH)
    assert r.psds == 0.0 and set(r.per_class.values()) == {0.0}


def reference_frames(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The frames written out by hand for a regular hop (each window: its central hop; the
    first from 0, the last to the end), in sed_scores_eval's own format."""
    from earmark.detection.psds import _frame_class

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sed_scores_eval.base_modules.scores import create_score_dataframe
    frames = {}
    for name, rows in scores.groupby("file"):
        edges = np.concatenate([[0.0], STARTS[:-1] + (WINDOW + HOP) / 2, [LENGTH]])
        classes = [c for c in rows.columns if c not in ("file", "start_s", "end_s")]
        frame = create_score_dataframe(rows[classes].to_numpy(), edges, classes)
        frames[str(name).split("/")[-1].removesuffix(".wav")] = _frame_class()(frame)
    return frames


def middle() -> pd.DataFrame:
    """A detector that finds some events early or late, misses one, adds false alarms (one
    of them above a true detection, one on another class's event: a cross-trigger) and
    ranks its scores unevenly."""
    rng = np.random.default_rng(3)
    cols = {
        "a.wav": {
            "bird": activity([(4.5, 7.0)], 0.7) + activity([(9.0, 10.0)], 0.8),
            "frog": activity([(5.0, 6.0)], 0.4) + activity([(12.5, 13.0)], 0.9),
        },
        "b.wav": {
            "bird": activity([(2.0, 3.5)], 0.95) + activity([(16.0, 16.5)], 0.5),
            "frog": activity([(1.0, 2.0)], 0.3) + activity([(2.0, 3.5)], 0.6),
        },
    }
    for c in cols.values():  # a little noise under everything
        for label in c:
            c[label] = c[label] + 0.05 * rng.random(len(STARTS))
    return table(cols)


@pytest.mark.parametrize(
    "settings",
    [
        PsdsSettings(),
        PsdsSettings(dtc=0.5, gtc=0.5, alpha_st=0.0, max_efpr=500.0),
        PsdsSettings(alpha_ct=1.0, cttc=0.3, max_efpr=1000.0),
    ],
)
def test_a_middle_case_matches_sed_scores_eval(settings: PsdsSettings) -> None:
    from sed_scores_eval import intersection_based

    scores = middle()
    ours = psds(scores, TRUTH, settings=settings)
    gt: dict[str, list[tuple[float, float, str]]] = {"a": [], "b": []}
    for e in TRUTH:
        gt[e.file.split("/")[-1].removesuffix(".wav")].append((e.start, e.end, e.label))
    value, single, (tpr, efpr), _ = intersection_based.psds(
        scores=reference_frames(scores),
        ground_truth=gt,
        audio_durations={"a": LENGTH, "b": LENGTH},
        dtc_threshold=settings.dtc,
        gtc_threshold=settings.gtc,
        cttc_threshold=settings.cttc if settings.alpha_ct else None,
        alpha_ct=settings.alpha_ct,
        alpha_st=settings.alpha_st,
        max_efpr=settings.max_efpr,
    )
    assert 0.0 < ours.psds < 1.0
    assert ours.psds == pytest.approx(value, abs=1e-12)
    assert ours.per_class == pytest.approx(single, abs=1e-12)
    keep = efpr <= settings.max_efpr
    assert [p["efpr"] for p in ours.roc] == pytest.approx(list(efpr[keep]))
    assert [p["tpr"] for p in ours.roc] == pytest.approx(list(tpr[keep]))


def test_score_frames_tile_each_recording() -> None:
    frames, lengths = score_frames(perfect(), classes=["bird"], durations={"b.wav": 20.2})
    assert set(frames) == {"a", "b"} and lengths == {"a": LENGTH, "b": 20.2}
    a = frames["a"]
    assert list(a.columns) == ["onset", "offset", "bird"]
    assert a["onset"].iloc[0] == 0.0 and a["offset"].iloc[-1] == LENGTH
    assert (a["onset"].to_numpy()[1:] == a["offset"].to_numpy()[:-1]).all()
    # inside, each window stands for its central hop
    assert a["onset"].iloc[1] == pytest.approx(STARTS[1] + (WINDOW - HOP) / 2)
    assert a["offset"].iloc[1] == pytest.approx(STARTS[1] + (WINDOW + HOP) / 2)
    assert frames["b"]["offset"].iloc[-1] == 20.2
    # the writable frame keeps sed_scores_eval's Cython happy under pandas copy-on-write
    assert a[["bird"]].to_numpy().flags.writeable


@pytest.mark.parametrize(
    ("truth", "message"),
    [
        ([Event("a.wav", 1.0, 2.0, "owl")], "events of owl, which scores has no scores for"),
        ([Event("c.wav", 1.0, 2.0, "bird")], "events in c, which scores has no scores for"),
        ([Event("a.wav", 3.0, 2.0, "bird")], "does not end after it starts"),
        ([Event("a.wav", 25.0, 26.0, "bird")], "after the recording's end (20 s)"),
        ([], "no events of bird, frog"),
    ],
)
def test_a_reference_the_scores_cannot_answer_is_a_one_line_error(
    truth: list[Event], message: str
) -> None:
    with pytest.raises(ParameterError) as err:
        psds(perfect(), truth, classes=["bird", "frog"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_score_tables_are_one_line_errors(tmp_path) -> None:
    broken = perfect()
    broken.loc[3, "bird"] = np.nan
    with pytest.raises(ParameterError, match="NaN or infinite"):
        psds(broken, TRUTH, classes=["bird", "frog"])
    with pytest.raises(ParameterError, match="no file column"):
        psds(perfect().drop(columns="file"), TRUTH)
    with pytest.raises(ParameterError, match="no scores for owl"):
        psds(perfect(), TRUTH, classes=["bird", "owl"])
    twice = pd.concat([perfect(), perfect().assign(file="elsewhere/a.wav")])
    with pytest.raises(ParameterError, match="both named a"):
        psds(twice, TRUTH)
    with pytest.raises(ParameterError, match="no such score table"):
        psds_of_run(tmp_path / "scores.parquet", TRUTH)


def test_without_sed_scores_eval_psds_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sed_scores_eval", None)  # import fails
    with pytest.raises(ParameterError, match="pip install sed-scores-eval-np2"):
        psds(perfect(), TRUTH)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dtc", 0.0, "fraction in (0, 1]"),
        ("gtc", 1.5, "fraction in (0, 1]"),
        ("cttc", float("nan"), "finite"),
        ("alpha_ct", -1.0, ">= 0"),
        ("max_efpr", 0.0, "> 0 false positives per hour"),
        ("alpha_st", "1", "must be a number"),
    ],
)
def test_settings_refuse_absurd_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PsdsSettings(**{field: value})


def test_settings_round_trip_through_json() -> None:
    s = PsdsSettings(dtc=0.5, alpha_ct=1, max_efpr=200)
    assert PsdsSettings.from_dict(s.to_dict()) == s
    assert PsdsSettings().to_dict() == {
        "dtc": 0.7,
        "gtc": 0.7,
        "cttc": 0.3,
        "alpha_ct": 0.0,
        "alpha_st": 1.0,
        "max_efpr": 100.0,
    }
