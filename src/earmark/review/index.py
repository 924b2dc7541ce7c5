"""Similarity search: every window of a corpus embedded by a pretrained frontend, in an
approximate-nearest-neighbour index, queried with a clip.

:func:`build_index` cuts every file (files, folders searched for audio, manifest CSVs; long
recordings are streamed block by block) into windows of the frontend's own length every
``hop`` seconds (default: the window, no overlap), embeds them with the shared streamed path
of ``earmark embed`` (:func:`earmark.features.pretrained.embed.file_embedder`), and writes a
folder:

- ``index.json``: the settings (frontend with its weights' checksum, license and
  attribution, window, hop, distance, the ANN library, its encoding and graph parameters),
  the inputs, and the status (``building`` until the end, then ``complete`` with counts and
  the files that could not be read). Written first and last, atomically.
- ``vectors.usearch``: the HNSW graph and the vectors (unit length, cosine distance), key =
  row of the windows table, opened memory-mapped (a query reads only the pages it visits).
- ``windows.parquet``: one row per window: ``file`` (absolute path), ``start_s``, ``end_s``.
- ``parts/`` while building: the embeddings of each batch of files, written atomically, so an
  interrupted build continues where it stopped (``resume=True``) instead of starting again;
  removed when the index is complete.

Why usearch (measured by ``benchmarks/bench_search.py --compare``, numbers in the README):
among the three candidates (usearch, faiss-cpu, hnswlib) with the same HNSW parameters, all
reach recall@10 >= 0.998 against exact search on the demo's aisfx embeddings (float32 and
f16) and answer in well under a millisecond, so the choice is made on what an index of
1,000 hours costs and on packaging. usearch stores f16
vectors (half the disk of float32 with the same recall), its index is one file opened as a
memory map (instant to open, memory does not grow with the corpus), it has exact search over
the same stored vectors built in (the fallback for tiny indexes and the recall reference), and
it ships as a small binary wheel (Apache-2.0, numpy 2). faiss-cpu does the same with a
larger wheel and a slower open; hnswlib keeps float32 only, loads the whole index into memory
and ships as source only (a C++ compiler at install).

A query (:meth:`SearchIndex.search_file`) embeds the clip the same way, windows of the same
length every window (plus one aligned to its end, so no window is mostly padding; a clip
shorter than one window is one zero-padded window), and searches with the *mean* of its
windows' unit vectors: a clip of one sound is one query that weighs all of it, rather than
its single most typical window. Trim a long query to the sound you want found.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.atomic import atomic_text, atomic_write
from earmark.errors import AudioError, DurationLimitError, EarmarkError, ParameterError

__all__ = [
    "DTYPES",
    "Hit",
    "IndexSummary",
    "SearchIndex",
    "SearchResult",
    "build_index",
    "open_index",
]

SETTINGS_FILE = "index.json"
ANN_FILE = "vectors.usearch"
WINDOWS_FILE = "windows.parquet"
PARTS_DIR = "parts"
KIND = "search-index"
RECORD_VERSION = 1
#: How the index stores its vectors: f16 (default: half of float32's disk, the same
#: recall), f32, or i8 (a quarter, a little less recall: see the README's measurements).
DTYPES = ("f16", "f32", "i8")
#: HNSW graph parameters: links per node, candidates kept while adding and while searching.
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 64
#: Indexes of at most this many windows are searched exactly (a scan of that many vectors
#: takes about a millisecond, and an exact answer is never wrong).
EXACT_BELOW = 4096
#: A part is written after this many files or windows (the work an interruption can lose).
PART_FILES, PART_WINDOWS = 256, 8192
INSTALL = "pip install 'earmark[search]'"
#: What ``build_index`` may remove from a folder when overwriting (its own files only).
_OWN = frozenset({SETTINGS_FILE, ANN_FILE, WINDOWS_FILE, PARTS_DIR})


def _usearch() -> Any:
    """The usearch ``Index`` class, or the one-line install error."""
    try:
        from usearch.index import Index
    except ImportError:
        raise EarmarkError(f"similarity search needs the usearch package: {INSTALL}") from None
    return Index


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


@dataclass
class IndexSummary:
    """What :func:`build_index` did: files embedded in this run, files taken from an
    interrupted run's parts, files that could not be read (with why), windows in the index,
    seconds of audio embedded in this run and wall time."""

    out_dir: Path
    files: int = 0
    embedded: int = 0
    resumed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    windows: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0


def _read_settings(out: Path) -> dict[str, Any] | None:
    """The folder's ``index.json`` when it is an earmark index record, else ``None``."""
    try:
        doc = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == KIND else None


