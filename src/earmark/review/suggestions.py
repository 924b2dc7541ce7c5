"""A suggestion list (the windows ``earmark suggest`` chose for review) as the server reads it.

The file is the CSV ``earmark suggest`` writes: ``file,start_s,end_s,label,score,uncertainty``,
one window a row, in the order to review them. A relative ``file`` is found beside the CSV
first, then from the working directory (where ``earmark suggest`` ran). A row whose
recording is missing is skipped and counted (``missing``), as one unreadable file in a
corpus is; a bad number or span is a one-line error naming the line.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from earmark.errors import ParameterError

__all__ = ["COLUMNS", "Suggestion", "Suggestions", "load_suggestions"]

COLUMNS = ("file", "start_s", "end_s", "label", "score", "uncertainty")


@dataclass(frozen=True)
class Suggestion:
    """One window to review: its recording (absolute path), span, the model's label and
    score, and how uncertain the model was."""

    path: str
    start_s: float
    end_s: float
    label: str | None
    score: float | None
    uncertainty: float


@dataclass
class Suggestions:
    """The rows of a suggestion list (``items``, in order), the file they came from, the
    rows skipped because their recording is missing (``missing``: ``(line, file)``), and
    ``root``: the folder all recordings are under (their display names are relative to it)."""

    source: Path
    items: list[Suggestion]
    missing: list[tuple[int, str]] = field(default_factory=list)
    root: Path | None = None

    def __len__(self) -> int:
        return len(self.items)


def _number(path: Path, line: int, what: str, text: str | None, *, optional: bool = False):
    if text is None or not text.strip():
        if optional:
            return None
        raise ParameterError(f"{path}: line {line}: {what} is empty")
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"{path}: line {line}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ParameterError(f"{path}: line {line}: {what} must be finite, got {text!r}")
    return value


def _find(written: str, table: Path) -> Path | None:
    candidate = Path(written)
    tries = [candidate] if candidate.is_absolute() else [table.parent / candidate, candidate]
    for p in tries:
        if p.is_file():
            return p.resolve()
    return None


def load_suggestions(path: str | Path) -> Suggestions:
    """Read a suggestion list (see the module doc). Raises :class:`ParameterError` for a
    file that is not one, or one whose every recording is missing."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{path}: not a suggestion list (not UTF-8 text)") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing_cols = [c for c in COLUMNS if c not in columns]
    if missing_cols:
        raise ParameterError(
            f"{path}: not a suggestion list: no column {', '.join(missing_cols)} (earmark "
            f"suggest writes {','.join(COLUMNS)})"
        )
    items: list[Suggestion] = []
    missing: list[tuple[int, str]] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise ParameterError(f"{path}: line {line}: more cells than columns")
        written = (row["file"] or "").strip()
        if not written:
            raise ParameterError(f"{path}: line {line}: empty file name")
        start = _number(path, line, "start_s", row["start_s"])
        end = _number(path, line, "end_s", row["end_s"])
        if start < 0 or end <= start:
            raise ParameterError(
                f"{path}: line {line}: a window needs 0 <= start_s < end_s, got {start:g}-{end:g}"
            )
        found = _find(written, path)
        if found is None:
            missing.append((line, written))
            continue
        label = (row["label"] or "").strip() or None
        items.append(
            Suggestion(
                str(found),
                start,
                end,
                label,
                _number(path, line, "score", row["score"], optional=True),
                _number(path, line, "uncertainty", row["uncertainty"]),
            )
        )
    if not items:
        why = f" ({len(missing)} recordings not found, e.g. {missing[0][1]})" if missing else ""
        raise ParameterError(f"{path}: no window to review{why}")
    root = Path(os.path.commonpath([str(Path(s.path).parent) for s in items]))
    return Suggestions(path, items, missing, root)
