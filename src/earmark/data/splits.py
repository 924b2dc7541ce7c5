"""Splits that never leak: holdout, k-fold, group k-fold, predefined folds.

When a manifest has groups (speaker, recording, kit...), every split here keeps each group on
one side, and :func:`check_no_leak` proves it. Stratification keeps class proportions as close
as the groups allow (scikit-learn's ``StratifiedGroupKFold``). Unlabelled rows never enter a
test or validation set: they join the training side, except those whose group is held out,
which are left out altogether (unlabelled audio of a test speaker would leak that speaker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)

from earmark.config import JsonConfig
from earmark.errors import SplitError

if TYPE_CHECKING:  # splits take manifests apart; Manifest.split calls back here
    from earmark.data.manifest import Manifest

__all__ = [
    "SplitSettings",
    "Splits",
    "check_no_leak",
    "from_split_column",
    "hide_labels",
    "holdout",
    "kfold",
    "predefined_folds",
]


@dataclass
class Splits:
    """Train, optional validation, and test manifests."""

    train: Manifest
    valid: Manifest | None
    test: Manifest

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid or []), "test": len(self.test)}


def _use_groups(m: Manifest, group: bool | None) -> bool:
    if group and not m.has_groups:
        raise SplitError("group=True but the manifest has no group column")
    return m.has_groups if group is None else group


def _kfold_indices(
    labels: np.ndarray, groups: np.ndarray | None, k: int, *, stratify: bool, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    n = len(labels)
    if k < 2:
        raise SplitError(f"need at least 2 folds, got {k}")
    if groups is not None and len(set(groups)) < k:
        raise SplitError(f"{len(set(groups))} groups cannot make {k} group-disjoint folds")
    if groups is None and n < k:
        raise SplitError(f"{n} files cannot make {k} folds")
    if stratify:
        counts = np.unique(labels, return_counts=True)[1]
        # a class with one file cannot be spread over folds, and scikit-learn refuses to
        # stratify when every class has fewer files than folds (a few labels per class)
        stratify = counts.min() >= 2 and counts.max() >= k
    x = np.zeros(n)
    if groups is not None:
        splitter = (
            StratifiedGroupKFold(k, shuffle=True, random_state=seed)
            if stratify
            else GroupKFold(k, shuffle=True, random_state=seed)
        )
        return [(tr, te) for tr, te in splitter.split(x, labels, groups)]
    splitter = (
        StratifiedKFold(k, shuffle=True, random_state=seed)
        if stratify
        else KFold(k, shuffle=True, random_state=seed)
    )
    return [(tr, te) for tr, te in splitter.split(x, labels)]


def kfold(
    m: Manifest,
    k: int = 5,
    *,
    group: bool | None = None,
    stratify: bool = True,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train rows, test rows) pairs covering every labelled row once as test.

    ``group=None`` uses the manifest's groups when it has them (group k-fold); unlabelled
    rows are added to every training side whose test groups they do not share.
    """
    labelled = np.flatnonzero(m.labelled)
    unlabelled = np.flatnonzero(~m.labelled)
    sub = m.subset(labelled)
    groups = sub.groups if _use_groups(m, group) else None
    folds = _kfold_indices(sub.labels.astype(str), groups, k, stratify=stratify, seed=seed)
    return [
        (
            np.sort(np.r_[labelled[tr], _unlabelled_outside(m, unlabelled, labelled[te])]),
            labelled[te],
        )
        for tr, te in folds
    ]


