"""Features of a whole data set as one table: computed in batches, saved as ``.npz``.

Files that cannot be decoded are skipped and listed, never the end of the run. The ``.npz``
holds only numeric and text arrays (loaded with ``allow_pickle=False``) and the exact audio
and feature settings as JSON, so the numbers can always be traced back to how they were made.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.atomic import atomic_write
from earmark.audio import AudioConfig, load_clip
from earmark.cache import ArrayCache, file_digest, segment_key
from earmark.data.manifest import Manifest
from earmark.errors import AudioError, EarmarkError
from earmark.features.config import FeatureConfig
from earmark.prefetch import prefetch_map

__all__ = ["FeatureTable", "RemoteRows", "compute_features"]

#: Computes feature rows elsewhere (:func:`earmark.distributed.compute_features` supplies
#: one): given the rows' files and segments (``None``: the whole file) and the settings, it
#: yields ``(k, vector, error)`` as each row is done, ``k`` the row's position in the list
#: and either its feature array or the message of the error that made it unreadable.
RemoteRows = Callable[
    [Sequence[str], Sequence["tuple[float, float] | None"], AudioConfig, FeatureConfig],
    Iterable[tuple[int, "np.ndarray | None", "str | None"]],
]


@dataclass
class FeatureTable:
    """Features ``X`` (first axis: files), class ids ``y`` (-1: unlabelled; for a
    multi-label manifest a float multi-hot matrix ``[files, classes]``) and provenance."""

    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    filepaths: list[str]
    groups: list[str]
    audio: AudioConfig
    features: FeatureConfig
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: per row, the segment ``(offset, duration)`` in seconds, or ``None`` for a whole file;
    #: empty when every row is a whole file
    spans: list[tuple[float, float] | None] = field(default_factory=list)

    def clip_seconds(self) -> list[float] | None:
        """Each row's segment length in seconds, or ``None`` when the rows are whole files
        (their lengths come from the files' headers)."""
        if not self.spans or any(s is None for s in self.spans):
            return None
        return [s[1] for s in self.spans]

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` atomically (temporary name, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        settings = {"audio": self.audio.to_dict(), "features": self.features.to_dict()}
        arrays = {
            "X": self.X,
            "y": self.y,
            "classes": np.array(self.classes, dtype=str),
            "filepaths": np.array(self.filepaths, dtype=str),
            "groups": np.array(self.groups, dtype=str),
            "names": np.array(self.names, dtype=str),
            "settings": np.array(json.dumps(settings)),
        }
        if self.spans:  # segments: offset and duration, NaN for a whole file
            arrays["spans"] = np.array(
                [s if s is not None else (np.nan, np.nan) for s in self.spans], dtype=np.float64
            ).reshape(-1, 2)

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:  # a file object: np.savez adds no ".npz" to the name
                np.savez(fh, **arrays)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> FeatureTable:
        """Read a table written by :meth:`save` (no pickle involved)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                settings = json.loads(str(z["settings"]))
                return cls(
                    X=z["X"],
                    y=z["y"],
                    classes=z["classes"].tolist(),
                    filepaths=z["filepaths"].tolist(),
                    groups=z["groups"].tolist(),
                    audio=AudioConfig.from_dict(settings["audio"]),
                    features=FeatureConfig.from_dict(settings["features"]),
                    names=z["names"].tolist(),
                    spans=[
                        None if np.isnan(a) else (float(a), float(b))
                        for a, b in (z["spans"] if "spans" in z.files else [])
                    ],
                )
        except (OSError, KeyError, ValueError) as exc:
            raise EarmarkError(f"{path}: not a feature table written by earmark ({exc})") from None


#: Below this many uncached files, hand-crafted features are computed in this process:
#: starting worker processes (each imports librosa and JIT-compiles it) costs seconds, and
#: threads do not help (librosa's frame loops hold the GIL). Measured on 2 cores: 200 clips
#: take 1.4 s in one process, 1.7 s in two threads, 2-9 s in two new processes.
PARALLEL_MIN_FILES = 1000


def _settings_key(audio: AudioConfig, features: FeatureConfig) -> str:
    """The cache key of these settings; a pretrained frontend's adds the identity of its
    weights (package version and checkpoint digest), so another release of the weights
    never reads this one's embeddings."""
    key = f"{audio.key()}|{features.key()}"
    if features.pretrained:
        from earmark.features.pretrained import info

        key += f"|weights={info(features.kind).weights}"
    return key


def _clip(path: str, audio: AudioConfig, span: tuple[float, float] | None) -> np.ndarray:
    """A row's clip: the whole file, or its segment ``span`` (offset, duration)."""
    offset, duration = span if span is not None else (0.0, None)
    return load_clip(path, audio, offset=offset, duration=duration)


def _handcrafted_file(
    path: str, audio: dict, features: dict, span: tuple[float, float] | None = None
) -> tuple[np.ndarray | None, str | None]:
    """Worker: one file's (or segment's) hand-crafted vector, or its error (runs in a worker
    process)."""
    a, f = AudioConfig.from_dict(audio), FeatureConfig.from_dict(features)
    try:
        return f.handcrafted(a.sample_rate)(_clip(path, a, span)), None
    except AudioError as exc:
        return None, str(exc)


def feature_row(
    path: str,
    audio: AudioConfig,
    features: FeatureConfig,
    span: tuple[float, float] | None = None,
    *,
    frontend: Callable[[Any], Any] | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray | None, str | None]:
    """One row of :func:`compute_features` alone: the file's (or segment's) features, or
    the error that made it unreadable. ``frontend`` (spectral and pretrained kinds): the
    torch module of :func:`~earmark.features.frontend.build_frontend` on ``device``, built
    once by the caller; it sees a batch of one clip, as :func:`compute_features` batches
    them."""
    if features.kind == "handcrafted":
        return _handcrafted_file(path, audio.to_dict(), features.to_dict(), span)
    if frontend is None:
        raise EarmarkError(f"{features.kind} features need the frontend module")
    import torch

    try:
        y = _clip(path, audio, span)
    except AudioError as exc:
        return None, str(exc)
    with torch.inference_mode():
        out = frontend(torch.from_numpy(y[None]).to(device)).float().cpu().numpy()
    return out[0], None


def _digests(paths: list[str], workers: int) -> list[str | None]:
    """Content digests of ``paths``, each distinct file hashed once (the windows of one
    recording share it)."""

    def one(path: str) -> str | None:
        try:
            return file_digest(path)
        except OSError:
            return None  # reported when the file is decoded

    unique = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digest = dict(zip(unique, pool.map(one, unique), strict=True))
    return [digest[p] for p in paths]


def compute_features(
    manifest: Manifest,
    audio: AudioConfig,
    features: FeatureConfig,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    on_file: Callable[[], None] | None = None,
    remote: RemoteRows | None = None,
) -> FeatureTable:
    """Decode, standardize and featurize every file of ``manifest``.

    Each file's features are cached under ``cache_dir`` (keyed by its content and the
    settings), so a re-run only reads the cache. Spectral kinds decode in threads and compute
    features in batches with torch; hand-crafted features use ``workers`` processes (default:
    all cores) once there are :data:`PARALLEL_MIN_FILES` files to compute. A pretrained
    frontend (``aisfx``...) embeds ``batch_size`` clips at a time on ``device``; its cache
    entries are keyed by its weights too. Clips must share a length for the spectral kinds,
    ``waveform`` and the pretrained frontends: set ``audio.duration``. Unreadable files are
    skipped and listed in ``FeatureTable.skipped``. ``remote`` computes the rows the cache
    does not hold elsewhere (:data:`RemoteRows`, one row at a time, as
    :func:`feature_row` does); the table is the same.
    """
    if features.kind != "handcrafted" and audio.duration is None:
        raise EarmarkError(
            f"{features.kind} features of clips of different lengths cannot be stacked: "
            "set a clip duration (AudioConfig.duration / --duration)"
        )
    workers = workers or os.cpu_count() or 1
    paths = manifest.filepaths
    spans = manifest.spans
    cache = ArrayCache(cache_dir) if cache_dir is not None else None
    base_key = _settings_key(audio, features)
    keys = [segment_key(base_key, span) for span in spans]  # a segment's key has its span
    digests = _digests(paths, workers) if cache is not None else [None] * len(paths)
    found: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    if cache is not None:
        for i, digest in enumerate(digests):
            if digest is not None and (hit := cache.get(digest, keys[i])) is not None:
                found[i] = hit
                if on_file is not None:
                    on_file()
    todo = [i for i in range(len(paths)) if i not in found]

    def keep(i: int, value: np.ndarray | None, error: str | None) -> None:
        if error is not None:
            errors[i] = error
        else:
            found[i] = value
            if cache is not None and digests[i] is not None:
                cache.put(digests[i], keys[i], value)
        if on_file is not None:
            on_file()

    if remote is not None:
        results = remote([paths[i] for i in todo], [spans[i] for i in todo], audio, features)
        for k, value, error in results:
            keep(todo[k], value, error)
    elif features.kind == "handcrafted":
        args = (audio.to_dict(), features.to_dict())
        if workers > 1 and len(todo) >= PARALLEL_MIN_FILES:
            ctx = multiprocessing.get_context("spawn")  # safe beside torch's threads
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                jobs = [paths[i] for i in todo]
                results = pool.map(
                    _handcrafted_file,
                    jobs,
                    *([a] * len(jobs) for a in args),
                    [spans[i] for i in todo],
                    chunksize=32,
                )
                for i, (value, error) in zip(todo, results, strict=True):
                    keep(i, value, error)
        else:
            for i in todo:
                keep(i, *_handcrafted_file(paths[i], *args, spans[i]))
    else:
        import torch  # only for these kinds

        from earmark.features.frontend import build_frontend

        def decode(i: int) -> tuple[int, np.ndarray | None, str | None]:
            try:
                return i, _clip(paths[i], audio, spans[i]), None
            except AudioError as exc:
                return i, None, str(exc)

        frontend = build_frontend(features, audio.sample_rate).to(device)
        good: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            stacked = torch.from_numpy(np.stack([y for _, y in good])).to(device)
            with torch.inference_mode():
                out = frontend(stacked).float().cpu().numpy()
            for (i, _), value in zip(good, out, strict=True):
                keep(i, value, None)
            good.clear()

        # Decoding runs in threads ahead of the frontend.
        decoded = prefetch_map(decode, todo, workers=min(workers, 8), ahead=2 * batch_size)
        for i, y, err in decoded:
            if err is not None:
                keep(i, None, err)
                continue
            good.append((i, y))
            if len(good) == batch_size:
                flush()
        if good:
            flush()
    kept = sorted(found)
    if not kept:
        raise EarmarkError(f"none of the {len(manifest)} files could be decoded")
    groups = manifest.groups if manifest.has_groups else None
    names = features.handcrafted(audio.sample_rate).names if features.kind == "handcrafted" else []
    return FeatureTable(
        X=np.stack([found[i] for i in kept]).astype(np.float32),
        y=manifest.targets(manifest.classes)[kept],
        classes=manifest.classes,
        filepaths=[paths[i] for i in kept],
        groups=[str(groups[i]) for i in kept] if groups is not None else [],
        audio=audio,
        features=features,
        names=names,
        skipped=[(manifest.describe(i), errors[i]) for i in sorted(errors)],
        spans=[spans[i] for i in kept] if manifest.has_segments else [],
    )
