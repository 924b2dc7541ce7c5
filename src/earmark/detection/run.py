"""Detection over a folder of recordings: resumable, one bad file never stops the run.

For every recording, the score track is computed (:func:`score_file`), its events found, and
its Raven and Audacity tables written; then its part file (``parts/<name>.npz``: the score
track and the settings it was made with) is written last, atomically, and marks the
recording as done. ``resume=True`` skips recordings whose part matches the current settings.
At the end the folder-wide tables (events CSV / JSON, counts, scores Parquet, errors) are
rebuilt from all parts. The next recordings are decoded in background threads while the
current one is scored (``workers`` of them at a time).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.atomic import atomic_text, atomic_write
from earmark.detection.events import Event, EventRules, count_events, find_events
from earmark.detection.scores import BLOCK_SECONDS, ScoreTrack, _blocks, score_file
from earmark.detection.tables import (
    write_audacity,
    write_counts,
    write_events_csv,
    write_events_json,
    write_raven,
    write_scores,
)
from earmark.detection.windows import Windowing
from earmark.errors import AudioError, EarmarkError, ParameterError
from earmark.prefetch import Prefetched

__all__ = ["DetectionSummary", "detect", "recording_names"]

SETTINGS_FILE = "detection.json"


@dataclass
class DetectionSummary:
    """What a detection run did: recordings scored / skipped as done / failed, hours of
    audio scored in this run, wall time (s), events found, and the errors per file."""

    out_dir: Path
    files: int = 0
    scored: int = 0
    resumed: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    events: list[Event] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio scored per second of wall time in this run."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def partial(self) -> bool:
        return self.failed > 0


def recording_names(paths: Sequence[str]) -> list[str]:
    """Unique, file-system-safe names for recordings, used for their per-file tables: the
    path relative to the recordings' common folder, without extension, ``/`` as ``__``."""
    if not paths:
        return []
    resolved = [Path(p).resolve() for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    names = []
    for p in resolved:
        stem = p.relative_to(common).with_suffix("").as_posix().replace("/", "__")
        names.append("".join(c if c.isalnum() or c in "-_.=" else "_" for c in stem))
    seen: dict[str, int] = {}
    out = []
    for name in names:  # different extensions of one name
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}~{seen[name]}")
    return out


def _fingerprint(model: Any, windowing: Windowing) -> str:
    meta = {
        "model": getattr(model, "model", ""),
        "classes": list(model.classes_),
        "windowing": windowing.to_dict(),
        "clip": getattr(model, "clip_seconds_", None),
        "trained": getattr(model, "training_", {}).get("train_seconds"),
        "metrics": getattr(model, "metrics_", {}),
    }
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save_part(path: Path, track: ScoreTrack, fingerprint: str) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(
                fh,
                starts=track.starts,
                scores=track.scores,
                meta=np.array(
                    json.dumps(
                        {
                            "path": track.path,
                            "classes": track.classes,
                            "window": track.window,
                            "hop": track.hop,
                            "duration": track.duration,
                            "fingerprint": fingerprint,
                        }
                    )
                ),
            )

    atomic_write(path, write)


def _load_part(path: Path, fingerprint: str) -> ScoreTrack | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("fingerprint") != fingerprint:
                return None
            return ScoreTrack(
                meta["path"],
                meta["classes"],
                z["starts"],
                meta["window"],
                meta["hop"],
                z["scores"],
                meta["duration"],
            )
    except (OSError, ValueError, KeyError):
        return None  # a damaged part is recomputed


def _max_freq(model: Any) -> float:
    clf = model.members[0] if hasattr(model, "members") else model
    return float(clf.features.fmax or clf.audio.sample_rate / 2)


