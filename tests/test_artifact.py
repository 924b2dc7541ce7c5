from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import earmark
from earmark import artifact, data
from earmark.artifact import ArtifactError
from earmark.classifier import Classifier
from earmark.models import registry

SMALL = {"rf": {"n_estimators": 30}, "extra-trees": {"n_estimators": 30}, "hgb": {"max_iter": 30}}


@pytest.fixture(scope="module")
def splits(demo_digits: Path):
    return data.load(demo_digits).split(valid_size=0.0, test_size=0.25)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifact-cache")


@pytest.mark.parametrize("model", registry.names("classical"))
def test_round_trip_gives_identical_predictions(
    model: str, splits, cache: Path, tmp_path: Path
) -> None:
    clf = Classifier(model, params=SMALL.get(model), cache_dir=cache, seed=1).fit(splits.train)
    out = clf.save(tmp_path / model)
    assert sorted(p.name for p in out.iterdir()) == ["earmark.json", "model.skops"]
    back = earmark.load(out)
    files = splits.test.filepaths[:8]
    np.testing.assert_array_equal(back.predict_proba(files), clf.predict_proba(files))
    assert back.classes_ == clf.classes_ and back.audio == clf.audio
    assert back.features == clf.features and back.clip_seconds_ == clf.clip_seconds_
    meta = json.loads((out / "earmark.json").read_text())
    assert meta["model"] == model and meta["training"]["files"] == len(splits.train)
    assert (
        meta["schema_version"] == artifact.SCHEMA_VERSION
        and "sha256" in meta["files"]["model.skops"]
    )


@pytest.fixture
def saved(splits, cache: Path, tmp_path: Path) -> Path:
    return Classifier("gnb", cache_dir=cache).fit(splits.train).save(tmp_path / "gnb")


def test_a_modified_weight_file_is_refused(saved: Path) -> None:
    with (saved / "model.skops").open("r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        earmark.load(saved)


def test_a_foreign_type_in_the_skops_file_is_refused(saved: Path, splits, cache: Path) -> None:
    clf = Classifier("gnb", cache_dir=cache).fit(splits.train)
    clf.estimator_.pipeline_ = Pipeline(
        [("evil", FunctionTransformer(func=os.system)), *clf.estimator_.pipeline_.steps]
    )
    out = clf.save(saved.parent / "evil")  # checksums are valid: only the allow-list stops it
    with pytest.raises(ArtifactError, match=r"not on earmark's allow-list: .*system"):
        earmark.load(out)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: m.pop("classes"), "missing classes"),
        (lambda m: m.update(schema_version=99), "newer than this earmark reads"),
        (lambda m: m["files"].update({"../x": {"sha256": "0"}}), "points outside"),
        (lambda m: m.update(family="neural"), "a neural model"),
    ],
)
def test_bad_metadata_is_refused(saved: Path, edit, words: str) -> None:
    meta = json.loads((saved / "earmark.json").read_text())
    edit(meta)
    (saved / "earmark.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=words):
        earmark.load(saved)


def test_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such model directory"):
        earmark.load(tmp_path / "nope")
    with pytest.raises(ArtifactError, match="not an earmark model"):
        earmark.load(tmp_path)
    (tmp_path / "earmark.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        earmark.load(tmp_path)


def test_writing_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "run"
    artifact.write_artifact(target, {"a": 1}, {"w.bin": lambda p: p.write_bytes(b"old")})

    def crash(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        artifact.write_artifact(target, {"a": 2}, {"w.bin": crash})
    assert (target / "w.bin").read_bytes() == b"old"
    assert json.loads((target / "earmark.json").read_text())["a"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary left behind
    artifact.write_artifact(target, {"a": 3}, {"w.bin": lambda p: p.write_bytes(b"new")})
    assert (target / "w.bin").read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == [
        "run"
    ]