def _prepare_out(out: Path, settings: dict[str, Any], overwrite: bool, resume: bool) -> bool:
    """Check the output folder and make it ready; ``True`` when resuming its parts."""
    from earmark.artifact import OutputError, check_out

    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: a file is there, not a folder")
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if not entries:
        if resume:
            raise EarmarkError(f"{out}: no index to resume there; run without --resume")
        check_out(out)  # writable
        out.mkdir(parents=True, exist_ok=True)
        return False
    record = _read_settings(out)
    if record is None or not entries <= _OWN:
        raise OutputError(
            f"{out}: holds files earmark did not write; earmark replaces only what it wrote "
            "(choose a new or empty folder)"
        )
    building = record.get("status") != "complete"
    if resume:
        if not building:
            raise EarmarkError(f"{out}: the index is complete; pass --overwrite to build it again")
        for key in ("frontend", "window_s", "hop_s", "metric", "library", "dtype", "inputs"):
            if record.get(key) != settings.get(key):
                raise EarmarkError(
                    f"{out}: the half-built index was started with another {key} "
                    f"({_show(record.get(key))}, now {_show(settings.get(key))}); give the same "
                    "settings, or pass --overwrite to start again"
                )
        return True
    if not overwrite:
        if building:
            raise EarmarkError(
                f"{out}: holds a half-built index; continue it with --resume or start again "
                "with --overwrite"
            )
        raise EarmarkError(f"{out}: holds an earlier index; pass --overwrite to replace it")
    for name in entries:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    return False


