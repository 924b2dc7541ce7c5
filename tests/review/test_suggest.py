"""Active-learning suggestions: the uncertain windows are picked, diversity spreads the picks,
reviewed windows are left out, the table round-trips, the CLI refuses bad values."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, tone
from typer.testing import CliRunner

from earmark.audio import AudioConfig
from earmark.cli import app
from earmark.detection.windows import Windowing
from earmark.errors import EarmarkError, ParameterError
from earmark.features import FeatureConfig
from earmark.predict import Predictor, ScoreTrack, UsesPredictor
from earmark.preprocess import Preprocessing
from earmark.review.suggest import (
    SUGGESTION_COLUMNS,
    Suggestion,
    SuggestSettings,
    read_reviewed,
    suggest,
    suggest_tracks,
    uncertainty,
    write_suggestions,
)
from earmark.review.suggestions import load_suggestions

LOW, HIGH = 300.0, 4000.0
SECOND = Windowing(window=1.0, hop=1.0)  # windows = the one-second parts of the recordings


class ToneModel(UsesPredictor):
    """A model whose answer is known: ``high`` when the log-mel energy above 2 kHz beats the
    one below 500 Hz (a logistic of the difference), ``low`` otherwise; both tones at once
    are a coin toss. Scored through earmark's own predictor and preprocessing."""

    multi_label_ = False
    thresholds_ = None

    def __init__(self) -> None:
        self.classes_ = ["high", "low"]
        prep = Preprocessing(
            AudioConfig(sample_rate=SR, duration=1.0), FeatureConfig(kind="logmel", n_mels=32), 1.0
        )
        self.predictor = Predictor(prep, self.classes_, self._score)

    @staticmethod
    def _score(X: np.ndarray) -> np.ndarray:
        bands = np.asarray(X).mean(axis=-1)[:, 0]  # [n, mels]: each band's mean over time
        diff = bands[:, 20:].max(axis=1) - bands[:, :8].max(axis=1)
        p_high = 1 / (1 + np.exp(-0.2 * diff))
        return np.stack([p_high, 1 - p_high], axis=1)


def _recording(path: Path, parts: str) -> Path:
    """One second per letter: ``l`` a low tone, ``h`` a high one, ``m`` both at once."""
    make = {
        "l": lambda: tone(LOW, amp=0.4),
        "h": lambda: tone(HIGH, amp=0.4),
        "m": lambda: tone(LOW, amp=0.3) + tone(HIGH, amp=0.3),
    }
    sf.write(path, np.concatenate([make[c]() for c in parts]), SR)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("suggest")
    return _recording(folder / "scene.wav", "lhmllhhmlh")  # ambiguous at 2 s and 7 s


def test_the_ambiguous_windows_are_picked(scene: Path) -> None:
    plain = SuggestSettings(n=2, diversity="none")
    got = suggest(ToneModel(), scene, plain, windowing=SECOND)
    assert sorted(s.start_s for s in got.items) == [2.0, 7.0]
    assert all(s.uncertainty > 0.3 for s in got.items)
    assert got.files == 1 and got.windows == 10 and got.excluded == 0
    assert all(Path(s.file) == scene.resolve() for s in got.items)
    # the confident windows are nearly certain, and labelled as the model says
    every = suggest(
        ToneModel(), scene, SuggestSettings(n=10, pool=1, diversity="none"), windowing=SECOND
    )
    by_start = {s.start_s: s for s in every.items}
    assert by_start[0.0].label == "low" and by_start[1.0].label == "high"
    assert by_start[0.0].uncertainty < 0.05 and by_start[1.0].uncertainty < 0.05
    assert [s.start_s for s in every.items][:2] in ([2.0, 7.0], [7.0, 2.0])
    # the two ambiguous windows sound the same: with diversity (the model's own input
    # features) the second pick is another sound
    diverse = suggest(ToneModel(), scene, SuggestSettings(n=2), windowing=SECOND)
    assert len({2.0, 7.0} & {s.start_s for s in diverse.items}) == 1
    assert diverse.items[0].start_s in (2.0, 7.0) and diverse.embedding == "features"


def test_reviewed_windows_are_left_out(scene: Path, tmp_path: Path) -> None:
    settings = SuggestSettings(n=1, diversity="none")
    got = suggest(ToneModel(), scene, settings, windowing=SECOND, reviewed=[(str(scene), 2.0, 3.0)])
    assert [s.start_s for s in got.items] == [7.0] and got.excluded == 1
    # by name from a table (an annotation table's columns), the recording moved elsewhere
    table = tmp_path / "reviewed.csv"
    table.write_text("filepath,onset,offset,label\nold/place/scene.wav,6.9,8.1,low\n")
    got = suggest(ToneModel(), scene, settings, windowing=SECOND, reviewed=table)
    assert [s.start_s for s in got.items] == [2.0] and got.excluded == 1
    # a window counts as reviewed when a span covers half of the shorter of the two: here
    # 0.2 s of the window at 2 s (not enough), 0.6 s of the one at 3 s
    got = suggest(ToneModel(), scene, settings, windowing=SECOND, reviewed=[(str(scene), 2.8, 3.6)])
    assert [s.start_s for s in got.items] == [2.0] and got.excluded == 1


