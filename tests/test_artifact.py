from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
        (lambda m: m.pop("classes"), "classes: missing"),
        (lambda m: m.update(schema_version=99), "newer than this earmark reads"),
        (lambda m: m["files"].update({"../x": {"sha256": "0"}}), "not a plain name"),
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


# -- artifacts validated, not trusted ------------------------------------------------------------


@pytest.fixture(scope="module")
def logreg_run(splits, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    clf = Classifier("logreg", cache_dir=cache).fit(splits.train)
    return clf.save(tmp_path_factory.mktemp("valid") / "logreg")


@pytest.fixture(scope="module")
def net_run(splits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from earmark.training import TrainConfig

    quick = TrainConfig(epochs=1, batch_size=16, device="cpu", seed=0, augment="none")
    clf = Classifier("cnn", params={"widths": [4, 8]}, train=quick).fit(splits.train)
    return clf.save(tmp_path_factory.mktemp("valid") / "cnn")


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def _edit(run: Path, change) -> None:
    meta = json.loads((run / "earmark.json").read_text())
    change(meta)
    (run / "earmark.json").write_text(json.dumps(meta))


def _resign(run: Path, name: str) -> None:
    """Record ``name``'s current checksum and size: only the validation can stop it now."""
    data = (run / name).read_bytes()
    facts = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _edit(run, lambda m: m["files"][name].update(facts))


def _set(*path_and_value):
    """An edit of earmark.json: the value at a path of keys."""
    *path, value = path_and_value

    def change(meta: dict) -> None:
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _on_run(edit):
    """Marks an edit of the run directory (not of its earmark.json alone)."""
    edit.on_run = True
    return edit


def _skops(make):
    """An edit replacing model.skops by ``make()`` (its checksum recorded)."""

    @_on_run
    def change(run: Path) -> None:
        artifact.save_skops(make(run), run / "model.skops")
        _resign(run, "model.skops")

    return change


def _unfitted(run: Path) -> Pipeline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])


def _gnb(run: Path) -> Pipeline:
    """A fitted Pipeline of another learner (GaussianNB) where earmark.json says logreg."""
    from sklearn.naive_bayes import GaussianNB
    from sklearn.preprocessing import StandardScaler

    meta = json.loads((run / "earmark.json").read_text())
    X = np.random.default_rng(0).standard_normal((40, meta["n_features"]))
    y = np.asarray(meta["classes"] * 4, dtype=object)
    return Pipeline([("scale", StandardScaler()), ("model", GaussianNB())]).fit(X, y)


@_on_run
def _deep(run: Path) -> None:
    text = (run / "earmark.json").read_text().rstrip()[:-1]
    (run / "earmark.json").write_text(f'{text}, "x": {"[" * 100_000}{"]" * 100_000}}}')


def _swap(i: int, j: int):
    def change(meta: dict) -> None:
        meta["classes"][i] = meta["classes"][j]

    return change


