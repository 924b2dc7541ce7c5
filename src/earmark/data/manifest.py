"""The manifest: one row per audio file, with its label and what splits must respect.

Columns: ``filepath`` (absolute), ``label`` (text; empty for unlabelled audio), ``group``
(speaker, recording, kit...: never on both sides of a split), ``fold`` (a predefined
cross-validation fold) and ``split`` (``train`` / ``valid`` / ``test`` when the data set
defines one). Only ``filepath`` and ``label`` are required.

Multi-label: a manifest whose label cells hold several classes joined by ``;``
(``bird;frog``), or one built with ``multi_label=True``, is multi-label. Its classes are the
union of the names in its cells, its targets (:meth:`Manifest.targets`) a float multi-hot
matrix, and every row is labelled: an empty cell is a *negative* (none of the classes is
present: background, silence), all zeros in the targets. That differs from a single-label
manifest, where an empty cell means *unlabelled* (audio whose class is unknown, which only a
semi-supervised model such as ``sgan`` learns from). A multi-label manifest has no
unlabelled rows.

A row may be a *segment* of its file: ``start_s`` and ``end_s`` (seconds into the file; both
or neither) make every loader read only that span, as a clip of its own (the windows of an
annotated recording, :func:`earmark.data.annotations.windows_manifest`). Rows without them
(or with them empty) are whole files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from earmark.errors import LayoutError

if TYPE_CHECKING:
    from earmark.data.splits import Splits

__all__ = ["COLUMNS", "Manifest"]

COLUMNS = ("filepath", "label", "group", "fold", "split")
SPLIT_NAMES = ("train", "valid", "test")
#: What joins the classes of one multi-label cell (``bird;frog``).
LABEL_SEP = ";"


def split_label(cell: object) -> list[str]:
    """The class names of a multi-label cell: split on ``;``, stripped, empty parts dropped,
    each once, sorted (``None`` / NA: no class)."""
    if cell is None or pd.isna(cell):
        return []
    return sorted({part.strip() for part in str(cell).split(LABEL_SEP) if part.strip()})


@dataclass
class Manifest:
    """A table of audio files (``frame``) and where it came from (``root``, ``layout``).

    ``multi_label``: ``None`` (default) makes the manifest multi-label when a label cell
    holds ``;``; ``True`` / ``False`` say so explicitly (see the module doc)."""

    frame: pd.DataFrame
    root: Path | None = None
    layout: str = "custom"
    multi_label: bool | None = None
    _splits: Splits | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        missing = {"filepath", "label"} - set(self.frame.columns)
        if missing:
            raise LayoutError(f"a manifest needs the columns filepath and label; missing {missing}")
        df = self.frame.reset_index(drop=True).copy()
        for col in COLUMNS:
            if col not in df.columns:
                df[col] = pd.NA
        df["filepath"] = df["filepath"].astype(str)
        for col in ("label", "group", "split"):
            df[col] = df[col].astype("string").str.strip().replace("", pd.NA)
        df["fold"] = pd.to_numeric(df["fold"], errors="coerce").astype("Int64")
        if "start_s" in df.columns or "end_s" in df.columns:
            _check_segments(df)
        bad = set(df["split"].dropna().unique()) - set(SPLIT_NAMES)
        if bad:
            raise LayoutError(f"unknown split names {sorted(bad)}; use {SPLIT_NAMES}")
        has_sep = bool(df["label"].dropna().str.contains(LABEL_SEP, regex=False).any())
        if self.multi_label is None:
            self.multi_label = has_sep
        elif not self.multi_label and has_sep:
            raise LayoutError(
                f"label cells hold {LABEL_SEP!r} (several classes) but multi_label=False"
            )
        self.multi_label = bool(self.multi_label)
        if self.multi_label:  # one spelling per set of classes: sorted, each once
            canon = [LABEL_SEP.join(split_label(v)) for v in df["label"]]
            df["label"] = pd.Series(canon, index=df.index, dtype="string").replace("", pd.NA)
        extra = [c for c in df.columns if c not in COLUMNS]
        self.frame = df[list(COLUMNS) + extra]
        if self.root is not None:
            self.root = Path(self.root)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_records(
        cls,
        filepaths: Sequence[str | Path],
        labels: Sequence[str | None],
        *,
        groups: Sequence[str | None] | None = None,
        folds: Sequence[int | None] | None = None,
        splits: Sequence[str | None] | None = None,
        root: Path | None = None,
        layout: str = "custom",
        multi_label: bool | None = None,
    ) -> Manifest:
        """Build a manifest from parallel lists (``None`` for a missing value)."""
        data: dict[str, Sequence] = {"filepath": [str(p) for p in filepaths], "label": labels}
        for name, values in (("group", groups), ("fold", folds), ("split", splits)):
            if values is not None:
                data[name] = values
        return cls(pd.DataFrame(data), root=root, layout=layout, multi_label=multi_label)

    # -- views ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (
            f"Manifest(layout={self.layout!r}, files={len(self)}, classes={len(self.classes)}, "
            f"{'multi-label, ' if self.multi_label else ''}"
            f"groups={self.frame['group'].nunique() if self.has_groups else 0})"
        )

    @property
    def filepaths(self) -> list[str]:
        return self.frame["filepath"].tolist()

    @property
    def has_segments(self) -> bool:
        """Whether some rows are segments of their files (``start_s`` / ``end_s``)."""
        return "start_s" in self.frame.columns and bool(self.frame["start_s"].notna().any())

    @property
    def spans(self) -> list[tuple[float, float] | None]:
        """Per row: ``(offset, duration)`` in seconds of its segment, or ``None`` for a whole
        file (what :func:`earmark.audio.load_clip` takes as ``offset`` / ``duration``)."""
        if not self.has_segments:
            return [None] * len(self)
        starts = self.frame["start_s"].to_numpy(dtype=np.float64, na_value=np.nan)
        ends = self.frame["end_s"].to_numpy(dtype=np.float64, na_value=np.nan)
        return [
            None if np.isnan(a) else (float(a), float(b) - float(a))
            for a, b in zip(starts, ends, strict=True)
        ]

    def describe(self, row: int) -> str:
        """Row ``row`` in words for messages: its file, and its span when it is a segment."""
        span = self.spans[row]
        path = self.filepaths[row]
        return path if span is None else f"{path} [{span[0]:g}-{span[0] + span[1]:g} s]"

    @property
    def labels(self) -> np.ndarray:
        """Labels as an object array; ``None`` marks unlabelled rows."""
        return np.array([None if pd.isna(v) else str(v) for v in self.frame["label"]], dtype=object)

    @property
    def groups(self) -> np.ndarray | None:
        if not self.has_groups:
            return None
        return self.frame["group"].fillna("<none>").astype(str).to_numpy(dtype=object)

    @property
    def classes(self) -> list[str]:
        """The distinct labels, sorted (multi-label: every class named in a cell)."""
        if self.multi_label:
            return sorted({c for v in self.frame["label"].dropna() for c in split_label(v)})
        return sorted(str(v) for v in self.frame["label"].dropna().unique())

    @property
    def has_groups(self) -> bool:
        return bool(self.frame["group"].notna().any())

    @property
    def has_folds(self) -> bool:
        return bool(self.frame["fold"].notna().any())

    @property
    def has_splits(self) -> bool:
        return bool(self.frame["split"].notna().any())

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of the rows that have a label (multi-label: every row; an empty cell
        is a negative)."""
        if self.multi_label:
            return np.ones(len(self), dtype=bool)
        return self.frame["label"].notna().to_numpy()

    def label_ids(self, classes: Sequence[str] | None = None) -> np.ndarray:
        """Integer class ids (index into ``classes``, default :attr:`classes`); -1 if unlabelled.

        A label missing from ``classes`` raises :class:`LayoutError`; so does a multi-label
        manifest (its rows have no one class: use :meth:`targets`).
        """
        if self.multi_label:
            raise LayoutError("a multi-label manifest has no class ids; use targets()")
        classes = list(self.classes if classes is None else classes)
        index = {c: i for i, c in enumerate(classes)}
        out = np.full(len(self), -1, dtype=np.int64)
        for i, lab in enumerate(self.labels):
            if lab is None:
                continue
            if lab not in index:
                raise LayoutError(f"label {lab!r} of {self.filepaths[i]} is not among {classes}")
            out[i] = index[lab]
        return out

    def targets(self, classes: Sequence[str] | None = None) -> np.ndarray:
        """What a model learns from each row: class ids (:meth:`label_ids`) for a
        single-label manifest; for a multi-label one a float32 multi-hot matrix
        ``[rows, classes]`` (an empty cell: all zeros). A class missing from ``classes``
        raises :class:`LayoutError`."""
        if not self.multi_label:
            return self.label_ids(classes)
        classes = list(self.classes if classes is None else classes)
        index = {c: i for i, c in enumerate(classes)}
        out = np.zeros((len(self), len(classes)), dtype=np.float32)
        for i, cell in enumerate(self.frame["label"]):
            for c in split_label(cell):
                if c not in index:
                    raise LayoutError(f"label {c!r} of {self.filepaths[i]} is not among {classes}")
                out[i, index[c]] = 1.0
        return out

    def counts(self) -> dict[str, int]:
        """Files per class (multi-label: files where the class is present)."""
        if self.multi_label:
            totals = self.targets().sum(axis=0)
            return {c: int(n) for c, n in zip(self.classes, totals, strict=True)}
        return {str(k): int(v) for k, v in self.frame["label"].value_counts().sort_index().items()}

    def subset(self, rows: np.ndarray | Sequence[int] | Sequence[bool]) -> Manifest:
        """The manifest restricted to ``rows`` (positions or a boolean mask), same root."""
        rows = np.asarray(rows)
        picked = self.frame[rows] if rows.dtype == bool else self.frame.iloc[rows]
        return Manifest(picked, root=self.root, layout=self.layout, multi_label=self.multi_label)

    # -- splits -------------------------------------------------------------------------------

    def split(self, **kwargs) -> Splits:
        """Train / valid / test manifests: the data set's own split when it has one, else a
        stratified, group-aware holdout (see :func:`earmark.data.splits.holdout`)."""
        from earmark.data.splits import from_split_column, holdout

        if self.has_splits and not kwargs:
            return from_split_column(self)
        return holdout(self, **kwargs)

    def _default_splits(self) -> Splits:
        if self._splits is None:
            self._splits = self.split()
        return self._splits

    @property
    def train(self) -> Manifest:
        """The training part of :meth:`split` with default settings (computed once)."""
        return self._default_splits().train

    @property
    def valid(self) -> Manifest | None:
        return self._default_splits().valid

    @property
    def test(self) -> Manifest:
        return self._default_splits().test

    # -- files --------------------------------------------------------------------------------

    def to_csv(self, path: str | Path) -> Path:
        """Write the manifest as CSV, paths relative to the CSV's folder where possible."""
        path = Path(path)
        df = self.frame.copy()
        base = path.parent.resolve()
        rel = []
        for p in df["filepath"]:
            try:
                rel.append(str(Path(p).resolve().relative_to(base)))
            except ValueError:
                rel.append(p)
        df["filepath"] = rel
        used = [c for c in df.columns if c in ("filepath", "label") or df[c].notna().any()]
        tmp = path.with_name(path.name + ".tmp")
        df[used].to_csv(tmp, index=False)
        tmp.replace(path)
        return path


def _check_segments(df: pd.DataFrame) -> None:
    """Coerce ``start_s`` / ``end_s`` to seconds and check each segment (both or neither,
    ``0 <= start < end``); raises :class:`LayoutError` naming the first bad row."""
    for col in ("start_s", "end_s"):
        if col not in df.columns:
            raise LayoutError("segment rows need both start_s and end_s columns")
        raw = df[col]
        num = pd.to_numeric(raw.replace("", pd.NA), errors="coerce").astype("float64")
        bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise LayoutError(
                f"row {i} ({df['filepath'].iloc[i]}): {col} {raw.iloc[i]!r} is not a number"
            )
        df[col] = num
    start, end = df["start_s"], df["end_s"]
    wrong = (
        (start.isna() != end.isna()) | (start < 0) | (end <= start) | ~np.isfinite(end.fillna(0))
    )
    if wrong.any():
        i = int(np.flatnonzero(wrong.to_numpy())[0])
        raise LayoutError(
            f"row {i} ({df['filepath'].iloc[i]}): a segment needs 0 <= start_s < end_s, "
            f"got start_s={start.iloc[i]} end_s={end.iloc[i]}"
        )
