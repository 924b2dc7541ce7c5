"""Training data from annotation tables: the labelled windows of long recordings as a
:class:`~earmark.data.manifest.Manifest` of segment rows, read on the fly.

:func:`load_windows` cuts the windows (:func:`earmark.data.annotations.annotation_windows`,
its overlap rule and negatives) and returns a manifest whose rows are segments of the
recordings (``start_s`` / ``end_s``): every loader (the training wave bank, feature tables,
``evaluate``, ``predict_files``) decodes just that span, so no clip file is ever written and
memory follows the window, not the recording. The group of a window is its recording, so a
split never puts two windows of one recording on both sides (overlapping windows would leak).

Labels: a window's classes joined with ``;`` (``a;b`` when two calls overlap it). The
manifest is multi-label when a window holds two classes (or ``multi_label=True``): a
negative window (no class: only with ``complete=True``) is then all zeros in the targets.
Single-label (no window holds two classes, or ``multi_label=False``): a negative window gets
``negative_label`` as its label, so the model learns a background class; with
``negative_label=None`` it keeps no label and training leaves it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from earmark.data.manifest import Manifest
from earmark.errors import EarmarkError

__all__ = ["DEFAULT_NEGATIVE_LABEL", "load_windows", "windows_manifest"]

#: The label of a window with no annotated class (complete tables only).
DEFAULT_NEGATIVE_LABEL = "background"


def windows_manifest(
    windows: pd.DataFrame,
    *,
    negative_label: str | None = DEFAULT_NEGATIVE_LABEL,
    root: str | Path | None = None,
    multi_label: bool | None = None,
) -> Manifest:
    """A manifest of segment rows from a window table (``filepath, start_s, end_s, label,
    group``, as :func:`~earmark.data.annotations.annotation_windows` returns): the group is
    the recording; a negative window (label ``""``) is a negative of a multi-label manifest,
    or labelled ``negative_label`` in a single-label one (see the module doc)."""
    missing = {"filepath", "start_s", "end_s", "label"} - set(windows.columns)
    if missing:
        raise EarmarkError(f"a window table needs the columns {sorted(missing)}")
    frame = windows.copy()
    label = frame["label"].fillna("").astype(str)
    if multi_label is None:
        multi_label = bool(label.str.contains(";", regex=False).any())
    if not multi_label and negative_label is not None:
        if not negative_label.strip() or ";" in negative_label:
            raise EarmarkError(f"negative label must be a class name, got {negative_label!r}")
        # Only unannotated windows (complete tables) take the negative label: a table whose
        # rows name the background class themselves (hard negatives exported from reviews:
        # earmark.review.export) has none, and nothing is merged.
        classes = {c for lab in label for c in lab.split(";") if c}
        if negative_label in classes and bool((label == "").any()):
            raise EarmarkError(
                f"negative label {negative_label!r} is also an annotated class: choose another"
            )
        label = label.where(label != "", negative_label)
    frame["label"] = label
    if "group" not in frame.columns:
        frame["group"] = frame["filepath"]
    frame["group"] = frame["group"].fillna(frame["filepath"])
    return Manifest(
        frame,
        root=Path(root) if root is not None else None,
        layout="annotations",
        multi_label=multi_label,
    )


def load_windows(
    source: Any | str | Path | Sequence[str | Path],
    *,
    window_s: float,
    hop_s: float | None = None,
    min_overlap: float | str = "50%",
    complete: bool = False,
    negative_label: str | None = DEFAULT_NEGATIVE_LABEL,
    recordings: str | Path | None = None,
    label_column: str | None = None,
    multi_label: bool | None = None,
    **rule: Any,
) -> Manifest:
    """The windows of annotated recordings as a manifest of segment rows: annotation tables
    (a table, a folder of tables beside their recordings, a list, or
    :class:`~earmark.data.annotations.Annotations`) cut into ``window_s`` windows every
    ``hop_s`` (default: ``window_s``) by the overlap rule (``min_overlap``; ``complete``:
    unannotated time gives negatives; ``rule``: ``ambiguous``, ``outside``, ``last`` of
    :func:`~earmark.data.annotations.annotation_windows`). Raises :class:`EarmarkError`
    when no window is labelled."""
    from earmark.data.annotations import annotation_windows

    windows = annotation_windows(
        source,
        window_s=window_s,
        hop_s=hop_s,
        min_overlap=min_overlap,
        complete=complete,
        recordings=recordings,
        label_column=label_column,
        **rule,
    )
    if windows.empty:
        unreadable = windows.attrs.get("unreadable") or {}
        why = f" ({len(unreadable)} recordings unreadable)" if unreadable else ""
        raise EarmarkError(
            f"{source}: no window of {window_s:g} s overlaps an annotation by "
            f"{windows.attrs.get('min_overlap', min_overlap)}{why}"
        )
    root = None
    if isinstance(source, (str, Path)):
        root = Path(source) if Path(source).is_dir() else Path(source).parent
    manifest = windows_manifest(
        windows, negative_label=negative_label, root=root, multi_label=multi_label
    )
    manifest.frame.attrs["unreadable"] = dict(windows.attrs.get("unreadable") or {})
    return manifest
