"""Reviews as an annotation table that ``earmark train --annotations`` (and Raven) reads.

Each reviewed span (the verdict that counts, :func:`earmark.review.training.reviewed_spans`)
becomes one row per class it holds: ``correct`` gives the label, ``relabel`` the new label.
A span reviewed only ``wrong`` (a false positive: a *hard negative*) becomes a row labelled
``negative_label`` (default ``background``).

Why a labelled row and not a second table: the annotation reader
(:mod:`earmark.data.annotations`) knows no "negative" annotation. A window is positive for
the classes it overlaps and negative only where a *complete* table says nothing; a table of
reviews is never complete (nobody heard the rest of the recording), so the only way its hard
negatives reach training is as a class of their own, the background class a single-label
detector already has (the demo's ``noise`` / ``other``; pass its name). A span that also has
a positive class keeps only its positives (the span is not background).

Formats: ``csv`` (``file,start_s,end_s,label`` plus ``verdict``, ``review_id``,
``reviewer``, ``model``, which the reader ignores) or ``raven`` (a selection table: one row
per span with ``Begin Path`` / ``Begin File``, times in the file, ``Annotation``; the band
is the whole file's, 0 Hz to Nyquist), written by earmark's one Raven writer
(:func:`earmark.detection.tables.raven_text`). Written atomically.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from earmark.atomic import atomic_text
from earmark.data.segments import DEFAULT_NEGATIVE_LABEL
from earmark.detection.tables import RavenSelection, raven_text
from earmark.errors import ParameterError
from earmark.review.store import Review, ReviewStore, opened

__all__ = ["FORMATS", "ExportSummary", "export_reviews"]

FORMATS = ("csv", "raven")
CSV_COLUMNS = ("file", "start_s", "end_s", "label", "verdict", "review_id", "reviewer", "model")


@dataclass
class ExportSummary:
    """What was written: the table, rows per label, and the reviewed spans left out
    (``missing``: their recording is gone)."""

    path: Path
    rows: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    missing: int = 0


def _format(out: Path, fmt: str | None) -> str:
    suffix = out.suffix.lower()
    if fmt is None:
        if suffix in (".csv", ".tsv"):
            return "csv"
        if suffix == ".txt":
            return "raven"
        raise ParameterError(f"{out}: name a .csv (csv) or .txt (raven) table, or give a format")
    if fmt not in FORMATS:
        raise ParameterError(f"unknown table format {fmt!r}; use {' or '.join(FORMATS)}")
    want = {"csv": (".csv",), "raven": (".txt",)}[fmt]
    if suffix not in want:
        # the reader tells tables apart by suffix: a .csv Raven table would be misread
        raise ParameterError(f"a {fmt} table is read back by its suffix: name it *{want[0]}")
    return fmt


def export_reviews(
    reviews: ReviewStore | str | Path,
    out: str | Path,
    *,
    format: str | None = None,
    negative_label: str = DEFAULT_NEGATIVE_LABEL,
) -> ExportSummary:
    """Write the reviews as an annotation table at ``out`` (see the module doc); ``format``
    ``csv`` / ``raven`` (default: from the suffix)."""
    from earmark.review.training import reviewed_spans

    out = Path(out)
    fmt = _format(out, format)
    if not negative_label.strip() or ";" in negative_label:
        raise ParameterError(f"the negative label must be a class name, got {negative_label!r}")
    with opened(reviews) as store:
        latest = store.latest()
        where = store.path
    by_id: dict[int, Review] = {int(r.id or 0): r for r in latest}
    summary = ExportSummary(out)
    rows: list[dict[str, object]] = []
    for span in sorted(reviewed_spans(latest), key=lambda s: (s.path, s.start_s, s.end_s)):
        if not Path(span.path).is_file():
            summary.missing += 1
            continue
        newest = by_id[max(span.ids)]
        labels = sorted(span.positive) or [negative_label]
        for label in labels:
            verdict = "wrong" if not span.positive else _verdict(latest, span.ids, label)
            rows.append(
                {
                    "file": span.path,
                    "start_s": span.start_s,
                    "end_s": span.end_s,
                    "label": label,
                    "verdict": verdict,
                    "review_id": max(span.ids),
                    "reviewer": newest.reviewer or "",
                    "model": newest.model or "",
                }
            )
            summary.labels[label] = summary.labels.get(label, 0) + 1
    if not rows:
        why = f" ({summary.missing} with their recording missing)" if summary.missing else ""
        raise ParameterError(f"{where}: no reviewed span to export{why}")
    summary.rows = len(rows)
    atomic_text(out, _csv(rows) if fmt == "csv" else _raven(rows))
    return summary


def _verdict(reviews: list[Review], ids: list[int], label: str) -> str:
    """The verdict that put ``label`` among a span's classes (correct or relabel)."""
    for r in sorted(reviews, key=lambda r: -(r.id or 0)):
        if r.id in ids and r.target == label:
            return r.verdict
    return "correct"


def _csv(rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _raven(rows: list[dict[str, object]]) -> str:
    """A Raven table of the rows: ``Begin Path`` the recording, ``Begin File`` its name,
    ``Annotation`` the label, the band 0 Hz to the file's Nyquist (0 when it cannot be read)."""
    from earmark import audio as audio_io
    from earmark.errors import AudioError

    nyquist: dict[str, float] = {}
    selections = []
    for row in rows:
        path = str(row["file"])
        if path not in nyquist:
            try:
                nyquist[path] = audio_io.info(path).sample_rate / 2
            except AudioError:
                nyquist[path] = 0.0
        selections.append(
            RavenSelection(
                float(row["start_s"]),  # type: ignore[arg-type]
                float(row["end_s"]),  # type: ignore[arg-type]
                0.0,
                nyquist[path],
                str(row["label"]),
                begin_path=path,
                begin_file=Path(path).name,
            )
        )
    return raven_text(selections, columns=("Begin Path", "Begin File"))