def _unlabelled_outside(m: Manifest, unlabelled: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The unlabelled rows whose group is not among the groups of the ``held`` rows."""
    if not m.has_groups or not len(unlabelled):
        return unlabelled
    groups = m.groups
    return unlabelled[~np.isin(groups[unlabelled], groups[held])]


def predefined_folds(m: Manifest) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-fold-out over the manifest's ``fold`` column (ESC-50: 5, UrbanSound8K: 10)."""
    if not m.has_folds:
        raise SplitError("the manifest has no fold column")
    folds = m.frame["fold"].to_numpy(dtype=float, na_value=np.nan)
    values = sorted({int(f) for f in folds if not np.isnan(f)})
    if len(values) < 2:
        raise SplitError(f"need at least 2 predefined folds, found {values}")
    out = []
    for f in values:
        test = np.flatnonzero((folds == f) & m.labelled)
        out.append((np.flatnonzero(folds != f), test))
    return out


def holdout(
    m: Manifest,
    *,
    test_size: float = 0.2,
    valid_size: float = 0.1,
    group: bool | None = None,
    stratify: bool = True,
    seed: int = 0,
) -> Splits:
    """Stratified train / valid / test split; group-aware when the manifest has groups.

    Sizes are fractions of the labelled rows. With groups, the split is made by group k-fold
    (one fold of ``round(1 / size)``), so the fractions are met as closely as whole groups
    allow. ``valid_size=0`` gives no validation set.
    """
    if not 0 < test_size < 1 or not 0 <= valid_size < 1 or test_size + valid_size >= 1:
        raise SplitError(f"bad sizes: test_size={test_size}, valid_size={valid_size}")
    use_groups = _use_groups(m, group)
    rows = np.flatnonzero(m.labelled)
    unlabelled = np.flatnonzero(~m.labelled)

    def cut(rows: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
        sub = m.subset(rows)
        k = max(2, round(1 / size))
        groups = sub.groups if use_groups else None
        rest, held = _kfold_indices(
            sub.labels.astype(str), groups, k, stratify=stratify, seed=seed
        )[0]
        return rows[rest], rows[held]

    train, test = cut(rows, test_size)
    valid = None
    if valid_size > 0:
        train, valid = cut(train, valid_size / (1 - test_size))
    held = test if valid is None else np.r_[test, valid]
    if use_groups:
        unlabelled = _unlabelled_outside(m, unlabelled, held)
    splits = Splits(
        train=m.subset(np.sort(np.r_[train, unlabelled])),
        valid=None if valid is None else m.subset(np.sort(valid)),
        test=m.subset(np.sort(test)),
    )
    if use_groups:
        _check_splits(splits)
    return splits


def from_split_column(m: Manifest) -> Splits:
    """The split the data set defines itself (its ``split`` column, e.g. Speech Commands)."""
    if not m.has_splits:
        raise SplitError("the manifest has no split column")
    col = m.frame["split"]
    test = m.subset((col == "test").fillna(False).to_numpy(dtype=bool))
    if len(test) == 0:
        raise SplitError("the manifest's split column names no test rows")
    valid_mask = (col == "valid").fillna(False).to_numpy(dtype=bool)
    return Splits(
        train=m.subset((col == "train").fillna(False).to_numpy(dtype=bool) | col.isna().to_numpy()),
        valid=m.subset(valid_mask) if valid_mask.any() else None,
        test=test,
    )


def check_no_leak(a: Manifest, b: Manifest) -> None:
    """Raise :class:`SplitError` if ``a`` and ``b`` share a group (or a file)."""
    shared_files = set(a.filepaths) & set(b.filepaths)
    if shared_files:
        raise SplitError(f"{len(shared_files)} files are on both sides, e.g. {min(shared_files)}")
    if a.has_groups and b.has_groups:
        shared = set(a.frame["group"].dropna()) & set(b.frame["group"].dropna())
        if shared:
            raise SplitError(f"{len(shared)} groups are on both sides, e.g. {sorted(shared)[:3]}")


def _check_splits(s: Splits) -> None:
    parts = [p for p in (s.train, s.valid, s.test) if p is not None]
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            check_no_leak(a, b)


def hide_labels(m: Manifest, fraction: float, *, seed: int = 0) -> Manifest:
    """A copy of ``m`` where only ``fraction`` of each class's labelled rows keep their label
    (at least one per class, chosen at random with ``seed``); the others become unlabelled.
    For semi-supervised experiments (``--label-fraction``)."""
    if not 0 < fraction <= 1:
        raise SplitError(f"label fraction must be in (0, 1], got {fraction}")
    out = m.subset(np.arange(len(m)))
    if fraction == 1:
        return out
    rng = np.random.default_rng(seed)
    labels = m.labels
    hidden = []
    for c in m.classes:
        rows = np.flatnonzero(labels == c)
        keep = max(1, round(fraction * len(rows)))
        hidden.append(rng.permutation(rows)[keep:])
    out.frame.loc[np.concatenate(hidden), "label"] = pd.NA
    return out


@dataclass(frozen=True)
class SplitSettings(JsonConfig):
    """How a data set is split for training: the data set's own split when it defines one
    (``use_defined``), else a stratified holdout, group-aware when groups exist
    (``group=None``: whenever the manifest has them). Sizes are fractions."""

    test_size: float = 0.2
    valid_size: float = 0.0
    seed: int = 0
    group: bool | None = None
    use_defined: bool = True

    def apply(self, manifest: Manifest) -> Splits:
        """The train / valid / test parts of ``manifest`` these settings make."""
        if self.use_defined and manifest.has_splits:
            return from_split_column(manifest)
        return holdout(
            manifest,
            test_size=self.test_size,
            valid_size=self.valid_size,
            group=self.group,
            seed=self.seed,
        )
