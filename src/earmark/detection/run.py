"""Detection over a folder of recordings: resumable, one bad file never stops the run.

Before anything is scored, the run writes its settings record (``detection.json``: the
model's name and fingerprint, the windowing, the event rules, status ``running``). For every
recording, the score track is computed (:func:`score_file`), its events found, and its Raven
and Audacity tables written; then its part file (``parts/<name>.npz``: the score track and
the fingerprint of the model and windowing it was made with) is written last, atomically,
and marks the recording as done. ``resume=True`` takes the settings from the record (a
setting or model given that differs is refused, see :func:`resolve_settings`) and skips
recordings whose part matches. At the end the folder-wide tables (events CSV / JSON, counts,
scores Parquet, errors) are rebuilt from all parts and the record completed (status
``complete``, files scored / resumed / failed, events, each recording's duration). The next
recordings are decoded in background threads while the current one is scored
(``decode_ahead`` of them at a time). Given ``remote`` (:mod:`earmark.distributed`: a Dask
cluster), the recordings to do are scored there instead, one task per recording, and their
tracks come back here, where everything is written as above: the same files either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.atomic import atomic_text, atomic_write, folder_lock
from earmark.detection.events import (
    Event,
    EventRules,
    count_events,
    find_events,
    recording_stem,
)
from earmark.detection.scores import BLOCK_SECONDS, ScoreTrack, score_file
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

__all__ = [
    "DetectionSummary",
    "SettingConflict",
    "detect",
    "model_fingerprint",
    "read_record",
    "recording_names",
    "resolve_settings",
]

SETTINGS_FILE = "detection.json"  # the run's settings record
RECORD_VERSION = 1
LOCK_FILE = ".detect.lock"  # held while a run writes into the folder (see detect)

#: Scores recordings elsewhere (:func:`earmark.distributed.detect` supplies one): given the
#: recordings' paths, the windowing and the batch size, it yields ``(k, result)`` as each is
#: done, ``k`` the recording's position in the list and ``result`` its
#: :class:`ScoreTrack`, or the message of the :class:`AudioError` that made it unreadable.
RemoteScorer = Callable[[Sequence[str], Windowing, int], Iterable[tuple[int, "ScoreTrack | str"]]]


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
    path relative to the recordings' common folder, without its audio extension (as
    :func:`~earmark.detection.events.file_key` matches files), ``/`` as ``__``."""
    if not paths:
        return []
    resolved = [Path(p).resolve() for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    names = []
    for p in resolved:
        stem = recording_stem(p.relative_to(common).as_posix()).replace("/", "__")
        names.append("".join(c if c.isalnum() or c in "-_.=" else "_" for c in stem))
    seen: dict[str, int] = {}
    out = []
    for name in names:  # different extensions of one name
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}~{seen[name]}")
    return out


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists, numpy numbers as numbers)."""
    return json.loads(json.dumps(value, sort_keys=True, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def model_identity(model: Any) -> dict[str, Any]:
    """What identifies a trained model without its weights: name, family, parameters, seed,
    classes, clip length, audio and feature settings, what it was trained on and its metrics
    (an ensemble: its method, weights and its members' identities; a quantized model: its
    runtime, ``int8``). The same after a save and a load."""
    members = getattr(model, "members", None)
    if members is not None:
        return _plain(
            {
                "model": getattr(model, "model", ""),
                "classes": list(model.classes_),
                "method": getattr(model, "method", None),
                "weights": getattr(model, "weights", None),
                "members": [model_identity(m) for m in members],
            }
        )
    runtime = getattr(model, "runtime", None)  # onnx / int8 score differently from torch
    return _plain(
        {
            **({"runtime": runtime} if runtime not in (None, "onnx") else {}),
            "model": getattr(model, "model", type(model).__name__),
            "family": getattr(model, "family", None),
            "params": _resolved_params(model),
            "seed": getattr(model, "seed", None),
            "classes": list(model.classes_),
            "clip": getattr(model, "clip_seconds_", None),
            "audio": getattr(model, "audio", None),
            "features": getattr(model, "features", None),
            "training": getattr(model, "training_", {}),
            "metrics": getattr(model, "metrics_", {}),
        }
    )


def _resolved_params(model: Any) -> dict[str, Any] | None:
    """The model's parameters with its learner's defaults filled in (as its artifact keeps
    them), so a model and the same model saved and loaded agree."""
    params = getattr(model, "params", None)
    if params is None:
        return None
    from earmark.models import registry

    try:
        defaults = registry.get(model.model).defaults
    except (EarmarkError, AttributeError):
        defaults = {}
    return {**defaults, **params}


def model_fingerprint(model: Any) -> str:
    """A short hash of :func:`model_identity`."""
    text = json.dumps(model_identity(model), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fingerprint(model_print: str, windowing: Windowing) -> str:
    """What a part (a score track) depends on: the model and the windowing."""
    meta = {"model": model_print, "windowing": windowing.to_dict()}
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


WINDOWING_SETTINGS = tuple(f.name for f in dataclasses.fields(Windowing))
RULES_SETTINGS = tuple(f.name for f in dataclasses.fields(EventRules))


class SettingConflict(ParameterError):
    """A resumed run was given a setting that differs from the one in its record.

    ``setting`` names it (a :class:`Windowing` or :class:`EventRules` field), ``given`` and
    ``recorded`` are the two values, ``record`` the settings file."""

    def __init__(self, record: Path, setting: str, given: Any, recorded: Any) -> None:
        self.record, self.setting, self.given, self.recorded = record, setting, given, recorded
        super().__init__(
            f"{setting} = {show_setting(given)}, but {record.parent} was made with "
            f"{setting} = {show_setting(recorded)}; a resumed run keeps the settings in "
            f"{record.name} (leave {setting} out, or write to a new folder)"
        )


def show_setting(value: Any) -> str:
    """A setting's value as a person reads it (``none``, ``0.5``, ``a,b``, ``{a: 0.8}``)."""
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) if value else "none"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def read_record(out_dir: str | Path) -> dict[str, Any] | None:
    """The settings record (``detection.json``) of a detection folder, or ``None`` when the
    folder has none."""
    path = Path(out_dir) / SETTINGS_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        Windowing.from_dict(record["windowing"])
        EventRules.from_dict(record["rules"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ParameterError(
            f"{path}: not the settings record of a detection run ({exc})"
        ) from None
    return record


def resolve_settings(
    model: Any,
    out_dir: str | Path,
    *,
    windowing: Windowing | None = None,
    rules: EventRules | None = None,
    settings: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> tuple[Windowing, EventRules]:
    """The windowing and event rules a run uses (see :func:`detect`).

    Not resuming, or resuming in a folder without a record: ``windowing`` and ``rules``
    (defaults for ``None``) with the single ``settings`` on top; a model holding calibrated
    per-class thresholds (``thresholds_``, from its run) gives them unless ``rules`` or a
    ``threshold`` / ``thresholds`` setting is given. Resuming a recorded run:
    the record's, after checking that the model is the one the run was made with and that
    everything given (``windowing``, ``rules``, ``settings``) equals the record; a
    difference raises :class:`SettingConflict` naming the setting.
    """
    given = dict(settings or {})
    unknown = sorted(set(given) - set(WINDOWING_SETTINGS) - set(RULES_SETTINGS))
    if unknown:
        raise ParameterError(
            f"unknown detection settings {', '.join(unknown)}; known: "
            f"{', '.join(WINDOWING_SETTINGS + RULES_SETTINGS)}"
        )
    record = read_record(out_dir) if resume else None
    if record is None:
        w = (windowing or Windowing()).to_dict()
        r = (rules or EventRules()).to_dict()
        calibrated = getattr(model, "thresholds_", None)
        if rules is None and calibrated and not {"threshold", "thresholds"} & set(given):
            r["thresholds"] = dict(calibrated)  # the run's calibrated per-class thresholds
        w.update({k: v for k, v in given.items() if k in WINDOWING_SETTINGS})
        r.update({k: v for k, v in given.items() if k in RULES_SETTINGS})
        return Windowing.from_dict(w), EventRules.from_dict(r)
    path = Path(out_dir) / SETTINGS_FILE
    recorded_model = record.get("model")
    if isinstance(recorded_model, dict) and recorded_model.get("fingerprint"):
        if recorded_model["fingerprint"] != model_fingerprint(model):
            raise ParameterError(
                f"{Path(out_dir)} was made with another model ({recorded_model.get('name')}, "
                f"fingerprint {recorded_model['fingerprint']}); resume it with that model, or "
                "write to a new folder"
            )
    elif list(record.get("classes", model.classes_)) != list(model.classes_):
        raise ParameterError(
            f"{Path(out_dir)} was made with a model of classes "
            f"{', '.join(record['classes'])}; this one knows {', '.join(model.classes_)}"
        )
    rec_w = Windowing.from_dict(record["windowing"])
    rec_r = EventRules.from_dict(record["rules"])
    for obj, rec in ((windowing, rec_w), (rules, rec_r)):
        if obj is None:
            continue
        for f in dataclasses.fields(obj):
            if getattr(obj, f.name) != getattr(rec, f.name):
                raise SettingConflict(path, f.name, getattr(obj, f.name), getattr(rec, f.name))
    for name, value in given.items():
        cls, rec = (Windowing, rec_w) if name in WINDOWING_SETTINGS else (EventRules, rec_r)
        normal = getattr(cls(**{name: value}), name)  # validated, as the record holds it
        if normal != getattr(rec, name):
            raise SettingConflict(path, name, normal, getattr(rec, name))
    return rec_w, rec_r


def _write_record(
    out: Path,
    model: Any,
    model_print: str,
    windowing: Windowing,
    rules: EventRules,
    summary: DetectionSummary,
    tracks: Sequence[ScoreTrack],
    *,
    complete: bool,
) -> None:
    record = {
        "version": RECORD_VERSION,
        "status": "complete" if complete else "running",
        "model": {
            "name": getattr(model, "model", ""),
            "family": getattr(model, "family", "ensemble" if hasattr(model, "members") else None),
            "fingerprint": model_print,
        },
        "classes": list(model.classes_),
        "windowing": windowing.to_dict(),
        "rules": rules.to_dict(),
        "files": summary.files,
        "scored": summary.scored,
        "resumed": summary.resumed,
        "failed": summary.failed,
        "events": len(summary.events),
        "durations": {t.path: t.duration for t in tracks},
    }
    atomic_text(out / SETTINGS_FILE, json.dumps(record, indent=1) + "\n")


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
    settings: Mapping[str, Any] | None = None,
    resume: bool = False,
    decode_ahead: int = 1,
    batch_size: int = 256,
    on_file: Callable[[str, float], None] | None = None,
    on_audio: Callable[[float], None] | None = None,
    remote: RemoteScorer | None = None,
) -> DetectionSummary:
    """Detect events in every recording of ``paths`` with ``model`` and write the tables to
    ``out_dir`` (see the module docstring).

    Settings: ``windowing`` and ``rules`` (``None``: the defaults, or the record's when
    resuming), and ``settings``, single settings by name (``{"hop": 0.5, "threshold":
    0.3}``, any :class:`Windowing` or :class:`EventRules` field) applied on top, so a caller
    passes only what it was given. The run writes them to its record (``detection.json``)
    before it scores anything. ``resume=True`` in a folder with a record takes the record's
    settings and reuses its finished recordings; a model other than the record's, or a
    setting given that differs from the record's, is refused (:class:`SettingConflict`);
    one equal to the record's is fine. Without a record, ``resume`` starts afresh.

    ``decode_ahead``: recordings decoded ahead in background threads (at least 1: the
    current one). ``on_file(path, seconds)`` is called as each recording is done,
    ``on_audio(s)`` as each block of ``s`` seconds is scored (for a progress bar). Unreadable
    recordings are listed in ``errors.csv`` and in the summary; the run goes on.

    ``remote`` scores the recordings to do elsewhere (:data:`RemoteScorer`; see
    :func:`earmark.distributed.detect`): they come back in the order they finish, and
    ``on_audio`` is called with each one's whole length as it arrives. What is written is
    the same as for a run in this process.
    """
    if isinstance(decode_ahead, bool) or not isinstance(decode_ahead, int) or decode_ahead < 1:
        raise ParameterError(f"decode_ahead must be a whole number >= 1, got {decode_ahead!r}")
    # one run into a folder at a time: a second one (into the parts, the tables and the record
    # of the first) is refused, not mixed in
    with folder_lock(out_dir, LOCK_FILE, "another earmark detect is writing into it"):
        return _detect(
            model,
            paths,
            out_dir,
            windowing=windowing,
            rules=rules,
            settings=settings,
            resume=resume,
            decode_ahead=decode_ahead,
            batch_size=batch_size,
            on_file=on_file,
            on_audio=on_audio,
            remote=remote,
        )


def _detect(
    model: Any,
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    windowing: Windowing | None,
    rules: EventRules | None,
    settings: Mapping[str, Any] | None,
    resume: bool,
    decode_ahead: int,
    batch_size: int,
    on_file: Callable[[str, float], None] | None,
    on_audio: Callable[[float], None] | None,
    remote: RemoteScorer | None,
) -> DetectionSummary:
    """:func:`detect`, its folder held."""
    windowing, rules = resolve_settings(
        model, out_dir, windowing=windowing, rules=rules, settings=settings, resume=resume
    )
    rules.check_classes(list(model.classes_))
    out = Path(out_dir)
    parts_dir = out / "parts"
    tables_dir = out / "tables"
    parts_dir.mkdir(parents=True, exist_ok=True)
    tables_dir.mkdir(parents=True, exist_ok=True)
    for stray in parts_dir.glob(".*.npz"):  # a temporary part left by a killed run
        stray.unlink(missing_ok=True)
    unique: dict[Path, str] = {}  # a recording given twice is one recording
    for p in paths:
        unique.setdefault(Path(p).resolve(), str(p))
    paths = list(unique.values())
    names = recording_names(paths)
    model_print = model_fingerprint(model)
    fingerprint = _fingerprint(model_print, windowing)
    summary = DetectionSummary(out, files=len(paths))
    _write_record(out, model, model_print, windowing, rules, summary, [], complete=False)
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
        for j in todo[pos : pos + decode_ahead]:
            if single and j not in readers:
                blocks = model.preprocessing.blocks(Path(paths[j]), BLOCK_SECONDS)
                readers[j] = Prefetched(blocks, depth=2)

    def failed(i: int, message: str) -> None:
        summary.failed += 1
        summary.errors.append((paths[i], message))
        if on_file is not None:
            on_file(paths[i], 0.0)

    def scored(i: int, track: ScoreTrack) -> None:
        write_tables(i, track)
        _save_part(parts_dir / f"{names[i]}.npz", track, fingerprint)  # last: "done"
        tracks[i] = track
        summary.scored += 1
        summary.audio_seconds += track.duration
        if on_file is not None:
            on_file(paths[i], track.duration)

    if remote is not None:
        for k, result in remote([paths[i] for i in todo], windowing, batch_size):
            i = todo[k]
            if isinstance(result, str):
                failed(i, result)
                continue
            if on_audio is not None:
                on_audio(result.duration)
            scored(i, result)
        errors_of = {p: n for n, p in enumerate(paths)}  # in the recordings' order, as here
        summary.errors.sort(key=lambda e: errors_of[e[0]])
    else:
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
                    failed(i, str(exc))
                    continue
                finally:
                    reader = readers.pop(i, None)
                    if reader is not None:
                        reader.close()
                scored(i, track)
        finally:
            for reader in readers.values():
                reader.close()

    ordered = [tracks[i] for i in sorted(tracks)]
    for i in sorted(tracks):  # tables of resumed recordings too, from their parts
        if i not in todo:
            write_tables(i, tracks[i])
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
    _write_record(out, model, model_print, windowing, rules, summary, ordered, complete=True)
    summary.wall_seconds = time.perf_counter() - t0
    if not ordered and summary.failed:
        raise EarmarkError(f"none of the {len(paths)} recordings could be read (see {errors})")
    return summary
