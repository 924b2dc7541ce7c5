from __future__ import annotations

import numpy as np
import pytest

from earmark.data import Manifest, check_no_leak, holdout, kfold, predefined_folds
from earmark.data.splits import from_split_column
from earmark.errors import SplitError


def grouped_manifest(n_groups: int = 30, per_group: int = 10, unlabelled: int = 0) -> Manifest:
    """Speaker-style data: every group says each of 5 classes twice."""
    paths, labels, groups = [], [], []
    for g in range(n_groups):
        for k in range(per_group):
            paths.append(f"/data/g{g}_{k}.wav")
            labels.append(f"c{k % 5}")
            groups.append(f"speaker{g}")
    for u in range(unlabelled):
        paths.append(f"/data/u{u}.wav")
        labels.append(None)
        groups.append(f"speaker{u % n_groups}")
    return Manifest.from_records(paths, labels, groups=groups)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_holdout_never_leaks_and_keeps_proportions(seed: int) -> None:
    m = grouped_manifest()
    s = holdout(m, test_size=0.2, valid_size=0.1, seed=seed)
    for a, b in ((s.train, s.test), (s.train, s.valid), (s.valid, s.test)):
        check_no_leak(a, b)
    assert sum(s.sizes().values()) == len(m)
    assert abs(len(s.test) / len(m) - 0.2) < 0.05
    assert s.test.counts() == {f"c{k}": len(s.test) // 5 for k in range(5)}


def test_holdout_without_groups_is_stratified() -> None:
    labels = ["a"] * 80 + ["b"] * 20
    m = Manifest.from_records([f"/x/{i}.wav" for i in range(100)], labels)
    s = holdout(m, test_size=0.2, valid_size=0.0)
    assert s.valid is None and s.test.counts() == {"a": 16, "b": 4}


def test_seeds_change_and_repeat_the_split() -> None:
    m = grouped_manifest()
    a, b, c = (holdout(m, seed=s).test.filepaths for s in (0, 0, 1))
    assert a == b and a != c


@pytest.mark.parametrize("k", [3, 5])
def test_group_kfold_covers_every_row_once_without_leaks(k: int) -> None:
    m = grouped_manifest()
    folds = kfold(m, k)
    assert len(folds) == k
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(len(m)))
    groups = m.groups
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])


def test_plain_kfold_when_asked_to_ignore_groups() -> None:
    m = grouped_manifest()
    folds = kfold(m, 5, group=False)
    assert any(set(m.groups[tr]) & set(m.groups[te]) for tr, te in folds)


def test_unlabelled_rows_only_ever_train_and_never_leak_a_group() -> None:
    m = grouped_manifest(unlabelled=12)
    unl = set(np.flatnonzero(~m.labelled).tolist())
    s = holdout(m)
    assert all(p.startswith("/data/g") for p in s.test.filepaths + s.valid.filepaths)
    held = set(s.test.frame["group"]) | set(s.valid.frame["group"])
    kept = [g for p, g in zip(s.train.filepaths, s.train.groups, strict=True) if "/u" in p]
    expected = {f"speaker{u % 30}" for u in range(12)} - held
    assert set(kept) == expected and len(kept) == len(expected)
    for tr, te in kfold(m, 4):
        assert not unl & set(te.tolist())
        assert not set(m.groups[tr]) & set(m.groups[te])
        assert any(i in unl for i in tr)


def test_predefined_folds_and_split_column() -> None:
    m = Manifest.from_records(
        [f"/x/{i}.wav" for i in range(9)],
        ["a", "b", "c"] * 3,
        folds=[1, 1, 1, 2, 2, 2, 3, 3, 3],
        splits=["train"] * 5 + ["valid", "test", "test", "test"],
    )
    folds = predefined_folds(m)
    assert [te.tolist() for _, te in folds] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert sorted(folds[0][0].tolist()) == [3, 4, 5, 6, 7, 8]
    s = from_split_column(m)
    assert s.sizes() == {"train": 5, "valid": 1, "test": 3}
    assert m.split().sizes() == s.sizes() and len(m.test) == 3


def test_check_no_leak_catches_shared_groups_and_files() -> None:
    m = grouped_manifest(n_groups=4)
    with pytest.raises(SplitError, match="groups are on both sides"):
        check_no_leak(m.subset([0, 1]), m.subset([2, 3]))
    with pytest.raises(SplitError, match="files are on both sides"):
        check_no_leak(m.subset([0, 1]), m.subset([1, 15]))
    check_no_leak(m.subset([0, 1]), m.subset([10, 11]))


def test_impossible_splits_say_why() -> None:
    m = grouped_manifest(n_groups=3)
    with pytest.raises(SplitError, match="3 groups cannot make 5"):
        kfold(m, 5)
    with pytest.raises(SplitError, match="bad sizes"):
        holdout(m, test_size=0.7, valid_size=0.4)
    with pytest.raises(SplitError, match="no fold column"):
        predefined_folds(m)
    with pytest.raises(SplitError, match="no group column"):
        holdout(Manifest.from_records(["/a.wav", "/b.wav"], ["x", "y"]), group=True)
