"""Reviews made outside the page: of the events of a detection run, or of any span of a file.

:func:`event_reviews` reviews rows of a run's events table (``earmark detect``'s
``events.csv`` / ``events.json``): the settings record beside it (``detection.json``) gives
the model's name and fingerprint and the windowing and event rules the events came from.
:func:`span_review` reviews a span of a file given by hand. Both give
:class:`~earmark.review.store.Review` objects for :meth:`ReviewStore.add_many`; the
recording id is the one the server gives the same file
(:meth:`earmark.serve.Recordings.add_file`), so a review made here and one made on the page
of the same span are the same item.

A run's events name their recordings as ``earmark detect`` was given them (often relative to
where it ran): a name is looked for as written, beside the table, in the folders above it,
and in ``recordings`` (a folder, by file name).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from earmark.errors import AudioError, ParameterError
from earmark.review.store import Review, artifact_sha256

__all__ = ["event_reviews", "find_recording", "span_review"]


def find_recording(written: str, table: Path | None, recordings: Path | None) -> Path | None:
    """The file an events table names (see the module doc), or ``None``."""
    candidate = Path(written)
    tries = [candidate]
    if not candidate.is_absolute():
        if table is not None:
            tries += [folder / candidate for folder in table.resolve().parents]
        if recordings is not None:
            tries.append(recordings / candidate)
    if recordings is not None:
        tries += sorted(recordings.rglob(candidate.name))
    for p in tries:
        if p.is_file():
            return p.resolve()
    return None


def _checked_span(path: Path, start_s: float, end_s: float) -> None:
    from earmark import audio as audio_io

    try:
        duration = audio_io.info(path).duration
    except AudioError as exc:
        raise ParameterError(f"{path}: {exc.problem}") from None
    if start_s >= duration:
        raise ParameterError(
            f"{path}: the span {start_s:g}-{end_s:g} s starts past its end ({duration:.3f} s)"
        )


def _model(run: str | Path | None) -> tuple[str | None, str | None]:
    if run is None:
        return None, None
    return Path(run).name, artifact_sha256(run)


def span_review(
    file: str | Path,
    start_s: float,
    end_s: float,
    label: str | None,
    *,
    verdict: str,
    new_label: str | None = None,
    score: float | None = None,
    source: str = "detection",
    reviewer: str | None = None,
    model: str | Path | None = None,
    settings: dict[str, Any] | None = None,
) -> Review:
    """A review of ``[start_s, end_s)`` of ``file`` (checked: the file is audio and the span
    starts inside it). ``model``: the run (artifact directory or ``.onnx``) whose output is
    reviewed, recorded by name and SHA-256."""
    from earmark.serve.recordings import Recordings

    path = Path(file)
    if not path.is_file():
        raise ParameterError(f"{path}: no such file")
    name, digest = _model(model)
    known = Recordings()  # the id and name the server gives the same file
    rid = known.add_file(path)
    review = Review(
        recording=rid,
        path=str(path.resolve()),
        name=known.name(rid),
        start_s=start_s,
        end_s=end_s,
        label=label,
        verdict=verdict,
        new_label=new_label,
        score=score,
        source=source,
        reviewer=reviewer,
        model=name,
        model_sha256=digest,
        settings=dict(settings or {}),
    ).checked()
    _checked_span(path, review.start_s, review.end_s)
    return review


def event_reviews(
    events: str | Path,
    rows: Sequence[int],
    *,
    verdict: str,
    new_label: str | None = None,
    reviewer: str | None = None,
    model: str | Path | None = None,
    recordings: str | Path | None = None,
) -> list[Review]:
    """Reviews of rows ``rows`` (1 = the first event) of a detection run's events table,
    all with ``verdict`` (see the module doc)."""
    from earmark.detection.run import read_record
    from earmark.detection.tables import read_events

    table = Path(events)
    if table.is_dir():  # the run's folder
        table = table / "events.csv"
    if not table.is_file():
        raise ParameterError(f"{table}: no such events table")
    found = read_events(table)
    if not rows:
        raise ParameterError("name the events to review (row numbers, 1 = the first)")
    record = read_record(table.parent) or {}
    settings: dict[str, Any] = {"events": str(table.resolve())}
    for key in ("windowing", "rules"):
        if key in record:
            settings[key] = record[key]
    recorded = record.get("model") if isinstance(record.get("model"), dict) else {}
    if recorded.get("fingerprint"):
        settings["model_fingerprint"] = recorded["fingerprint"]
    folder = Path(recordings) if recordings is not None else None
    if folder is not None and not folder.is_dir():
        raise ParameterError(f"{folder}: the recordings folder does not exist")
    out = []
    for row in rows:
        if not 1 <= row <= len(found):
            raise ParameterError(
                f"{table}: no event {row} (it has {len(found)}; rows count from 1)"
            )
        ev = found[row - 1]
        path = find_recording(ev.file, table, folder)
        if path is None:
            raise ParameterError(
                f"{table}: event {row}: recording {ev.file!r} not found (give --recordings DIR)"
            )
        review = span_review(
            path,
            ev.start,
            ev.end,
            ev.label,
            verdict=verdict,
            new_label=new_label,
            score=ev.score,
            reviewer=reviewer,
            model=model,
            settings=settings | {"row": row},
        )
        if model is None and recorded.get("name"):
            review.model = str(recorded["name"])
        out.append(review)
    return out