def _show(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        return str(value["name"]) + (f" {value['weights']}" if "weights" in value else "")
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _parts(out: Path) -> list[Path]:
    folder = out / PARTS_DIR
    return sorted(folder.glob("part-*.npz")) if folder.is_dir() else []


def _read_part(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {
                "files": z["files"].tolist(),
                "rows_file": z["rows_file"],
                "starts": z["starts"],
                "ends": z["ends"],
                "vectors": z["vectors"],
                "skipped": json.loads(str(z["skipped"])),
            }
    except (OSError, KeyError, ValueError) as exc:
        # parts are written atomically: an unreadable one was damaged after the fact
        raise EarmarkError(
            f"{path}: a damaged part of a half-built index ({exc}); pass --overwrite to start again"
        ) from None


class _PartWriter:
    """Collects embedded files and writes them as the next part (atomically)."""

    def __init__(self, out: Path, first: int) -> None:
        self.folder = out / PARTS_DIR
        self.number = first
        self.clear()

    def clear(self) -> None:
        self.files: list[str] = []
        self.rows_file: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []
        self.vectors: list[np.ndarray] = []
        self.skipped: list[tuple[str, str]] = []
        self.windows = 0

    def add(self, path: str, starts: np.ndarray, ends: np.ndarray, vectors: np.ndarray) -> None:
        self.rows_file.append(np.full(len(starts), len(self.files), dtype=np.int32))
        self.files.append(path)
        self.starts.append(starts)
        self.ends.append(ends)
        self.vectors.append(vectors)
        self.windows += len(starts)

    def skip(self, path: str, problem: str) -> None:
        self.files.append(path)
        self.skipped.append((path, problem))

    @property
    def full(self) -> bool:
        return len(self.files) >= PART_FILES or self.windows >= PART_WINDOWS

    def flush(self, dim: int) -> None:
        if not self.files:
            return
        arrays = {
            "files": np.asarray(self.files, dtype=str),
            "rows_file": np.concatenate(self.rows_file or [np.zeros(0, np.int32)]),
            "starts": np.concatenate(self.starts or [np.zeros(0)]),
            "ends": np.concatenate(self.ends or [np.zeros(0)]),
            "vectors": np.concatenate(self.vectors or [np.zeros((0, dim), np.float32)]),
            "skipped": np.asarray(json.dumps(self.skipped)),
        }

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                np.savez(fh, **arrays)

        self.folder.mkdir(exist_ok=True)
        atomic_write(self.folder / f"part-{self.number:06d}.npz", write)
        self.number += 1
        self.clear()


def build_index(
    inputs: str | Path | Iterable[str | Path],
    out: str | Path,
    *,
    frontend: str = "aisfx",
    hop: float | None = None,
    dtype: str = "f16",
    batch_size: int = 32,
    device: str = "auto",
    overwrite: bool = False,
    resume: bool = False,
    on_file: Callable[[], None] | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> IndexSummary:
    """Embed every window of ``inputs`` with pretrained ``frontend`` (windows of its own
    length every ``hop`` seconds; default: the window) and write the index folder ``out``
    (see the module docstring). ``dtype``: how vectors are stored (:data:`DTYPES`).

    ``out`` must be new or empty; an earlier index there is replaced with ``overwrite``; a
    half-built one (an interrupted run) is continued with ``resume`` (the same settings and
    inputs; files already embedded are not embedded again). Everything is checked before any
    file is read (:class:`ParameterError`, :class:`EarmarkError` with the install command
    for a missing frontend or usearch). Unreadable files are skipped and listed in the
    summary and in ``index.json``. Ctrl-C keeps what was embedded and raises
    :class:`earmark.errors.Interrupted`."""
    import earmark
    from earmark.errors import Interrupted
    from earmark.features import pretrained
    from earmark.features.pretrained.embed import file_embedder
    from earmark.predict import input_files

    t0 = time.perf_counter()
    out = Path(out)
    if dtype not in DTYPES:
        raise ParameterError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if overwrite and resume:
        raise ParameterError("give --resume or --overwrite, not both")
    index_cls = _usearch()
    embedder = file_embedder(frontend, hop=hop, batch_size=batch_size, device=device)
    meta = pretrained.info(frontend)
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    from usearch import __version__ as usearch_version

    settings: dict[str, Any] = {
        "kind": KIND,
        "version": RECORD_VERSION,
        "earmark_version": earmark.__version__,
        "frontend": meta.record(),
        "sample_rate": meta.sample_rate,
        "window_s": embedder.window_seconds,
        "hop_s": embedder.hop_seconds,
        "dim": meta.dim,
        "metric": "cos",
        "query": "mean of the query clip's window embeddings (unit vectors)",
        "library": "usearch",
        "library_version": usearch_version,
        "dtype": dtype,
        "connectivity": CONNECTIVITY,
        "expansion_add": EXPANSION_ADD,
        "expansion_search": EXPANSION_SEARCH,
        "inputs": [str(Path(p).resolve()) for p in items],
        "status": "building",
    }
    files = list(dict.fromkeys(str(Path(p).resolve()) for p in input_files(items)))
    if not files:
        raise EarmarkError(f"no audio files in {', '.join(map(str, items))}")
    resuming = _prepare_out(out, settings, overwrite, resume)
    done: set[str] = set()
    parts = _parts(out) if resuming else []
    for part in parts:
        done.update(_read_part(part)["files"])
    if not resuming:
        atomic_text(out / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")
    summary = IndexSummary(out_dir=out, files=len(files), resumed=len(done & set(files)))
    writer = _PartWriter(out, len(parts))

    def on_block(seconds: float) -> None:
        summary.audio_seconds += seconds
        if on_audio is not None:
            on_audio(seconds)

    try:
        for path in files:
            if path in done:
                if on_file is not None:
                    on_file()
                continue
            try:
                starts, ends, vectors = embedder(path, on_block)
            except AudioError as exc:
                writer.skip(path, str(exc))
            else:
                writer.add(path, starts, ends, vectors)
                summary.embedded += 1
            if writer.full:
                writer.flush(meta.dim)
            if on_file is not None:
                on_file()
        writer.flush(meta.dim)
    except KeyboardInterrupt:
        writer.flush(meta.dim)  # keep what was embedded
        raise Interrupted(
            f"{out}: the index is half-built; run the same command with --resume to continue"
        ) from None
    _assemble(out, settings, index_cls, summary)
    summary.wall_seconds = time.perf_counter() - t0
    return summary


def _assemble(out: Path, settings: dict[str, Any], index_cls: Any, summary: IndexSummary) -> None:
    """The ANN index and the windows table from the parts, then the completed record; the
    parts are removed last (the record says complete only once both files are in place)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = index_cls(
        ndim=settings["dim"],
        metric="cos",
        dtype=settings["dtype"],
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )
    names: list[str] = []
    codes, starts, ends = [], [], []
    skipped: list[tuple[str, str]] = []
    position: dict[str, int] = {}
    rows = 0
    for part_path in _parts(out):
        part = _read_part(part_path)
        skipped += [tuple(s) for s in part["skipped"]]
        unread = {p for p, _ in part["skipped"]}
        local = []
        for f in part["files"]:
            if f not in position and f not in unread:  # only files with windows are named
                position[f] = len(names)
                names.append(f)
            local.append(position.get(f, -1))
        n = len(part["starts"])
        if n:
            index.add(np.arange(rows, rows + n, dtype=np.uint64), _unit(part["vectors"]))
            codes.append(np.asarray(local, dtype=np.int32)[part["rows_file"]])
            starts.append(part["starts"])
            ends.append(part["ends"])
            rows += n
    summary.skipped = skipped
    summary.windows = rows
    if rows == 0:
        raise EarmarkError(
            f"none of the {summary.files} files could be read; nothing to index "
            f"(first problem: {skipped[0][1] if skipped else 'none'})"
        )
    atomic_write(out / ANN_FILE, lambda tmp: index.save(str(tmp)))
    code = np.concatenate(codes)
    file_col = pa.DictionaryArray.from_arrays(pa.array(code), pa.array(names, type=pa.string()))
    table = pa.table(
        {
            "file": file_col,
            "start_s": pa.array(np.concatenate(starts), type=pa.float64()),
            "end_s": pa.array(np.concatenate(ends), type=pa.float64()),
        }
    )
    atomic_write(out / WINDOWS_FILE, lambda tmp: pq.write_table(table, tmp))
    longest = np.zeros(len(names))
    np.maximum.at(longest, code, np.concatenate(ends))  # each file's last window's end
    settings = {
        **settings,
        "status": "complete",
        "windows": rows,
        "files": int(np.count_nonzero(longest)),
        "audio_hours": round(float(longest.sum()) / 3600, 6),
        "skipped": [{"path": p, "error": e} for p, e in skipped],
    }
    atomic_text(out / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)


@dataclass(frozen=True)
class Hit:
    """One nearest window: its ``rank`` (1 = nearest), ``row`` in the windows table, the
    ``file`` (absolute path), ``start_s`` / ``end_s`` and the cosine ``distance`` (0 = the
    same direction, 2 = opposite)."""

    rank: int
    row: int
    file: str
    start_s: float
    end_s: float
    distance: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "file": self.file,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "distance": round(self.distance, 6),
        }


@dataclass
class SearchResult:
    """The hits of one query, nearest first; ``exact``: found by a full scan (tiny index or
    asked for) rather than the graph; ``query_windows``: how many windows of the query clip
    were averaged (0 for a query by vector); ``took_ms``: search time (embedding included
    for a clip)."""

    hits: list[Hit]
    exact: bool
    took_ms: float
    query_windows: int = 0

    @property
    def rows(self) -> list[int]:
        return [h.row for h in self.hits]

    def to_dict(self) -> dict[str, Any]:
        return {
            "hits": [h.to_dict() for h in self.hits],
            "exact": self.exact,
            "query_windows": self.query_windows,
            "took_ms": round(self.took_ms, 3),
        }


class SearchIndex:
    """An index folder written by :func:`build_index`, opened for queries (the vectors
    memory-mapped). Thread-safe for queries. Use :func:`open_index`."""

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        if not self.path.is_dir():
            raise EarmarkError(f"{self.path}: no such index folder")
        settings = _read_settings(self.path)
        if settings is None:
            raise EarmarkError(f"{self.path}: not an earmark index (no {SETTINGS_FILE})")
        if settings.get("status") != "complete":
            raise EarmarkError(
                f"{self.path}: a half-built index; finish it with `earmark index ... --out "
                f"{self.path} --resume`"
            )
        if settings.get("version", 0) > RECORD_VERSION:
            raise EarmarkError(f"{self.path}: made by a newer earmark; upgrade earmark")
        self.settings = settings
        index_cls = _usearch()
        try:
            self._index = index_cls.restore(str(self.path / ANN_FILE), view=True)
            table = pq.read_table(self.path / WINDOWS_FILE)
        except (OSError, RuntimeError, ValueError) as exc:
            raise EarmarkError(f"{self.path}: a damaged index ({exc}); build it again") from None
        if self._index is None or len(self._index) != len(table):
            raise EarmarkError(f"{self.path}: a damaged index (its files disagree); build it again")
        self._index.expansion_search = int(settings.get("expansion_search", EXPANSION_SEARCH))
        column = table.column("file").combine_chunks()
        if hasattr(column, "dictionary"):  # as written: file names once, a code per row
            self.files: list[str] = column.dictionary.to_pylist()
            self._codes = column.indices.to_numpy()
        else:
            names = column.to_pylist()
            self.files = list(dict.fromkeys(names))
            lookup = {f: i for i, f in enumerate(self.files)}
            self._codes = np.asarray([lookup[f] for f in names], dtype=np.int32)
        self.starts = table.column("start_s").to_numpy()
        self.ends = table.column("end_s").to_numpy()
        self._embedder: Any = None

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def frontend(self) -> str:
        return str(self.settings["frontend"]["name"])

    @property
    def windows(self) -> dict[str, Any]:
        """The windows table as columns: ``file`` (a list of paths), ``start_s``, ``end_s``."""
        return {
            "file": [self.files[c] for c in self._codes],
            "start_s": self.starts,
            "end_s": self.ends,
        }

    def file_of(self, row: int) -> str:
        return self.files[int(self._codes[row])]

    def roots(self) -> dict[str, str]:
        """Each indexed file and the input it came from: the folder given to
        :func:`build_index` that holds it (the deepest), else the file's own folder (a file
        or a manifest's entry given alone). A client is shown the path under its root."""
        folders = sorted(
            (Path(p) for p in self.settings.get("inputs", []) if Path(p).suffix.lower() != ".csv"),
            key=lambda p: len(p.parts),
            reverse=True,
        )
        out = {}
        for f in self.files:
            path = Path(f)
            root = next((d for d in folders if path.is_relative_to(d) and path != d), None)
            out[f] = str(root if root is not None else path.parent)
        return out

    def prepare_queries(self) -> None:
        """Load the frontend for queries by clip now (a server does it at start-up): a
        missing frontend package or weights other than the index's fail here, one line."""
        self._query_embedder()

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``rows`` (float32, unit length up to the encoding)."""
        got = self._index.get(np.asarray(rows, dtype=np.uint64), dtype=np.float32)
        return np.asarray(np.stack(got) if isinstance(got, tuple) else got, dtype=np.float32)

    def search_vector(
        self, vector: np.ndarray, k: int = 10, *, exact: bool | None = None
    ) -> SearchResult:
        """The ``k`` windows nearest to ``vector`` (a ``dim`` embedding; normalised here).
        ``exact``: ``None`` scans every vector when the index has at most
        :data:`EXACT_BELOW` windows and walks the graph otherwise; ``True`` / ``False``
        force either."""
        t0 = time.perf_counter()
        k = _check_k(k)
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.settings["dim"] or not np.all(np.isfinite(v)):
            raise ParameterError(
                f"a query vector must be {self.settings['dim']} finite numbers, got {v.shape[0]}"
            )
        exact = len(self) <= EXACT_BELOW if exact is None else bool(exact)
        count = min(k, len(self))
        found = self._index.search(_unit(v), count, exact=exact, threads=1)
        n = int(found.count) if hasattr(found, "count") else len(found.keys)
        hits = []
        for rank, (key, dist) in enumerate(zip(found.keys[:n], found.distances[:n], strict=True)):
            row = int(key)
            hits.append(
                Hit(
                    rank=rank + 1,
                    row=row,
                    file=self.file_of(row),
                    start_s=float(self.starts[row]),
                    end_s=float(self.ends[row]),
                    distance=float(dist) if math.isfinite(float(dist)) else 2.0,
                )
            )
        return SearchResult(hits, exact, 1000 * (time.perf_counter() - t0))

    def embed_query(
        self, path: str | Path, *, max_duration: float | None = None
    ) -> tuple[np.ndarray, int]:
        """The query vector of the clip at ``path`` (mean of its windows' unit embeddings,
        see the module docstring) and how many windows it averaged. Raises
        :class:`AudioError` for an unreadable clip (one line, naming it) or one over
        ``max_duration`` seconds, and :class:`EarmarkError` when the installed frontend's
        weights are not the ones the index was built with."""
        from earmark import audio as audio_io

        embedder = self._query_embedder()
        if max_duration is not None:
            duration = audio_io.info(path).duration
            if duration > max_duration:
                raise DurationLimitError(
                    path, f"{duration:.1f} s of audio is over the limit of {max_duration:.1f} s"
                )
        _starts, _ends, vectors = embedder(path)
        if len(vectors) == 0:
            raise AudioError(path, "no audio to search with")
        return _unit(_unit(vectors).mean(axis=0)), len(vectors)

    def search_file(
        self,
        path: str | Path,
        k: int = 10,
        *,
        exact: bool | None = None,
        max_duration: float | None = None,
    ) -> SearchResult:
        """The ``k`` windows nearest to the clip at ``path`` (:meth:`embed_query`, then
        :meth:`search_vector`); ``took_ms`` includes the embedding."""
        t0 = time.perf_counter()
        k = _check_k(k)
        vector, windows = self.embed_query(path, max_duration=max_duration)
        result = self.search_vector(vector, k, exact=exact)
        result.query_windows = windows
        result.took_ms = 1000 * (time.perf_counter() - t0)
        return result

    def _query_embedder(self) -> Any:
        if self._embedder is None:
            from earmark.features import pretrained
            from earmark.features.pretrained.embed import file_embedder

            recorded = self.settings["frontend"]
            installed = pretrained.info(recorded["name"]).record()
            if installed.get("weights") != recorded.get("weights"):
                raise EarmarkError(
                    f"{self.path}: built with {recorded['name']} weights "
                    f"{recorded.get('weights')}, but {installed.get('weights')} is installed: "
                    "build the index again"
                )
            window = float(self.settings["window_s"])
            self._embedder = file_embedder(
                recorded["name"], window=window, hop=window, last="end", device="cpu"
            )
        return self._embedder


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 1000:
        raise ParameterError(f"k must be a whole number from 1 to 1000, got {k!r}")
    return int(k)


def open_index(path: str | Path) -> SearchIndex:
    """Open the index folder ``path`` for queries (one-line :class:`EarmarkError` when it is
    missing, half-built, damaged, or usearch is not installed)."""
    return SearchIndex(path)
