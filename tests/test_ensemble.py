from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import earmark
from earmark import data
from earmark.artifact import ArtifactError
from earmark.classifier import Classifier
from earmark.cli import app
from earmark.ensembles import Ensemble
from earmark.errors import EarmarkError, ParameterError
from earmark.training import TrainConfig
from earmark.workflows import SplitSettings, train_run


@pytest.fixture(scope="module")
def runs(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ens-runs")
    split = SplitSettings(test_size=0.25, seed=4)
    out = {}
    for name, clf in (
        ("lr", Classifier("logreg", cache_dir=root / "cache")),
        ("gnb", Classifier("gnb", cache_dir=root / "cache")),
        ("net", Classifier("seed-cnn", train=TrainConfig(epochs=2, batch_size=16, device="cpu"))),
    ):
        out[name] = train_run(demo_digits, clf, root / name, split=split).out
    return out


@pytest.fixture(scope="module")
def test_files(demo_digits: Path) -> list[str]:
    return SplitSettings(test_size=0.25, seed=4).apply(data.load(demo_digits)).test.filepaths


def test_a_model_with_itself_equals_the_model(runs, test_files) -> None:
    single = earmark.load(runs["lr"])
    for method in ("mean", "vote"):
        ens = Ensemble([single, earmark.load(runs["lr"])], method=method)
        assert ens.predict(test_files) == single.predict(test_files)
    ens = Ensemble([single, earmark.load(runs["lr"])])
    np.testing.assert_allclose(ens.predict_proba(test_files), single.predict_proba(test_files))


def test_methods_combine_classical_and_neural_members(runs, test_files, tmp_path: Path) -> None:
    members = [earmark.load(runs[k]) for k in ("lr", "gnb", "net")]
    ens = Ensemble(members)
    # each member's own probabilities, columns in the ensemble's class order
    per = np.stack(
        [
            m.predict_proba(test_files)[:, [m.classes_.index(c) for c in ens.classes_]]
            for m in members
        ]
    )
    top = per.argmax(axis=2)  # [members, files]
    assert (top != top[0]).any()  # the members disagree somewhere: the vote has work to do
    mean = per.mean(axis=0)
    np.testing.assert_allclose(ens.predict_proba(test_files), mean, rtol=1e-6, atol=1e-9)
    weighted = Ensemble(members, method="weighted", weights=[2, 1, 0.5]).predict_proba(test_files)
    np.testing.assert_allclose(
        weighted, (2 * per[0] + per[1] + 0.5 * per[2]) / 3.5, rtol=1e-6, atol=1e-9
    )
    vote = Ensemble(members, method="vote").predict_proba(test_files)
    share = np.zeros_like(mean)  # each member's top class counts once
    for t in top:
        share[np.arange(len(test_files)), t] += 1 / len(members)
    np.testing.assert_allclose(vote, share, atol=1e-5)  # the share is the score
    # ties in the share go to the higher mean probability
    best = [max(range(len(row)), key=lambda c: (row[c], mean[i, c])) for i, row in enumerate(share)]
    assert list(vote.argmax(axis=1)) == best
    assert Ensemble(members, method="vote").predict(test_files) == [ens.classes_[c] for c in best]
    with pytest.raises(ParameterError, match=r"one weight per member \(3\), got 2"):
        Ensemble(members, method="weighted", weights=[1, 1])


def test_vote_counts_top_classes_and_breaks_ties_by_the_mean(runs) -> None:
    two = [earmark.load(runs["lr"]), earmark.load(runs["gnb"])]
    ens = Ensemble([*two, earmark.load(runs["net"])], method="vote")
    a = np.array([[0.6, 0.4, 0.0], [0.3, 0.3, 0.4]])
    b = np.array([[0.1, 0.2, 0.7], [0.0, 0.9, 0.1]])
    c = np.array([[0.5, 0.45, 0.05], [0.2, 0.8, 0.0]])
    np.testing.assert_allclose(
        ens.combine([a, b, c]), [[2 / 3, 0, 1 / 3], [0, 2 / 3, 1 / 3]], atol=1e-5
    )
    tie = Ensemble(two, method="vote").combine([a[:1], np.array([[0.3, 0.7, 0.0]])])
    np.testing.assert_allclose(tie, [[0.5, 0.5, 0.0]], atol=1e-5)
    assert tie.argmax() == 1  # 1/2 each: class 1 has the higher mean (0.55 against 0.45)


def test_ensemble_artifact_round_trip_and_evaluate(runs, demo_digits: Path, tmp_path: Path) -> None:
    ens, record = Ensemble.from_runs([runs["lr"], runs["net"]], method="mean")
    out = ens.save(tmp_path / "ens", extra=record)
    back = earmark.load(out)
    assert isinstance(back, Ensemble) and back.method == "mean" and len(back.members) == 2
    files = [str(p) for p in sorted((demo_digits / "one").glob("*.wav"))][:4]
    np.testing.assert_allclose(back.predict_proba(files), ens.predict_proba(files))
    assert json.loads((out / "earmark.json").read_text())["data"]["split"]["seed"] == 4
    res = CliRunner().invoke(app, ["evaluate", str(out), str(demo_digits), "--split", "test"])
    assert res.exit_code == 0, res.output
    assert "test split: 20 files" in res.output


def test_cli_ensemble_and_predict(runs, demo_digits: Path, tmp_path: Path) -> None:
    out = tmp_path / "vote"
    res = CliRunner().invoke(
        app,
        [
            "ensemble",
            str(runs["lr"]),
            str(runs["gnb"]),
            str(runs["net"]),
            "--method",
            "vote",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "3 members (vote)" in res.output
    res = CliRunner().invoke(
        app, ["predict", str(out), str(demo_digits / "two" / "v000.wav"), "--json"]
    )
    assert res.exit_code == 0 and json.loads(res.stdout)["predictions"][0]["labels"]


def test_members_must_know_the_same_classes(runs) -> None:
    a = earmark.load(runs["lr"])
    b = earmark.load(runs["gnb"])
    b.classes_ = b.classes_[:-1]
    with pytest.raises(EarmarkError, match="different classes"):
        Ensemble([a, b])


# -- members inside, weights finite ---------------------------------------------------------------


@pytest.fixture(scope="module")
def two(runs) -> list[Classifier]:
    return [earmark.load(runs["lr"]), earmark.load(runs["gnb"])]


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        ([float("nan"), 1.0], "weights[0]: must be a finite number >= 0, got nan"),
        ([1.0, float("inf")], "weights[1]: must be a finite number >= 0, got inf"),
        ([-1.0, 2.0], "weights[0]: must be a finite number >= 0, got -1.0"),
        ([0.0, 0.0], "weights: the weights must not all be zero"),
        ([1.0], "weights: expected one weight per member (2), got 1"),
        (["1", 1.0], "weights[0]: expected a number, got '1'"),
    ],
)
def test_bad_weights_are_refused_when_made(two, weights, words: str) -> None:
    with pytest.raises(ParameterError) as info:
        Ensemble(two, method="weighted", weights=weights)
    assert str(info.value) == words


@pytest.fixture(scope="module")
def weighted(two, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ens = Ensemble(two, method="weighted", weights=[2.0, 1.0])
    return ens.save(tmp_path_factory.mktemp("weighted") / "ens")


def _copy_edit(src: Path, tmp_path: Path, change) -> Path:
    import shutil

    out = Path(shutil.copytree(src, tmp_path / "ens", symlinks=True))
    meta = json.loads((out / "earmark.json").read_text())
    change(meta)
    (out / "earmark.json").write_text(json.dumps(meta))
    return out


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m.update(weights=[float("nan"), 1.0]), "weights[0]: must be a finite number"),
        (lambda m: m.update(weights=[-1.0, 1.0]), "weights[0]: must be a finite number >= 0"),
        (lambda m: m.update(weights=[0, 0]), "the weights must not all be zero"),
        (lambda m: m.update(weights=None), "weights: the weighted method needs one weight"),
    ],
)
def test_bad_weights_are_refused_at_load_and_by_the_cli(
    weighted: Path, tmp_path: Path, demo_digits: Path, change, words: str
) -> None:
    ens = _copy_edit(weighted, tmp_path, change)
    with pytest.raises(EarmarkError) as info:
        earmark.load(ens)
    assert words in str(info.value) and "\n" not in str(info.value)
    res = CliRunner().invoke(app, ["predict", str(ens), str(demo_digits / "two" / "v000.wav")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert [line for line in res.stderr.splitlines() if line.strip()] == [f"error: {info.value!s}"]


def test_the_cli_refuses_a_nan_weight(runs, tmp_path: Path) -> None:
    out = tmp_path / "nan"
    args = ["ensemble", str(runs["lr"]), str(runs["gnb"]), "--method", "weighted"]
    res = CliRunner().invoke(app, [*args, "--weights", "nan,1", "--out", str(out)])
    assert res.exit_code == 1 and not out.exists(), res.output
    assert res.stderr.strip() == "error: weights[0]: must be a finite number >= 0, got nan"


@pytest.mark.parametrize(
    "name",
    ["ABSOLUTE", "../lr", "../../lr", "0-logreg/../../../lr", "..", ".", "", "a\\b", 7],
)
def test_member_names_outside_the_ensemble_are_refused(
    weighted: Path, runs, tmp_path: Path, name
) -> None:
    name = str(runs["lr"]) if name == "ABSOLUTE" else name
    ens = _copy_edit(weighted, tmp_path, lambda m: m["member_names"].__setitem__(0, name))
    with pytest.raises(ArtifactError) as info:
        earmark.load(ens)
    assert f"{ens / 'earmark.json'}: member_names[0]: " in str(info.value)


def test_a_member_linked_from_outside_the_ensemble_is_refused(
    weighted: Path, runs, tmp_path: Path
) -> None:
    import shutil

    ens = _copy_edit(weighted, tmp_path, lambda m: None)
    first = json.loads((ens / "earmark.json").read_text())["member_names"][0]
    shutil.rmtree(ens / "members" / first)
    (ens / "members" / first).symlink_to(runs["lr"], target_is_directory=True)
    with pytest.raises(ArtifactError, match=r"member '0-logreg' resolves outside the model"):
        earmark.load(ens)
    shutil.rmtree(ens / "members")  # the whole folder of members elsewhere
    (ens / "members").symlink_to(weighted / "members", target_is_directory=True)
    with pytest.raises(ArtifactError, match=r": members resolves outside the model"):
        earmark.load(ens)
    assert isinstance(earmark.load(weighted), Ensemble)  # the original is untouched