def _tracks(*regions: tuple[int, float, float]) -> tuple[ScoreTrack, np.ndarray]:
    """One recording: ``(windows, uncertainty, embedding value)`` per region, windows a
    second apart; each region's windows are near-duplicates (the same embedding, give or
    take 1e-3), regions far apart in the embedding."""
    rng = np.random.default_rng(0)
    p, emb = [], []
    for count, unc, value in regions:
        for _ in range(count):
            top = 1 - unc / 2  # margin uncertainty 1 - (top - (1 - top)) = unc
            p.append([top, 1 - top])
            emb.append(np.array([value, -value]) + rng.normal(0, 1e-3, 2))  # jitter
    n = len(p)
    track = ScoreTrack(
        "rec.wav", ["a", "b"], np.arange(n, dtype=float), 1.0, 1.0, np.asarray(p), float(n)
    )
    return track, np.asarray(emb)


def test_diversity_spreads_the_picks_over_near_duplicate_regions() -> None:
    # six near-identical very uncertain windows, then three distinct, a little less so
    item = _tracks((6, 0.99, 0.0), (1, 0.9, 5.0), (1, 0.9, -5.0), (1, 0.9, 9.0))
    region = {float(s) for s in range(6)}
    for diversity in ("kcenter", "kmeans"):
        settings = SuggestSettings(n=3, diversity=diversity, spread=0)
        starts = [s.start_s for s in suggest_tracks([item], settings).items]
        assert len(starts) == 3 and len(region & set(starts)) == 1, (diversity, starts)
    plain = suggest_tracks([item], SuggestSettings(n=3, diversity="none", spread=0)).items
    assert {s.start_s for s in plain} <= region  # uncertainty alone takes one region thrice
    # the time-spread rule alone keeps picks apart in a recording: three seconds here
    spread = suggest_tracks([item], SuggestSettings(n=3, diversity="none", spread=3)).items
    starts = sorted(s.start_s for s in spread)
    assert np.all(np.diff(starts) >= 3)


def test_picks_are_deterministic_for_a_seed_and_ties_follow_it() -> None:
    track, emb = _tracks((30, 0.5, 0.0))  # every window equally uncertain and alike

    def picks(seed: int) -> list[float]:
        settings = SuggestSettings(n=4, seed=seed, diversity="none", spread=0)
        return [s.start_s for s in suggest_tracks([(track, emb)], settings).items]

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)


def test_multi_label_uncertainty_is_the_closeness_to_each_threshold() -> None:
    scores = np.array([[0.9, 0.1], [0.62, 0.05], [0.95, 0.33]])
    unc, nearest = uncertainty(scores, measure="threshold", thresholds=np.array([0.6, 0.3]))
    assert nearest.tolist() == [1, 0, 1]  # the class nearest its (calibrated) threshold
    assert unc[1] > unc[2] > unc[0]
    assert unc[1] == pytest.approx(1 - 0.02 / 0.6)
    track = ScoreTrack("r.wav", ["a", "b"], np.arange(3.0), 1.0, 1.0, scores, 3.0)
    settings = SuggestSettings(n=1, embedding="scores")
    got = suggest_tracks([track], settings, multi_label=True, thresholds={"a": 0.6, "b": 0.3})
    assert (got.items[0].start_s, got.items[0].label) == (1.0, "a")
    with pytest.raises(ParameterError, match="margin uncertainty is for single-label"):
        suggest_tracks([track], SuggestSettings(uncertainty="margin"), multi_label=True)
    # single-label: margin and entropy both put the even split first
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.7, 0.3]])
    for measure in ("margin", "entropy"):
        u, top = uncertainty(p, measure=measure)
        assert np.argsort(-u).tolist() == [0, 2, 1] and top.tolist() == [0, 0, 0]


def test_the_table_round_trips(tmp_path: Path) -> None:
    for name in ("a b.wav", "c,d.wav"):
        (tmp_path / name).touch()
    items = [
        Suggestion(str(tmp_path / "a b.wav"), 1.5, 2.5, "seven", 0.51234567, 0.97),
        Suggestion(str(tmp_path / "c,d.wav"), 0.0, 1.0, "noise", 0.4, 0.8),
    ]
    path = write_suggestions(tmp_path / "s.csv", items)
    with path.open() as fh:
        assert tuple(next(csv.reader(fh))) == SUGGESTION_COLUMNS
    back = load_suggestions(path).items  # the server's reader of the same table
    assert [(s.path, s.start_s, s.end_s, s.label) for s in back] == [
        (s.file, s.start_s, s.end_s, s.label) for s in items
    ]
    assert back[0].score == pytest.approx(0.512346)
    # a suggestions table is also a table of reviewed windows (the spans it lists)
    assert read_reviewed(path)[1] == (str(tmp_path / "c,d.wav"), 0.0, 1.0)
    (tmp_path / "bad.csv").write_text("file,start_s,end_s,label,score,uncertainty\nx,1,a,b,0,0\n")
    with pytest.raises(ParameterError, match="line 2: end_s 'a' is not a number"):
        load_suggestions(tmp_path / "bad.csv")
    with pytest.raises(ParameterError, match="not a suggestion list"):
        load_suggestions(_plain(tmp_path))