def detect(
    model: Any,
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    windowing: Windowing | None = None,
    rules: EventRules | None = None,
    resume: bool = False,
    workers: int = 1,
    batch_size: int = 256,
    on_file: Callable[[str, float], None] | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> DetectionSummary:
    """Detect events in every recording of ``paths`` with ``model`` and write the tables to
    ``out_dir`` (see the module docstring).

    ``workers``: recordings decoded ahead in background threads (at least 1: the current
    one). ``on_file(path, seconds)`` is called as each recording is done, ``on_audio(s)`` as
    each block of ``s`` seconds is scored (for a progress bar). Unreadable recordings are
    listed in ``errors.csv`` and in the summary; the run goes on.
    """
    windowing = windowing or Windowing()
    rules = rules or EventRules()
    rules.check_classes(list(model.classes_))
    if workers < 1:
        raise ParameterError(f"workers must be >= 1, got {workers}")
    out = Path(out_dir)
    parts_dir = out / "parts"
    tables_dir = out / "tables"
    parts_dir.mkdir(parents=True, exist_ok=True)
    tables_dir.mkdir(parents=True, exist_ok=True)
    for stray in parts_dir.glob(".*.npz"):  # a temporary part left by a killed run
        stray.unlink(missing_ok=True)
    paths = [str(p) for p in paths]
    names = recording_names(paths)
    fingerprint = _fingerprint(model, windowing)
    summary = DetectionSummary(out, files=len(paths))
    t0 = time.perf_counter()
    tracks: dict[int, ScoreTrack] = {}
    todo: list[int] = []
    for i, name in enumerate(names):
        part = _load_part(parts_dir / f"{name}.npz", fingerprint) if resume else None
        if part is not None and part.path == paths[i]:
            tracks[i] = part
            summary.resumed += 1
            if on_file is not None:
                on_file(paths[i], part.duration)
        else:
            todo.append(i)

    def write_tables(i: int, track: ScoreTrack) -> None:
        events = find_events(track, rules)
        stem = tables_dir / names[i]
        write_raven(f"{stem}.selections.txt", events, max_freq=_max_freq(model))
        write_audacity(f"{stem}.labels.txt", events)

    single = not hasattr(model, "members")
    readers: dict[int, Prefetched] = {}

    def open_ahead(pos: int) -> None:
        # decode the next recordings in background threads (ensemble members decode their own)
        for j in todo[pos : pos + workers]:
            if single and j not in readers:
                readers[j] = Prefetched(_blocks(Path(paths[j]), model, BLOCK_SECONDS), depth=2)

    try:
        for pos, i in enumerate(todo):
            open_ahead(pos)
            try:
                track = score_file(
                    model,
                    paths[i],
                    windowing,
                    batch_size=batch_size,
                    blocks=readers.get(i),
                    on_block=on_audio,
                )
            except AudioError as exc:
                summary.failed += 1
                summary.errors.append((paths[i], str(exc)))
                if on_file is not None:
                    on_file(paths[i], 0.0)
                continue
            finally:
                reader = readers.pop(i, None)
                if reader is not None:
                    reader.close()
            events = find_events(track, rules)
            write_raven(
                tables_dir / f"{names[i]}.selections.txt", events, max_freq=_max_freq(model)
            )
            write_audacity(tables_dir / f"{names[i]}.labels.txt", events)
            _save_part(parts_dir / f"{names[i]}.npz", track, fingerprint)  # last: "done"
            tracks[i] = track
            summary.scored += 1
            summary.audio_seconds += track.duration
            if on_file is not None:
                on_file(paths[i], track.duration)
    finally:
        for reader in readers.values():
            reader.close()

    ordered = [tracks[i] for i in sorted(tracks)]
    for i in sorted(tracks):  # tables of resumed recordings too (rules may have changed)
        if i not in todo:
            events = find_events(tracks[i], rules)
            write_raven(
                tables_dir / f"{names[i]}.selections.txt", events, max_freq=_max_freq(model)
            )
            write_audacity(tables_dir / f"{names[i]}.labels.txt", events)
    summary.events = [ev for t in ordered for ev in find_events(t, rules)]
    reported = [c for c in model.classes_ if c not in rules.background]
    write_events_csv(out / "events.csv", summary.events)
    write_events_json(out / "events.json", summary.events)
    write_counts(
        out / "counts.csv", count_events(summary.events, [t.path for t in ordered], reported)
    )
    write_scores(out / "scores.parquet", ordered)
    errors = out / "errors.csv"
    if summary.errors:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "error"])
        w.writerows(summary.errors)
        atomic_text(errors, buf.getvalue())
    elif errors.exists():
        errors.unlink()
    atomic_text(
        out / SETTINGS_FILE,
        json.dumps(
            {
                "model": getattr(model, "model", ""),
                "classes": list(model.classes_),
                "windowing": windowing.to_dict(),
                "rules": rules.to_dict(),
                "files": len(paths),
                "failed": summary.failed,
                "durations": {t.path: t.duration for t in ordered},
            },
            indent=1,
        )
        + "\n",
    )
    summary.wall_seconds = time.perf_counter() - t0
    if not ordered and summary.failed:
        raise EarmarkError(f"none of the {len(paths)} recordings could be read (see {errors})")
    return summary
