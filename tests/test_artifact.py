from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_an_estimator_earmark_does_not_train_is_refused(saved: Path, splits, cache: Path) -> None:
    """scikit-learn's own estimators are not trusted wholesale: only those earmark writes."""
    from sklearn.dummy import DummyClassifier

    clf = Classifier("gnb", cache_dir=cache).fit(splits.train)
    clf.estimator_.pipeline_ = Pipeline([("dummy", DummyClassifier().fit([[0.0]], ["a"]))])
    out = clf.save(saved.parent / "dummy")
    with pytest.raises(ArtifactError, match=r"allow-list: sklearn\.dummy\.DummyClassifier"):
        earmark.load(out)


def test_loading_a_classical_model_imports_neither_torch_nor_all_of_sklearn(saved: Path) -> None:
    """skops' default trust list walks every scikit-learn module (and imports torch): ~2.5 s
    of each one-clip ``earmark predict``. earmark's own allow-list makes it unnecessary."""
    code = (
        "import sys, earmark\n"
        f"earmark.load({str(saved)!r})\n"
        "print('torch' in sys.modules, 'sklearn.gaussian_process' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


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


# -- nothing lost: outputs replace only what earmark wrote -------------------------------------


def _user_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    (root / "sub" / "data.csv").write_text("a,b\n")
    return root


def test_write_artifact_never_replaces_a_file_or_a_users_folder(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path / "mine")
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    for target in (folder, note):
        with pytest.raises(artifact.OutputError, match="earmark will not replace it"):
            artifact.write_artifact(target, {"a": 1}, {"w.bin": lambda p: p.write_bytes(b"x")})
    assert note.read_text() == "keep me" and (folder / "sub" / "data.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]  # no temporaries


def test_check_out_refuses_what_is_not_earmarks(tmp_path: Path) -> None:
    folder = _user_folder(tmp_path / "mine")
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    for target in (folder, note):
        for overwrite in (False, True):
            with pytest.raises(artifact.OutputError) as info:
                artifact.check_out(target, overwrite=overwrite)
            assert "earmark replaces only what it wrote" in str(info.value)
    with pytest.raises(artifact.OutputError, match="is a file, not a folder"):
        artifact.check_out(note / "run")  # a file where a folder is expected
    with pytest.raises(artifact.OutputError, match="is a folder; give a file name"):
        artifact.check_out(folder, file=True, overwrite=True)
    with pytest.raises(artifact.OutputError, match="a file is there"):
        artifact.check_out(note, into=True)


def test_check_out_takes_new_empty_and_with_overwrite_earmarks_own(tmp_path: Path) -> None:
    assert artifact.check_out(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "empty").mkdir()
    artifact.check_out(tmp_path / "empty")
    model = artifact.write_artifact(tmp_path / "model", {"a": 1}, {"w": lambda p: p.write_text("")})
    run = tmp_path / "run"  # a training run stopped before its model was saved
    artifact.write_artifact(run / "checkpoint", {"kind": "checkpoint"}, {})
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text("{}")
    (report / "report.md").write_text("#")
    out_file = tmp_path / "f.npz"
    out_file.write_bytes(b"x")
    for target, kind in ((model, "model"), (run, "run"), (report, "report")):
        assert artifact.output_kind(target) == kind
        with pytest.raises(artifact.OutputError, match=f"earlier earmark {kind}; pass --overwrite"):
            artifact.check_out(target)
        artifact.check_out(target, overwrite=True)
    with pytest.raises(artifact.OutputError, match="already exists; pass --overwrite"):
        artifact.check_out(out_file, file=True)
    artifact.check_out(out_file, file=True, overwrite=True)
    (run / "notes.txt").write_text("mine")  # the user's file in a run: no longer earmark's own
    assert artifact.output_kind(run) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_out_refuses_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(artifact.OutputError, match="is not writable"):
            artifact.check_out(ro / "run")
    finally:
        ro.chmod(0o755)


def test_written_files_have_the_umasks_mode(tmp_path: Path) -> None:
    from earmark.atomic import atomic_text

    old = os.umask(0o022)
    try:
        text = atomic_text(tmp_path / "report.md", "# hi")
        model = artifact.write_artifact(tmp_path / "m", {"a": 1}, {"w": lambda p: p.write_text("")})
    finally:
        os.umask(old)
    assert text.stat().st_mode & 0o777 == 0o644  # tempfile alone leaves 0600
    assert model.stat().st_mode & 0o777 == 0o755  # mkdtemp alone leaves 0700
    assert (model / "earmark.json").stat().st_mode & 0o777 == 0o644