def _plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.csv"
    path.write_text("file,start_s,end_s\nx,0,1\n")
    return path


def test_settings_refuse_bad_values_in_one_line() -> None:
    for kw, message in [
        ({"n": 0}, "n must be between 1 and 10000"),
        ({"n": 2.5}, "n must be a whole number"),
        ({"uncertainty": "gini"}, "uncertainty must be one of auto, margin, entropy, threshold"),
        ({"diversity": "dpp"}, "diversity must be one of kmeans, kcenter, none"),
        ({"embedding": "pca"}, "embedding must be one of features, scores, aisfx"),
        ({"pool": 0.5}, "pool must be a number >= 1"),
        ({"pool": float("nan")}, "pool must be a number >= 1"),
        ({"spread": -1.0}, "spread must be >= 0 seconds"),
    ]:
        with pytest.raises(ParameterError, match=message):
            SuggestSettings(**kw)
    assert SuggestSettings.from_dict(SuggestSettings(n=7).to_dict()) == SuggestSettings(n=7)


def test_unreadable_recordings_are_skipped_and_listed(scene: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    got = suggest(ToneModel(), [bad, scene], SuggestSettings(n=1), windowing=SECOND)
    assert got.files == 1 and len(got.errors) == 1 and got.errors[0][0] == str(bad)
    with pytest.raises(EarmarkError, match="none of the 1 recordings could be read"):
        suggest(ToneModel(), [bad], SuggestSettings(n=1))


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tone_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: logistic regression on the log-mel frames of half-second tones."""
    from earmark import Classifier
    from earmark.data import Manifest

    root = tmp_path_factory.mktemp("tone_run")
    rows = []
    for k in range(4):
        for label, freq in (("low", LOW + 20 * k), ("high", HIGH + 100 * k)):
            path = root / f"{label}{k}.wav"
            sf.write(path, tone(freq, 0.5, amp=0.2 + 0.1 * k), SR)
            rows.append({"filepath": str(path), "label": label})
    import pandas as pd

    clf = Classifier(
        "logreg",
        features=FeatureConfig(kind="logmel", n_mels=16),
        audio=AudioConfig(sample_rate=SR, duration=0.5),
        workers=1,
    )
    clf.fit(Manifest(pd.DataFrame(rows)))
    return clf.save(root / "run")


def test_cli_writes_the_suggestions(tone_run: Path, scene: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "suggestions.csv"
    res = CliRunner().invoke(
        app, ["suggest", str(tone_run), str(scene), "--n", "3", "--out", str(out), "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    rows = load_suggestions(out).items
    assert len(rows) == 3 and {r.label for r in rows} <= {"low", "high"}
    assert "3 windows to review" in res.output
    # the reviewed ones are left out the next time
    again = tmp_path / "again.csv"
    res = CliRunner().invoke(
        app,
        [
            "suggest",
            str(tone_run),
            str(scene),
            "--n",
            "3",
            "--out",
            str(again),
            "--exclude",
            str(out),
            "--seed",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert not {r.start_s for r in load_suggestions(again).items} & {r.start_s for r in rows}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n", "0"], "n must be between 1 and 10000"),
        (["--hop", "-1"], "hop must be between"),
        (["--diversity", "dpp"], "diversity must be one of kmeans, kcenter, none"),
        (["--uncertainty", "threshold"], "threshold uncertainty is for multi-label models"),
        (["--exclude", "missing.csv"], "missing.csv: no such table of reviewed windows"),
    ],
)
def test_cli_refuses_bad_values_in_one_line(
    tone_run: Path, scene: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "s.csv"
    res = CliRunner().invoke(app, ["suggest", str(tone_run), str(scene), "--out", str(out), *extra])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not out.exists()


def test_cli_names_a_folder_without_audio(tone_run: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(
        app, ["suggest", str(tone_run), str(tmp_path / "empty"), "--out", str(tmp_path / "s.csv")]
    )
    assert res.exit_code == 1 and "no audio files in" in res.output


def test_windows_reviewed_in_a_database_are_read_as_reviewed(tmp_path: Path) -> None:
    from earmark.review.store import Review, ReviewStore

    rec = tmp_path / "rec.wav"
    rec.touch()
    store = ReviewStore(tmp_path / "reviews.sqlite")
    store.add(Review("f0", str(rec), "rec.wav", 2.0, 3.0, "seven", "correct"))
    store.add(Review("f0", str(rec), "rec.wav", 5.0, 6.0, "seven", "wrong"))
    store.close()
    spans = sorted(read_reviewed(tmp_path / "reviews.sqlite"))
    assert spans == [(str(rec.resolve()), 2.0, 3.0), (str(rec.resolve()), 5.0, 6.0)]