# (id, which run, the edit (of earmark.json, or _on_run), words the one-line error holds)
PROBES = [
    ("n_fft-1e9", "net", _set("features", "n_fft", 1e9), "features.n_fft: expected an integer"),
    ("n_fft-10**9", "net", _set("features", "n_fft", 10**9), "features.n_fft: must be <= 65536"),
    ("duration-1e9", "net", _set("audio", "duration", 1e9), "audio.duration: must be <= 86400"),
    ("widths-1e9", "net", _set("params", "widths", [1e9]),
     "params.widths[0]: must be in [1, 1024], got 1000000000"),
    ("widths-larger-than-the-file", "net", _set("params", "widths", [1024, 1024]),
     "bytes of weights; the file holds"),
    ("other-widths", "net", _set("params", "widths", [4, 4]), "weights do not fit cnn"),
    ("classes-5", "logreg", _set("classes", 5), "classes: expected a list, got 5"),
    ("classes-twice", "logreg", _swap(1, 0), "classes[1]: 'eight' is listed twice"),
    ("classes-empty-name", "logreg", _set("classes", 0, ""), "classes[0]: must not be empty"),
    ("deep-nesting", "logreg", _deep, "levels deep"),
    ("17-MB", "logreg", _set("metrics", "pad", "x" * 17 * 2**20), "more than an earmark.json"),
    ("unfitted-estimator", "logreg", _skops(_unfitted), "is not fitted"),
    ("foreign-object", "logreg", _skops(lambda run: {"not": "a model"}),
     "holds a dict, not the scikit-learn Pipeline"),
    ("another-learner", "logreg", _skops(_gnb),
     "holds a GaussianNB where earmark.json's model is a LogisticRegression"),
    ("clip_seconds-nan", "logreg", _set("clip_seconds", float("nan")),
     "clip_seconds: must be a finite number"),
    ("sample_rate-10**12", "logreg", _set("audio", "sample_rate", 10**12),
     "audio.sample_rate: must be <= 768000"),
    ("hop_length-0", "logreg", _set("features", "hop_length", 0),
     "features.hop_length: must be >= 1"),
    ("n_mels-10**9", "logreg", _set("features", "n_mels", 10**9), "features.n_mels: must be <="),
    ("files-dotdot", "logreg", _set("files", "..", {"directory": True}),
     "'..' is not a plain name inside the artifact"),
    ("family-pickle", "logreg", _set("family", "pickle"), "family: expected one of classical"),
    ("n_mfcc-another-width", "logreg", _set("features", "n_mfcc", 14),
     "values per clip; the model takes"),
]  # fmt: skip


@pytest.fixture
def probe_run(request, logreg_run: Path, net_run: Path, tmp_path: Path) -> Path:
    _, which, edit, _ = request.param
    run = _copy(logreg_run if which == "logreg" else net_run, tmp_path)
    if getattr(edit, "on_run", False):
        edit(run)
    else:
        _edit(run, edit)
    return run


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize(
    ("probe_run", "words"),
    [pytest.param(p, p[3], id=p[0]) for p in PROBES],
    indirect=["probe_run"],
)
def test_an_edited_artifact_is_one_line_error(probe_run: Path, words: str, demo_digits) -> None:
    from typer.testing import CliRunner

    from earmark.cli import app
    from earmark.errors import EarmarkError

    with pytest.raises(EarmarkError) as info:
        earmark.load(probe_run)
    text = _one_line(info.value)
    assert text.startswith(str(probe_run)) and words in text, text
    res = CliRunner().invoke(
        app, ["predict", str(probe_run), str(demo_digits / "one" / "v000.wav")]
    )
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines


def test_the_cli_process_prints_one_line_and_no_traceback(net_run: Path, tmp_path: Path) -> None:
    run = _copy(net_run, tmp_path)
    _edit(run, _set("features", "n_fft", 10**9))
    clip = tmp_path / "clip.wav"
    import soundfile as sf

    sf.write(clip, np.zeros(1600, np.float32), 16_000)
    earmark_cli = [sys.executable, "-c", "from earmark.cli import main; main()"]
    out = subprocess.run(
        [*earmark_cli, "predict", str(run), str(clip)], capture_output=True, text=True
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == (
        f"error: {run / 'earmark.json'}: features.n_fft: must be <= 65536, got 1000000000"
    )


def test_the_schema_accepts_what_earmark_writes(logreg_run: Path, net_run: Path) -> None:
    """Every registered model with its defaults, and every feature kind with the model's
    own settings, passes the schema (the bounds are for what earmark never writes); every
    number that sizes a network has a bound."""
    from earmark.artifact_schema import NEURAL_BOUNDS, check_param_bounds, validate_meta
    from earmark.checks import check_params

    for run in (logreg_run, net_run):
        base = json.loads((run / "earmark.json").read_text())
        for name in registry.names(base["family"]):
            spec = registry.get(name)
            meta = {**base, "model": name, "params": dict(spec.defaults)}
            validate_meta(meta, newest=artifact.SCHEMA_VERSION)
            check_param_bounds(spec.family, check_params(name, spec.defaults))
            for p in spec.params if spec.family == "neural" else ():
                numeric = any(word in str(p.type) for word in ("int", "float"))
                assert not numeric or p.name in NEURAL_BOUNDS, f"{name}: {p.name} is unbounded"
    for kind in ("waveform", "stft", "logmel", "mfcc", "handcrafted"):
        meta = json.loads((net_run / "earmark.json").read_text())
        meta["features"] = earmark.FeatureConfig(kind=kind).to_dict()
        validate_meta(meta, newest=artifact.SCHEMA_VERSION)


def test_a_weight_file_resolving_outside_the_artifact_is_refused(
    logreg_run: Path, tmp_path: Path
) -> None:
    run = _copy(logreg_run, tmp_path)
    outside = tmp_path / "elsewhere.skops"
    (run / "model.skops").rename(outside)
    (run / "model.skops").symlink_to(outside)
    with pytest.raises(ArtifactError, match=r"model\.skops resolves outside the model"):
        earmark.load(run)


def test_an_array_larger_than_its_file_is_refused_before_it_is_allocated(
    logreg_run: Path, tmp_path: Path
) -> None:
    """numpy allocates an array from its .npy header's shape before reading its data."""
    import zipfile

    run = _copy(logreg_run, tmp_path)
    src = run / "model.skops"
    with zipfile.ZipFile(src) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    name = next(n for n in members if n.endswith(".npy"))
    data = members[name]
    header_end = data.index(b"\n") + 1
    header = data[:header_end].decode("latin1")
    shape = header[header.index("'shape': (") + 10 : header.index(")", header.index("'shape'"))]
    bigger = header.replace(f"'shape': ({shape})", "'shape': (4000000000,)")
    members[name] = bigger.encode("latin1") + data[header_end:]
    with zipfile.ZipFile(src, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    _resign(run, "model.skops")
    with pytest.raises(ArtifactError, match=r"announces \d+ bytes of array data"):
        earmark.load(run)


# -- any edit of earmark.json: loads, or one earmark error, fast --------------------------------

_SPECIAL = [1e9, 10**9, 2**63, 1e300, -1, 0, 65_537, float("nan"), float("inf"), "", "..", "/"]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(_SPECIAL),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node, prefix: tuple = ()):
    """Every (non-root) path of keys and indices in a JSON document."""
    if prefix:
        yield prefix
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _at(node, path: tuple):
    for key in path:
        node = node[key]
    return node


@settings(
    max_examples=80,
    derandomize=True,  # the same edits on every run: CI stays repeatable
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_edit_of_earmark_json_loads_or_is_one_earmark_error(
    data, logreg_run: Path, net_run: Path, tmp_path: Path
) -> None:
    import resource
    import time

    from earmark.errors import EarmarkError

    runs = {"logreg": logreg_run, "net": net_run}
    which = data.draw(st.sampled_from(sorted(runs)))
    run = tmp_path / runs[which].name
    if not run.exists():  # one copy per run; each example rewrites its earmark.json
        _copy(runs[which], tmp_path)
    meta = json.loads((runs[which] / "earmark.json").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = sorted(_paths(meta), key=repr)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent, key = _at(meta, path[:-1]), path[-1]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=8))] = data.draw(_JSON)
        else:
            parent[key] = data.draw(_JSON)
    (run / "earmark.json").write_text(json.dumps(meta))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        earmark.load(run)
    except EarmarkError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(run)), str(exc)
    assert time.perf_counter() - start < 10  # nothing sized by an unchecked number
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak  # KiB
    assert grown < 512 * 1024


# -- the node arrays scikit-learn's compiled code walks ------------------------------------------


