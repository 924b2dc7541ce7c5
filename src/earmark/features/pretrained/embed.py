"""Embedding tables: one row per window of audio, the vector a pretrained frontend gives it.

:func:`embed_files` cuts every file into windows (by default the frontend's own
``window_seconds``, one after the other: each stretch of audio is embedded once; ``hop``
smaller than the window overlaps them) and embeds them in batches. It runs on the one
preprocessing path (:class:`earmark.preprocess.Preprocessing`: decoding at the frontend's
rate, mono) and the streamed windowing of ``detect``
(:meth:`earmark.predict.Predictor.score_track`, with the embedding as the "score"), so a long
recording is read block by block and memory does not grow with its length. The last window
of a file (or a file shorter than one window) is zero-padded; its ``end_s`` is the file's end.
A file that cannot be read is listed in :attr:`Embeddings.skipped` and left out. Given
``remote`` (:func:`earmark.distributed.embed_files`: a Dask cluster), each file is embedded
there by :func:`embedder`'s predictor, the same computation, and the rows come back here.

:meth:`Embeddings.save` writes the table atomically, as Parquet or ``.npz`` by the name's
suffix. The Parquet table has one row per window: ``file`` (the path as given), ``start_s``,
``end_s`` and ``embedding``, a fixed-size list of ``dim`` float32. One list column rather
than ``dim`` numeric columns: the vector stays one value (its width is part of the schema,
``dim`` columns would be 512 or 1024 names that mean nothing alone), and it reads back as a
matrix without a copy per column: ``np.stack(pd.read_parquet(p)["embedding"])``. The settings
(frontend with its license and attribution, window, hop, rate) are in the file's metadata
under ``earmark``. The ``.npz`` holds the same columns as arrays, ``files``, ``start_s``,
``end_s`` and ``embeddings`` ``[rows, dim]``, and the settings as JSON (``settings``),
readable with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import earmark.features.pretrained as pretrained
from earmark.atomic import atomic_write
from earmark.errors import AudioError, EarmarkError, ParameterError

__all__ = [
    "FORMATS",
    "Embeddings",
    "FileEmbedder",
    "RemoteEmbedder",
    "embed_files",
    "embedder",
    "file_embedder",
]

#: The output formats, by file suffix.
FORMATS = (".parquet", ".npz")
#: Key of the settings in the Parquet metadata.
META_KEY = b"earmark"

#: Embeds files elsewhere (:func:`earmark.distributed.embed_files` supplies one): given the
#: files, the windowing and the batch size, it yields ``(k, rows)`` as each is done, ``k``
#: the file's position in the list and ``rows`` its windows' ``(starts, ends, vectors)``, or
#: the message of the :class:`AudioError` that made it unreadable.
RemoteEmbedder = Callable[
    [list[str], Any, int], Iterable[tuple[int, "tuple[np.ndarray, np.ndarray, np.ndarray] | str"]]
]


@dataclass
class Embeddings:
    """The embeddings of windows of audio files: row ``i`` is window ``[starts[i],
    ends[i])`` seconds of ``files[i]``, embedded as ``vectors[i]`` (float32 ``[rows, dim]``)
    by ``frontend``; ``skipped`` lists the files that could not be read, with why."""

    frontend: str
    window_seconds: float
    hop_seconds: float
    files: list[str]
    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def embedded_files(self) -> int:
        """How many files gave at least one row."""
        return len(dict.fromkeys(self.files))

    def settings(self) -> dict[str, Any]:
        """How the table was made (stored with it)."""
        import earmark

        meta = pretrained.info(self.frontend)
        return {
            "kind": "embeddings",
            "earmark_version": earmark.__version__,
            "frontend": meta.record(),
            "sample_rate": meta.sample_rate,
            "window_s": self.window_seconds,
            "hop_s": self.hop_seconds,
            "rows": len(self),
            "dim": int(self.vectors.shape[1]),
        }

    def frame(self) -> Any:
        """The table as a pandas DataFrame (``embedding``: one float32 array per row)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "file": self.files,
                "start_s": self.starts,
                "end_s": self.ends,
                "embedding": list(self.vectors),
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write the table to ``path`` (``.parquet`` or ``.npz``) atomically: a temporary
        name in the same folder, then renamed."""
        path = Path(path)
        suffix = _suffix(path)
        settings = json.dumps(self.settings())
        if suffix == ".npz":
            arrays = {  # ("files": np.savez takes no array named "file")
                "files": np.asarray(self.files, dtype=str),
                "start_s": self.starts,
                "end_s": self.ends,
                "embeddings": self.vectors,
                "settings": np.asarray(settings),
            }

            def write(tmp: Path) -> None:
                with tmp.open("wb") as fh:  # a file object: np.savez adds no ".npz"
                    np.savez(fh, **arrays)

            return atomic_write(path, write)
        pa, pq = _pyarrow()
        dim = int(self.vectors.shape[1])
        flat = pa.array(np.ascontiguousarray(self.vectors, dtype=np.float32).reshape(-1))
        table = pa.table(
            {
                "file": pa.array(self.files, type=pa.string()),
                "start_s": pa.array(self.starts, type=pa.float64()),
                "end_s": pa.array(self.ends, type=pa.float64()),
                "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
            }
        ).replace_schema_metadata({META_KEY: settings.encode()})
        return atomic_write(path, lambda tmp: pq.write_table(table, tmp))

    @classmethod
    def load(cls, path: str | Path) -> Embeddings:
        """Read a table written by :meth:`save` (no pickle involved)."""
        path = Path(path)
        suffix = _suffix(path)
        try:
            if suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    settings = json.loads(str(z["settings"]))
                    files, starts, ends = z["files"].tolist(), z["start_s"], z["end_s"]
                    vectors = z["embeddings"]
            else:
                _pa, pq = _pyarrow()
                table = pq.read_table(path)
                settings = json.loads(table.schema.metadata[META_KEY])
                files = table.column("file").to_pylist()
                starts = table.column("start_s").to_numpy()
                ends = table.column("end_s").to_numpy()
                emb = table.column("embedding").combine_chunks()
                vectors = emb.flatten().to_numpy().reshape(len(table), emb.type.list_size)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            problem = f"not an embedding table written by earmark ({exc})"
            raise EarmarkError(f"{path}: {problem}") from None
        return cls(
            frontend=settings["frontend"]["name"],
            window_seconds=float(settings["window_s"]),
            hop_seconds=float(settings["hop_s"]),
            files=[str(f) for f in files],
            starts=np.asarray(starts, dtype=np.float64),
            ends=np.asarray(ends, dtype=np.float64),
            vectors=np.asarray(vectors, dtype=np.float32),
        )


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ParameterError(f"{path}: the output name must end in .parquet or .npz")
    return suffix


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EarmarkError(
            "Parquet needs pyarrow: pip install pyarrow (or write .npz instead)"
        ) from None
    return pa, pq


def embedder(frontend: str, window: float, device: str) -> Any:
    """The :class:`earmark.predict.Predictor` whose "scores" are ``frontend``'s embeddings of
    ``window``-second windows on ``device`` (a resolved one: ``cpu``, ``cuda``): the one
    preprocessing path, decoding at the frontend's rate, mono. Its weights are loaded (and
    checked) here, before the first file. A Dask worker builds one per process
    (:mod:`earmark.distributed`); :func:`file_embedder` wraps one for a single process."""
    from earmark.audio import AudioConfig
    from earmark.features.config import FeatureConfig
    from earmark.predict import Predictor
    from earmark.preprocess import Preprocessing

    meta = pretrained.info(frontend)
    prep = Preprocessing(
        AudioConfig(sample_rate=meta.sample_rate, channels=1, max_duration=None),
        FeatureConfig(kind=frontend),
        window,
        device=device,
    )
    prep.frontend()  # built (weights checked) before the first file

    def identity(vectors: np.ndarray) -> np.ndarray:  # the "scores" are the embeddings
        return np.asarray(vectors, dtype=np.float32)

    return Predictor(prep, [str(i) for i in range(meta.dim)], identity, flat=True)


class FileEmbedder:
    """Embeds one file's windows at a time (built by :func:`file_embedder`): the streamed
    path :func:`embed_files` and the similarity index (:mod:`earmark.review.index`) share.
    Calling it with a path gives ``(starts, ends, vectors)`` of its windows or raises
    :class:`AudioError`; ``on_audio(seconds)`` is called as audio is consumed."""

    def __init__(
        self, frontend: str, windowing: Any, predictor: Any, batch_size: int, device: str
    ) -> None:
        self.frontend, self.windowing, self.predictor = frontend, windowing, predictor
        self.batch_size, self.device = batch_size, device
        self.window_seconds = float(windowing.window)
        self.hop_seconds = float(windowing.hop)
        self.dim = pretrained.info(frontend).dim

    def __call__(
        self, path: str | Path, on_audio: Callable[[float], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        track = self.predictor.score_track(
            path, self.windowing, batch_size=self.batch_size, on_block=on_audio
        )
        return track.starts, track.ends, np.asarray(track.scores, dtype=np.float32)


def _windowing(
    frontend: str, window: float | None, hop: float | None, last: str, batch_size: int
) -> Any:
    """The checked windowing of an embedding run (:class:`ParameterError` for a bad window,
    hop or batch size), the frontend's package checked too (its install command)."""
    from earmark.detection.windows import Windowing

    meta = pretrained.info(frontend)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    window = meta.window_seconds if window is None else window
    windowing = Windowing(window=window, hop=hop if hop is not None else window, last=last)
    if not pretrained.available(frontend):
        pretrained.load(frontend)  # raises the one-line install error
    return windowing


