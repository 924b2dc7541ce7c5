"""What reviews teach a model: the reviewed windows as training rows.

Each reviewed span (its recording's file, ``start_s``, ``end_s``; the verdict that counts,
:meth:`~earmark.review.store.ReviewStore.latest`) becomes a *segment row* of a
:class:`~earmark.data.manifest.Manifest` (``start_s`` / ``end_s``), so the training loaders
cut it from the recording on the fly, as they cut the windows of annotation tables
(:mod:`earmark.data.segments`): no clip is written, and a kept upload (a real file beside
the database) trains as well as a corpus file.

What a span says, in the model's classes (the classes of the data it is added to):

- **positives**: the classes reviewed ``correct`` (the label) or ``relabel`` (the new
  label) at that span;
- **hard negatives**: the classes reviewed ``wrong`` there (the model said so; it was not).

Single-label data: a span with one positive class is a row of that class; a span with only
wrong verdicts is a row of the negative class ``negative_label`` (default ``background``),
which the data must have (a folder of background / noise clips): without it the model has
no way to say "none of these" and the span is left out (counted). A span with two positive
classes cannot be one label: left out (counted).

Multi-label data: a span's row is multi-hot over its positive classes; with none (only
wrong verdicts) it is all zeros: a negative for the classes said wrong, and, as everywhere
in a multi-label manifest (an empty label cell), for the other classes too; the reviewer
who heard the span and said "not X" did not hear a Y worth labelling either.

A class the data does not know (a relabel to a new name) cannot be learnt from a few
reviewed windows added to a data set without it: those positives are left out (counted). A
span whose file is missing is left out (counted), as is one in a file the data's test (or
validation) part holds: it would leak.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from earmark.data.manifest import LABEL_SEP, Manifest
from earmark.data.segments import DEFAULT_NEGATIVE_LABEL
from earmark.errors import EarmarkError
from earmark.review.store import Review, ReviewStore, opened

__all__ = ["ReviewWindows", "ReviewedSpan", "add_reviews", "review_windows", "reviewed_spans"]

#: Why a reviewed span was left out, as :attr:`ReviewWindows.skipped` counts it.
SKIP_REASONS = {
    "missing": "its recording is missing",
    "held_out": "its recording is in the test or validation part",
    "unknown_class": "it names a class the data does not have",
    "no_negative_class": "single-label data without the negative class for a wrong verdict",
    "several_classes": "two classes at one span (single-label data)",
}


@dataclass
class ReviewedSpan:
    """A span of a recording and what its reviews say: ``positive`` and ``wrong`` classes,
    the ids of the reviews that count."""

    path: str
    start_s: float
    end_s: float
    positive: set[str] = field(default_factory=set)
    wrong: set[str] = field(default_factory=set)
    ids: list[int] = field(default_factory=list)


def reviewed_spans(reviews: ReviewStore | str | Path | Iterable[Review]) -> list[ReviewedSpan]:
    """The reviewed spans, each with what the reviews that count say (oldest first; of two
    verdicts on one class at one span, the newer wins)."""
    if isinstance(reviews, (ReviewStore, str, Path)):
        with opened(reviews) as store:
            rows = store.latest()
    else:
        rows = list(reviews)
    spans: dict[tuple[str, float, float], ReviewedSpan] = {}
    for r in sorted(rows, key=lambda r: r.id or 0):
        key = (r.path, r.start_s, r.end_s)
        span = spans.setdefault(key, ReviewedSpan(*key))
        span.ids.append(int(r.id or 0))
        if r.verdict == "wrong":
            span.positive.discard(r.label or "")
            span.wrong.add(r.label or "")
        else:
            if r.verdict == "relabel" and r.label:
                span.positive.discard(r.label)
                span.wrong.add(r.label)  # the model's label was wrong there
            span.wrong.discard(r.target or "")
            span.positive.add(r.target or "")
    return list(spans.values())


@dataclass
class ReviewWindows:
    """The rows reviews add (``manifest``: segment rows, ``None`` when none), how many
    are positives and hard negatives, and the spans left out per reason
    (:data:`SKIP_REASONS`)."""

    manifest: Manifest | None
    positives: int = 0
    negatives: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return 0 if self.manifest is None else len(self.manifest)

    def summary(self) -> dict[str, Any]:
        """Counts as plain data (what the artifact's training record keeps)."""
        return {
            "windows": len(self),
            "positives": self.positives,
            "negatives": self.negatives,
            "skipped": dict(self.skipped),
        }

    def reasons(self) -> str:
        """The spans left out, in words (``""`` when none)."""
        return "; ".join(f"{n} because {SKIP_REASONS[k]}" for k, n in self.skipped.items())


def review_windows(
    reviews: ReviewStore | str | Path | Iterable[Review],
    *,
    classes: Sequence[str],
    multi_label: bool,
    negative_label: str | None = DEFAULT_NEGATIVE_LABEL,
    held_out: Iterable[str] = (),
) -> ReviewWindows:
    """The reviewed spans as training rows in ``classes`` (see the module doc): a
    ``multi_label`` manifest or a single-label one whose hard negatives are labelled
    ``negative_label``; spans in the files of ``held_out`` are left out."""
    known = set(classes)
    held = {str(Path(p).resolve()) for p in held_out}
    skipped: dict[str, int] = {}
    rows: list[tuple[str, str, float, float]] = []
    positives = negatives = 0

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for span in reviewed_spans(reviews):
        path = str(Path(span.path).resolve())
        if not Path(path).is_file():
            skip("missing")
            continue
        if path in held:
            skip("held_out")
            continue
        positive = span.positive & known
        if span.positive - known and not positive:
            skip("unknown_class")
            continue
        if multi_label:
            label = LABEL_SEP.join(sorted(positive))
        elif len(positive) > 1:
            skip("several_classes")
            continue
        elif positive:
            label = next(iter(positive))
        elif negative_label is not None and negative_label in known:
            label = negative_label
        else:
            skip("no_negative_class")
            continue
        if positive:
            positives += 1
        else:
            negatives += 1
        rows.append((path, label, span.start_s, span.end_s))
    manifest = None
    if rows:
        frame = pd.DataFrame(rows, columns=["filepath", "label", "start_s", "end_s"])
        frame["group"] = frame["filepath"]  # a recording's windows stay on one side
        manifest = Manifest(frame, layout="reviews", multi_label=multi_label)
    return ReviewWindows(manifest, positives, negatives, skipped)


def add_reviews(
    train: Manifest,
    reviews: ReviewStore | str | Path | Iterable[Review],
    *,
    classes: Sequence[str] | None = None,
    negative_label: str | None = DEFAULT_NEGATIVE_LABEL,
    held_out: Iterable[str] = (),
) -> tuple[Manifest, ReviewWindows]:
    """``train`` with the reviewed windows added (in ``classes``, default ``train``'s), and
    what was added. Raises :class:`EarmarkError` when reviews exist but none can be used,
    saying why (a retrain that silently ignores every review would mislead)."""
    added = review_windows(
        reviews,
        classes=list(train.classes if classes is None else classes),
        multi_label=bool(train.multi_label),
        negative_label=negative_label,
        held_out=held_out,
    )
    if added.manifest is None:
        why = added.reasons() or "the database holds no reviews"
        raise EarmarkError(f"no review can be added to training: {why}")
    frame = pd.concat([train.frame, added.manifest.frame], ignore_index=True)
    merged = Manifest(frame, root=train.root, layout=train.layout, multi_label=train.multi_label)
    return merged, added