@pytest.fixture(scope="module")
def rf_run(splits, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    clf = Classifier("rf", params={"n_estimators": 2}, cache_dir=cache).fit(splits.train)
    return clf.save(tmp_path_factory.mktemp("rf") / "rf")


@pytest.fixture(scope="module")
def hgb_run(splits, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    clf = Classifier("hgb", params={"max_iter": 3}, cache_dir=cache).fit(splits.train)
    return clf.save(tmp_path_factory.mktemp("hgb") / "hgb")


def _tamper(run: Path, tmp_path: Path, change) -> Path:
    """A copy of ``run`` whose skops model was loaded, changed by ``change(pipeline)``, saved
    again and its checksum recorded."""
    out = _copy(run, tmp_path)
    pipeline = artifact.load_skops(out / "model.skops")
    change(pipeline)
    artifact.save_skops(pipeline, out / "model.skops")
    _resign(out, "model.skops")
    return out


def _tree_change(field: str, value):
    """Set ``field`` of the first split node of the first tree of a forest."""

    def change(pipeline) -> None:
        tree = pipeline.steps[-1][1].estimators_[0].tree_
        state = tree.__getstate__()
        nodes = state["nodes"].copy()
        first = int(np.flatnonzero(nodes["left_child"] != -1)[0])
        nodes[field][first] = value(len(nodes))
        tree.__setstate__({**state, "nodes": nodes})

    return change


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        pytest.param("feature", lambda n: 10**6, "splits on a feature beyond the 455", id="far"),
        pytest.param("feature", lambda n: -3, "splits on a feature beyond the 455", id="negative"),
        pytest.param("left_child", lambda n: n + 10, "are not after their parent", id="outside"),
        pytest.param("right_child", lambda n: 0, "are not after their parent", id="loop"),
    ],
)
def test_a_forest_with_crafted_node_arrays_is_refused(
    rf_run: Path, splits, tmp_path: Path, field: str, value, words: str
) -> None:
    run = rf_run
    assert earmark.load(run).predict_proba(splits.test.filepaths[:2]).shape == (2, 10)
    with pytest.raises(ArtifactError, match=words):
        earmark.load(_tamper(run, tmp_path, _tree_change(field, value)))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        pytest.param("feature_idx", 10**6, "a boosted tree splits on a feature beyond", id="far"),
        pytest.param("left", 0, "boosted tree whose children are not after", id="loop"),
        pytest.param("right", 10**6, "boosted tree whose children are not after", id="outside"),
        pytest.param("is_categorical", 1, "categorical splits", id="categorical"),
    ],
)
def test_a_boosted_tree_with_crafted_nodes_is_refused(
    hgb_run: Path, splits, tmp_path: Path, field: str, value, words: str
) -> None:
    """skops does not trust HistGradientBoosting's TreePredictor (its node array is walked by
    compiled code); earmark does, having checked that array."""
    run = hgb_run
    assert earmark.load(run).predict_proba(splits.test.filepaths[:2]).shape == (2, 10)

    def change(pipeline) -> None:
        nodes = pipeline.steps[-1][1]._predictors[0][0].nodes
        nodes[field][int(np.flatnonzero(~nodes["is_leaf"].astype(bool))[0])] = value

    with pytest.raises(ArtifactError, match=words):
        earmark.load(_tamper(run, tmp_path, change))


def test_a_nearest_neighbour_tree_with_crafted_arrays_is_refused(tmp_path: Path) -> None:
    from sklearn.neighbors import BallTree, KDTree

    rng = np.random.default_rng(0)
    for kind in (KDTree, BallTree):
        tree = kind(rng.standard_normal((200, 3)), leaf_size=5)
        artifact.check_trees([tree], tmp_path, n_features=3)  # as fitted: fine
        state = list(tree.__getstate__())
        idx = state[1].copy()
        idx[0] = 10**6  # a row beyond the data
        state[1] = idx
        tree.__setstate__(tuple(state))
        with pytest.raises(ArtifactError, match="index is not a permutation of its 200 rows"):
            artifact.check_trees([tree], tmp_path, n_features=3)