def file_embedder(
    frontend: str = pretrained.DEFAULT,
    *,
    window: float | None = None,
    hop: float | None = None,
    last: str = "pad",
    batch_size: int = 32,
    device: str = "auto",
) -> FileEmbedder:
    """The embedder of files' windows for pretrained ``frontend``: windows of ``window``
    seconds (default: the frontend's ``window_seconds``) every ``hop`` seconds (default: the
    window), the partial window at the end handled as ``last`` says
    (:class:`earmark.detection.windows.Windowing`), ``batch_size`` windows at a time on
    ``device``. Everything is checked and the frontend's weights loaded here, before any file
    is read: :class:`ParameterError` for a bad setting, :class:`EarmarkError` with the install
    command when the frontend's package is missing."""
    from earmark.training import resolve_device

    windowing = _windowing(frontend, window, hop, last, batch_size)
    dev = str(resolve_device(device))
    predictor = embedder(frontend, float(windowing.window), dev)
    return FileEmbedder(frontend, windowing, predictor, batch_size, dev)


def embed_files(
    inputs: str | Path | Iterable[str | Path],
    frontend: str = pretrained.DEFAULT,
    *,
    window: float | None = None,
    hop: float | None = None,
    batch_size: int = 32,
    device: str = "auto",
    on_file: Callable[[], None] | None = None,
    on_audio: Callable[[float], None] | None = None,
    remote: RemoteEmbedder | None = None,
) -> Embeddings:
    """Embed the windows of audio files (files, folders searched for audio, manifest CSVs)
    with pretrained ``frontend``: windows of ``window`` seconds (default: the frontend's
    ``window_seconds``) every ``hop`` seconds (default: the window, no overlap), embedded
    ``batch_size`` windows at a time on ``device`` (``auto``: the GPU when present).
    ``on_file()`` is called after each file, ``on_audio(seconds)`` as audio is consumed.
    ``remote`` embeds the files elsewhere (:data:`RemoteEmbedder`); the table is the same.

    Raises :class:`ParameterError` for a bad window, hop or batch size or an unknown
    frontend, and :class:`EarmarkError` (with the install command) when the frontend's
    package is missing, both before any file is read. Unreadable files are skipped and
    listed in :attr:`Embeddings.skipped`."""
    from earmark.predict import input_files

    meta = pretrained.info(frontend)
    one = None  # settings checked (and, here, the weights loaded) before any file is read
    if remote is not None:
        windowing = _windowing(frontend, window, hop, "pad", batch_size)
    else:
        one = file_embedder(frontend, window=window, hop=hop, batch_size=batch_size, device=device)
        windowing = one.windowing
    paths = input_files(inputs)
    rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray] | str] = {}
    if remote is not None:
        for k, result in remote(paths, windowing, batch_size):
            rows[k] = result
            if on_file is not None:
                on_file()
    else:
        for k, path in enumerate(paths):
            try:
                rows[k] = one(path, on_audio)  # type: ignore[misc]
            except AudioError as exc:
                rows[k] = str(exc)
            if on_file is not None:
                on_file()
    window, hop = float(windowing.window), float(windowing.hop)
    files: list[str] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for k in sorted(rows):  # the files' order, however they came back
        result = rows[k]
        if isinstance(result, str):
            skipped.append((str(paths[k]), result))
            continue
        files += [str(paths[k])] * len(result[0])
        starts.append(result[0])
        ends.append(result[1])
        vectors.append(result[2])
    return Embeddings(
        frontend=frontend,
        window_seconds=window,
        hop_seconds=hop,
        files=files,
        starts=np.concatenate(starts) if starts else np.zeros(0),
        ends=np.concatenate(ends) if ends else np.zeros(0),
        vectors=np.concatenate(vectors) if vectors else np.zeros((0, meta.dim), np.float32),
        skipped=skipped,
    )
