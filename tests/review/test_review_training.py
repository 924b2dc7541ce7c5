"""Reviews into training: reviewed spans become segment rows in the data's classes, and a
false positive marked wrong is scored lower by the model retrained with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR
from signals import seven_or_not as make_seven_or_not

from earmark.data.manifest import Manifest
from earmark.errors import EarmarkError
from earmark.review.store import Review, ReviewStore
from earmark.review.training import add_reviews, review_windows, reviewed_spans


def _rev(path: Path, start: float, label: str, verdict: str, **kw) -> Review:
    return Review(
        recording="f0123456789abcdef",
        path=str(path),
        name=path.name,
        start_s=start,
        end_s=start + 1.0,
        label=label,
        verdict=verdict,
        **kw,
    )


@pytest.fixture
def rec(tmp_path: Path) -> Path:
    path = tmp_path / "rec.wav"
    sf.write(path, np.zeros(6 * SR, dtype=np.float32), SR)
    return path


def test_spans_follow_the_latest_verdicts(rec: Path) -> None:
    spans = reviewed_spans(
        [
            _rev(rec, 0.0, "seven", "correct", id=1),
            _rev(rec, 0.0, "seven", "wrong", id=2),  # changed mind: not a seven
            _rev(rec, 1.0, "seven", "relabel", new_label="one", id=3),
            _rev(rec, 2.0, "seven", "correct", id=4),
            _rev(rec, 2.0, "one", "correct", id=5),
        ]
    )
    got = {s.start_s: (s.positive, s.wrong) for s in spans}
    assert got[0.0] == (set(), {"seven"})
    assert got[1.0] == ({"one"}, {"seven"})
    assert got[2.0] == ({"one", "seven"}, set())


def test_single_label_rows_use_the_negative_class(rec: Path, tmp_path: Path) -> None:
    reviews = [
        _rev(rec, 0.0, "seven", "wrong", id=1),
        _rev(rec, 1.0, "seven", "relabel", new_label="one", id=2),
        _rev(rec, 2.0, "seven", "correct", id=3),
        _rev(rec, 2.0, "one", "correct", id=4),  # two classes at a span: not single-label
        _rev(rec, 3.0, "seven", "relabel", new_label="owl", id=5),  # not a class of the data
        _rev(tmp_path / "gone.wav", 0.0, "seven", "correct", id=6),
    ]
    got = review_windows(reviews, classes=["background", "one", "seven"], multi_label=False)
    frame = got.manifest.frame
    assert list(frame["label"]) == ["background", "one"]
    assert list(frame["start_s"]) == [0.0, 1.0] and list(frame["end_s"]) == [1.0, 2.0]
    assert got.positives == 1 and got.negatives == 1
    assert got.skipped == {"several_classes": 1, "unknown_class": 1, "missing": 1}
    no_negative = review_windows(reviews[:2], classes=["one", "seven"], multi_label=False)
    assert list(no_negative.manifest.frame["label"]) == ["one"]
    assert no_negative.skipped == {"no_negative_class": 1}
    held = review_windows(reviews[:2], classes=["one"], multi_label=False, held_out=[rec])
    assert held.manifest is None and held.skipped == {"held_out": 2}


def test_multi_label_negatives_are_all_zero(rec: Path) -> None:
    reviews = [
        _rev(rec, 0.0, "seven", "wrong", id=1),
        _rev(rec, 2.0, "seven", "correct", id=2),
        _rev(rec, 2.0, "one", "correct", id=3),
    ]
    got = review_windows(reviews, classes=["one", "seven"], multi_label=True)
    m = got.manifest
    assert m.multi_label and m.has_segments
    assert m.targets(["one", "seven"]).tolist() == [[0.0, 0.0], [1.0, 1.0]]


def test_add_reviews_appends_segment_rows_or_says_why_not(rec: Path, tmp_path: Path) -> None:
    train = Manifest.from_records([str(rec), str(rec)], ["seven", "background"])
    db = ReviewStore(tmp_path / "r.sqlite")
    with pytest.raises(EarmarkError, match="holds no reviews"):
        add_reviews(train, db)
    db.add(_rev(rec, 1.0, "seven", "relabel", new_label="owl"))
    with pytest.raises(EarmarkError, match="1 because it names a class the data does not"):
        add_reviews(train, db)
    db.add(_rev(rec, 4.0, "seven", "wrong"))
    merged, added = add_reviews(train, tmp_path / "r.sqlite")
    assert len(merged) == 3 and len(added) == 1
    spans = merged.spans
    assert spans[:2] == [None, None] and spans[2] == (4.0, 1.0)
    assert merged.frame["label"].iloc[2] == "background"
    with pytest.raises(EarmarkError, match="no such reviews database"):
        add_reviews(train, tmp_path / "missing.sqlite")


@pytest.fixture(scope="module")
def seven_or_not(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory):
    """Clips of 'seven' / 'background' and a recording with a false and a true 'seven'
    (:func:`signals.seven_or_not`)."""
    return make_seven_or_not(demo_digits, tmp_path_factory.mktemp("seven_or_not"))


def _seven_score(clf, rec: Path, start: float, tmp: Path) -> float:
    y, _ = sf.read(rec, dtype="float32", start=round(start * SR), stop=round((start + 1) * SR))
    sf.write(tmp / "span.wav", y, SR)
    pred = clf.predict_file(tmp / "span.wav", top_k=2)
    return dict(zip(pred.labels, pred.scores, strict=True))["seven"]


@pytest.mark.slow  # two trainings on real speech: ~10 s on a quiet machine
def test_a_false_positive_marked_wrong_scores_lower_after_retraining(
    seven_or_not, tmp_path: Path
) -> None:
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier
    from earmark.workflows import train_run

    data, rec = seven_or_not
    db = ReviewStore(tmp_path / "r.sqlite")
    db.add(_rev(rec, 1.0, "seven", "wrong"))  # the 'two' was taken for a seven
    db.add(_rev(rec, 4.0, "seven", "correct"))

    def run(name: str, **kw):
        clf = Classifier("logreg", features="logmel", audio=AudioConfig(duration=1.0), seed=0)
        return train_run(data, clf, tmp_path / name, **kw)

    plain = run("plain")
    reviewed = run("reviewed", reviews=tmp_path / "r.sqlite")
    assert reviewed.reviews == {
        "windows": 2,
        "positives": 1,
        "negatives": 1,
        "skipped": {},
    }
    assert reviewed.sizes["train"] == plain.sizes["train"] + 2
    assert reviewed.sizes["test"] == plain.sizes["test"]
    before = _seven_score(plain.classifier, rec, 1.0, tmp_path)
    after = _seven_score(reviewed.classifier, rec, 1.0, tmp_path)
    assert before > 0.8, "the plain model should take the 'two' for a seven"
    assert after < before - 0.2, (before, after)
    assert _seven_score(reviewed.classifier, rec, 4.0, tmp_path) > 0.5
    import json

    record = json.loads((reviewed.out / "earmark.json").read_text())["data"]["reviews"]
    assert record["negatives"] == 1 and record["database"].endswith("r.sqlite")
