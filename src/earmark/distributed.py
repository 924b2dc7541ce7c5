"""Corpus jobs on Dask: ``detect``, ``predict``, ``features`` and ``embed`` over many files,
one task per file, on a cluster of worker processes.

An :class:`Engine` is where the tasks run: ``Engine(workers=N)`` starts a
``distributed.LocalCluster`` in this process (``N`` worker processes of one thread each:
the default, embedded engine), ``Engine(scheduler="tcp://host:8786")`` uses a running
cluster (``dask scheduler`` and ``dask worker`` processes, or a SLURM / PBS cluster made by
``dask-jobqueue``: see ``examples/slurm_detect.py``). Workers must see the files and the
model at the paths the client gives (a shared file system), and run the same earmark.

Each job here is the library's own function with its per-file work sent to the workers:
:func:`detect` is :func:`earmark.detection.run.detect`, :func:`compute_features` is
:func:`earmark.features.table.compute_features`, :func:`embed_files` is
:func:`earmark.features.pretrained.embed.embed_files`, :func:`predict_files` is a model's
``predict_files``. The tasks return plain results (a score track, a feature row, a
prediction) and everything is written here, on the client, by the same code as a run in
one process: the same files, and the same bytes where the arithmetic is the same (detect
and embed score each file exactly as one process does; ``predict`` and the torch features
score a file's windows in batches of their own rather than with the next files', and a
worker computes on one thread where one process uses all cores, which can move a score or a
feature by a rounding error: hand-crafted MFCC statistics by up to about 1e-5, as a single
process with ``OMP_NUM_THREADS=1`` does too). ``resume`` and the errors table
work as in one process: a recording already done is not submitted, an unreadable file is an
error row, not a failed task.

A worker loads the model once (:meth:`ModelRef.load`: cached in the worker process, keyed by
the model's path and the digest of the files that say what it is) and checks that it is the
model the client loaded. A worker that dies loses only the files it was working on: the
scheduler gives them to another worker; a task that raises is retried ``retries`` times.

Dask is an optional extra: ``pip install 'earmark[dask]'``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earmark.errors import AudioError, EarmarkError, ParameterError

if TYPE_CHECKING:
    from earmark.data.manifest import Manifest
    from earmark.detection.run import DetectionSummary
    from earmark.detection.windows import Windowing
    from earmark.features.config import FeatureConfig
    from earmark.features.pretrained.embed import Embeddings
    from earmark.features.table import FeatureTable
    from earmark.predict import Prediction, ScoreTrack

__all__ = [
    "INSTALL",
    "Engine",
    "ModelRef",
    "compute_features",
    "detect",
    "embed_files",
    "load_model",
    "model_digest",
    "predict_files",
    "require_dask",
]

#: What installs the optional dependencies of this module.
INSTALL = "pip install 'earmark[dask]'"
#: Times a task that raised is run again before the job stops (a worker that dies is not
#: counted: the scheduler moves its tasks to another worker, up to its allowed-failures).
RETRIES = 2
#: Seconds to wait for a scheduler given by address to answer.
CONNECT_TIMEOUT = 10.0
#: Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns glibc's
#: dynamic mmap threshold off: every array over 128 KiB is then a fresh mmap, faulted in
#: page by page. A worker scanning with it took 1.5-1.9x the time of one process (a one-hour
#: recording, cnn, one thread: 18.3 s against 10.1 s). The local cluster's workers start
#: without it (this setting unset), allocating as one process does; on another cluster,
#: give the workers MALLOC_MMAP_THRESHOLD_=67108864 (as examples/slurm_detect.py does):
#: as fast, measured.
TRIM_SETTING = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


#: The local cluster's address: its scheduler and workers listen on this machine only.
LOCAL_HOST = "127.0.0.1"
#: The module each worker of the local cluster preloads: its :func:`dask_setup` runs in the
#: worker process as the worker starts.
PRELOAD = "earmark.distributed"


def dask_setup(worker: Any) -> None:
    """The local cluster's workers ignore Ctrl-C (called by distributed in each worker
    process, see :data:`PRELOAD`). A terminal sends SIGINT to the whole process group, the
    workers with the client: the client stops the job and closes the cluster (which ends
    the workers), while a worker that took it printed a KeyboardInterrupt traceback."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def require_dask() -> Any:
    """``distributed``, or :class:`EarmarkError` saying how to install it (one line)."""
    try:
        import distributed
    except ImportError:
        raise EarmarkError(
            f"running on Dask workers needs dask.distributed, which is not installed: {INSTALL}"
        ) from None
    return distributed


# -- the engine: where tasks run ---------------------------------------------------------------


class Engine:
    """A Dask client for corpus jobs: ``workers`` single-threaded worker processes of a
    ``LocalCluster`` started here, or the cluster whose scheduler is at ``scheduler``
    (exactly one of them). ``retries``: runs again of a task that raised. Use it as a
    context manager (``with Engine(workers=2) as engine:``); the jobs of this module take
    one through their ``engine`` argument, so several jobs share a cluster."""

    def __init__(
        self,
        workers: int | None = None,
        scheduler: str | None = None,
        *,
        retries: int = RETRIES,
    ) -> None:
        check_engine(workers, scheduler)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ParameterError(f"retries must be a whole number >= 0, got {retries!r}")
        self.workers, self.scheduler, self.retries = workers, scheduler, retries
        self.client: Any = None
        self.cluster: Any = None

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the local cluster, or connect to the scheduler."""
        if self.client is not None:
            return
        distributed = require_dask()
        if self.scheduler is not None:
            check_address(self.scheduler)
            try:
                self.client = distributed.Client(
                    self.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False
                )
            except (OSError, TimeoutError, ValueError) as exc:
                raise EarmarkError(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {_line(exc)}"
                ) from None
            return
        # Worker processes, one thread each: torch and the decoders then use one core per
        # worker (the nanny sets OMP_NUM_THREADS=1), and a worker that dies loses only its
        # own file. No dashboard: it needs bokeh and a port.
        import dask

        # Its workers ignore Ctrl-C (PRELOAD); the scheduler's HTTP server (started even
        # without a dashboard) takes a free port, not 8787: a port in use (another cluster)
        # made distributed print a four-line warning.
        preload = [*dask.config.get("distributed.worker.preload", []), PRELOAD]
        try:
            with dask.config.set({TRIM_SETTING: None}):  # see TRIM_SETTING
                self.cluster = distributed.LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    host=LOCAL_HOST,
                    dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": f"{LOCAL_HOST}:0"},
                    silence_logs=logging.ERROR,
                    preload=preload,
                )
        except (OSError, TimeoutError) as exc:
            raise EarmarkError(f"cannot start a local Dask cluster: {_line(exc)}") from None
        self.client = distributed.Client(self.cluster, set_as_default=False)

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this engine started it."""
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def map(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        *args: Any,
        name: str = "earmark",
    ) -> Iterator[tuple[int, Any]]:
        """``fn(item, *args)`` for every item, one task each; yields ``(k, result)`` as each
        finishes (``k``: the item's position). A task that still fails after ``retries``
        raises :class:`EarmarkError` naming its item; leaving the loop early (an error, a
        Ctrl-C) cancels the tasks not done."""
        if self.client is None:
            self.start()
        distributed = require_dask()
        token = uuid.uuid4().hex[:8]
        futures = {
            self.client.submit(
                fn,
                item,
                *args,
                key=f"earmark-{name}-{token}-{k}",
                retries=self.retries,
                pure=False,
            ): k
            for k, item in enumerate(items)
        }
        try:
            for future in distributed.as_completed(list(futures), loop=self.client.loop):
                k = futures.pop(future)
                try:
                    result = future.result()
                except EarmarkError:
                    raise
                except Exception as exc:
                    raise EarmarkError(_task_failure(items[k], exc, distributed)) from None
                finally:
                    future.release()
                yield k, result
        finally:
            if futures:
                self.client.cancel(list(futures))


def check_engine(workers: int | None, scheduler: str | None) -> None:
    """Refuse a bad choice of engine: both or neither of ``workers`` and ``scheduler``, or
    ``workers`` not a whole number >= 1 (:class:`ParameterError`)."""
    if (workers is None) == (scheduler is None):
        raise ParameterError("give either workers (a local Dask cluster) or a scheduler address")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ParameterError(f"workers must be a whole number >= 1, got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ParameterError(f"scheduler must be an address (tcp://host:8786), got {scheduler!r}")


def check_address(address: str) -> None:
    """Refuse a scheduler address Dask cannot parse (:class:`ParameterError`): a scheme it
    does not know (``http://``), no port or a bad one (``tcp://host``, ``tcp://host:x``), an
    ``inproc://`` address of no scheduler in this process. Checked before a client is made:
    a client that meets such an address raises from inside its start and is left half-open
    (distributed closes it only after a network error), and its finalizer then holds up the
    interpreter's exit for 20 s with a traceback. Needs dask.distributed."""
    from distributed.comm import inproc, registry
    from distributed.comm.addressing import parse_address

    example = "give tcp://host:8786"
    scheme, loc = parse_address(address)
    try:
        backend = registry.get_backend(scheme)
    except ValueError:
        raise ParameterError(
            f"scheduler address {address}: Dask has no {scheme}:// transport "
            f"(it knows {', '.join(sorted(registry.backends))}); {example}"
        ) from None
    if scheme == "inproc":
        try:
            listening = inproc.global_manager.get_listener_for(loc) is not None
        except (ValueError, TypeError):
            listening = False
        if not listening:
            raise ParameterError(
                f"scheduler address {address}: no Dask scheduler in this process there "
                f"(inproc:// reaches only those); {example}"
            )
        return
    try:
        _host, port = backend.get_address_host_port(loc)
    except NotImplementedError:  # a transport without host and port: left to the client
        return
    except ValueError:
        port = None
    if port is None or not 0 < port < 65536:
        raise ParameterError(f"scheduler address {address} has no valid host:port; {example}")


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _task_failure(item: Any, exc: BaseException, distributed: Any) -> str:
    """One line on a task that failed for good: its file (``item``, or its first part)."""
    if isinstance(item, tuple):  # a feature row: (path, span)
        item = item[0]
    if isinstance(exc, distributed.KilledWorker):
        return (
            f"{item}: every Dask worker that ran it died, as often as the scheduler allows "
            "(distributed.scheduler.allowed-failures); see the workers' logs (out of memory?)"
        )
    return f"{item}: failed on a Dask worker: {type(exc).__name__}: {_line(exc)}"


class _UseEngine:
    """The engine a job was given (left running), or one it starts and stops itself."""

    def __init__(
        self, engine: Engine | None, workers: int | None, scheduler: str | None, retries: int
    ) -> None:
        if engine is not None and (workers is not None or scheduler is not None):
            raise ParameterError("give an engine, or workers / a scheduler, not both")
        self.owned = engine is None
        self.engine = Engine(workers, scheduler, retries=retries) if engine is None else engine

    def __enter__(self) -> Engine:
        self.engine.start()
        return self.engine

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.engine.close()


# -- the model on the workers ------------------------------------------------------------------

#: Models loaded in this process, by (path, digest, settings): each worker loads a model once.
_MODELS: OrderedDict[tuple, Any] = OrderedDict()
_MODELS_KEPT = 4
_LOCK = threading.Lock()
#: The files of an artifact that say what the model is: earmark.json lists the SHA-256 of
#: every weight file (checked when it loads), calibration.json holds its calibration.
_IDENTITY_FILES = ("earmark.json", "calibration.json")


def model_digest(path: str | Path) -> str:
    """A digest of what the model at ``path`` is: an ``.onnx`` file's bytes (its settings
    are inside), or an artifact directory's ``earmark.json`` and ``calibration.json`` files,
    its ensemble members' included (``earmark.json`` holds the SHA-256 of each weight file,
    which loading checks). Raises :class:`EarmarkError` when there is no model there."""
    path = Path(path)
    h = hashlib.sha256()
    try:
        if path.is_file():
            with path.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            return h.hexdigest()[:16]
        found = sorted(
            f
            for name in _IDENTITY_FILES
            for f in path.rglob(name)
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
        )
        for f in found:
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    except OSError as exc:
        raise EarmarkError(f"{path}: cannot read the model ({exc.strerror or exc})") from None
    if not found:
        raise EarmarkError(f"{path}: no model there (no earmark.json, not an .onnx file)")
    return h.hexdigest()[:16]


def load_model(
    path: str | Path,
    *,
    calibration: bool = True,
    device: str | None = None,
    pooling: str | None = None,
) -> Any:
    """:func:`earmark.load` the model at ``path``, then (as ``earmark detect`` / ``predict``
    do) run its networks and pretrained frontends on ``device`` (``None``: as loaded) and
    pool long files' window scores by ``pooling`` (``None``: as trained)."""
    from earmark.loading import load

    model = load(path, calibration=calibration)
    for member in getattr(model, "members", [model]):
        family = getattr(member, "family", None)
        pretrained = getattr(getattr(member, "features", None), "pretrained", False)
        if device is not None and (family == "neural" or (family == "classical" and pretrained)):
            member.to(device)
        if pooling is not None:
            member.pooling = pooling
    return model


@dataclass(frozen=True)
class ModelRef:
    """Where workers load a model from (``path``, absolute), what they must find there
    (``digest``, :func:`model_digest`), and how it is set up (:func:`load_model`'s
    ``calibration``, ``device`` and ``pooling``). Plain data: what a task carries instead
    of the model."""

    path: str
    digest: str
    calibration: bool = True
    device: str | None = None
    pooling: str | None = None

    @classmethod
    def of(
        cls,
        path: str | Path,
        *,
        calibration: bool = True,
        device: str | None = None,
        pooling: str | None = None,
    ) -> ModelRef:
        """The reference to the model at ``path``, as this process sees it."""
        if pooling is not None and pooling not in ("mean", "max"):
            raise ParameterError(f"pooling must be mean or max, got {pooling!r}")
        absolute = Path(path).absolute()
        return cls(str(absolute), model_digest(absolute), calibration, device, pooling)

    def load(self) -> Any:
        """The model, loaded once per process (later calls reuse it). Raises
        :class:`EarmarkError` when the model at the path is not the one referred to (a
        worker that does not share the client's files)."""
        key = dataclasses.astuple(self)
        with _LOCK:
            model = _MODELS.get(key)
            if model is not None:
                _MODELS.move_to_end(key)
                return model
            found = model_digest(self.path)
            if found != self.digest:
                import socket

                raise EarmarkError(
                    f"{self.path} on {socket.gethostname()} is not the model the client loaded "
                    f"(digest {found}, not {self.digest}): workers must see the client's files"
                )
            model = load_model(
                self.path, calibration=self.calibration, device=self.device, pooling=self.pooling
            )
            _MODELS[key] = model
            while len(_MODELS) > _MODELS_KEPT:
                _MODELS.popitem(last=False)
            return model


_FRONTENDS: OrderedDict[tuple, Any] = OrderedDict()


def _cached_frontend(key: tuple, build: Callable[[], Any]) -> Any:
    """A feature frontend or embedder built once per process (``key``: its settings)."""
    with _LOCK:
        if key not in _FRONTENDS:
            _FRONTENDS[key] = build()
            while len(_FRONTENDS) > _MODELS_KEPT:
                _FRONTENDS.popitem(last=False)
        _FRONTENDS.move_to_end(key)
        return _FRONTENDS[key]


# -- what the workers run ----------------------------------------------------------------------


def _sent(path: str | Path) -> str:
    """A path as a worker gets it: absolute (workers may run in another folder)."""
    return str(Path(path).absolute())


def _as_given(message: str, sent: str, given: str) -> str:
    """An error message about ``sent`` (the absolute path) as one about ``given``, the path
    the caller gave: what a run in this process would have said."""
    prefix = f"{sent}: "
    return f"{given}: {message[len(prefix) :]}" if message.startswith(prefix) else message


def _worker_threads() -> int:
    """The threads of the Dask worker running this task (1 outside a worker)."""
    try:
        from distributed import get_worker

        return int(get_worker().nthreads)
    except (ImportError, ValueError, AttributeError):
        return 1


def _detect_task(path: str, ref: ModelRef, windowing: dict, batch_size: int) -> Any:
    """On a worker: one recording's score track, or why it cannot be read."""
    from earmark.detection.scores import BLOCK_SECONDS, score_file
    from earmark.detection.windows import Windowing
    from earmark.prefetch import Prefetched

    model = ref.load()
    blocks = None
    if not hasattr(model, "members") and _worker_threads() > 1:
        # decoded in a thread while scored, as in one process; a single-threaded worker (one
        # core, as a LocalCluster's and a batch job's are) decodes inline: a second thread on
        # the same core would only take turns with the scoring
        blocks = Prefetched(model.preprocessing.blocks(Path(path), BLOCK_SECONDS), depth=2)
    try:
        return score_file(
            model, path, Windowing.from_dict(windowing), batch_size=batch_size, blocks=blocks
        )
    except AudioError as exc:
        return str(exc)
    finally:
        if blocks is not None:
            blocks.close()


def _predict_task(path: str, ref: ModelRef, top_k: int, batch_size: int) -> Prediction:
    """On a worker: one file's prediction (with ``error`` set when it cannot be read)."""
    return ref.load().predict_files([path], top_k=top_k, batch_size=batch_size, workers=1)[0]


def _features_task(
    item: tuple[str, tuple[float, float] | None], audio: dict, features: dict, device: str
) -> tuple[Any, str | None]:
    """On a worker: one feature row, or why its file cannot be read."""
    from earmark.audio import AudioConfig
    from earmark.features.config import FeatureConfig
    from earmark.features.table import feature_row

    path, span = item
    a, f = AudioConfig.from_dict(audio), FeatureConfig.from_dict(features)
    frontend = None
    if f.kind != "handcrafted":
        from earmark.features.frontend import build_frontend

        key = ("features", repr(sorted(features.items())), a.sample_rate, device)
        frontend = _cached_frontend(key, lambda: build_frontend(f, a.sample_rate).to(device))
    return feature_row(path, a, f, span, frontend=frontend, device=device)


def _embed_task(
    path: str, frontend: str, windowing: dict, batch_size: int, device: str
) -> tuple[Any, Any, Any] | str:
    """On a worker: one file's window embeddings ``(starts, ends, vectors)``, or why it
    cannot be read."""
    from earmark.detection.windows import Windowing
    from earmark.features.pretrained.embed import embedder
    from earmark.training import resolve_device

    w = Windowing.from_dict(windowing)
    dev = str(resolve_device(device))  # this worker's: auto is its GPU when it has one
    key = ("embed", frontend, float(w.window), dev)
    predictor = _cached_frontend(key, lambda: embedder(frontend, float(w.window), dev))
    try:
        track = predictor.score_track(path, w, batch_size=batch_size)
    except AudioError as exc:
        return str(exc)
    return track.starts, track.ends, track.scores


# -- the jobs ----------------------------------------------------------------------------------


def detect(
    run: str | Path,
    inputs: str | Path | Iterable[str | Path],
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    engine: Engine | None = None,
    retries: int = RETRIES,
    calibration: bool = True,
    device: str = "cpu",
    **options: Any,
) -> DetectionSummary:
    """``earmark detect`` on Dask: find and count events in the recordings of ``inputs``
    with the model at ``run`` (a model directory or ``.onnx`` file), each recording a task,
    the tables written to ``out`` here. Where the tasks run: ``workers`` (a local cluster),
    ``scheduler`` (an address) or a started ``engine``. ``options`` go to
    :func:`earmark.detection.run.detect` (``windowing``, ``rules``, ``settings``,
    ``resume``, ``batch_size``, ``on_file``, ``on_audio``); its result, and the files it
    writes, are those of the run in one process."""
    from earmark.detection.run import detect as run_detect
    from earmark.predict import input_files

    if "decode_ahead" in options:
        raise ParameterError(
            "decode_ahead is for a run in one process: each Dask worker reads its own recording"
        )
    paths = input_files(inputs)
    if not paths:
        raise EarmarkError(f"no audio files in {inputs}")
    ref = ModelRef.of(run, calibration=calibration, device=device)
    model = ref.load()  # here too: the run's settings, record and tables need it
    with _UseEngine(engine, workers, scheduler, retries) as eng:

        def remote(
            todo: Sequence[str], windowing: Windowing, batch_size: int
        ) -> Iterator[tuple[int, ScoreTrack | str]]:
            sent = [_sent(p) for p in todo]
            results = eng.map(
                _detect_task, sent, ref, windowing.to_dict(), batch_size, name="detect"
            )
            for k, result in results:
                if isinstance(result, str):
                    yield k, _as_given(result, sent[k], str(todo[k]))
                else:
                    yield k, dataclasses.replace(result, path=str(todo[k]))

        return run_detect(model, paths, out, remote=remote, **options)


def predict_files(
    run: str | Path,
    inputs: str | Path | Iterable[str | Path],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    engine: Engine | None = None,
    retries: int = RETRIES,
    top_k: int = 3,
    batch_size: int = 256,
    calibration: bool = True,
    device: str | None = None,
    pooling: str | None = None,
    on_file: Callable[[], None] | None = None,
) -> list[Prediction]:
    """``earmark predict`` on Dask: the model at ``run`` classifies each file of ``inputs``
    (files, folders, manifest CSVs), one task per file; the predictions come back in the
    files' order, a file that cannot be read as a :class:`~earmark.predict.Prediction` with
    ``error`` set. ``on_file()`` is called as each is done."""
    from earmark.predict import input_files

    paths = input_files(inputs)
    ref = ModelRef.of(run, calibration=calibration, device=device, pooling=pooling)
    out: list[Prediction | None] = [None] * len(paths)
    with _UseEngine(engine, workers, scheduler, retries) as eng:
        sent = [_sent(p) for p in paths]
        for k, pred in eng.map(_predict_task, sent, ref, top_k, batch_size, name="predict"):
            pred.path = paths[k]
            if pred.error is not None:
                pred.error = _as_given(pred.error, sent[k], paths[k])
            out[k] = pred
            if on_file is not None:
                on_file()
    return [p for p in out if p is not None]


def compute_features(
    manifest: Manifest,
    audio: Any,
    features: FeatureConfig,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    engine: Engine | None = None,
    retries: int = RETRIES,
    device: str = "cpu",
    **options: Any,
) -> FeatureTable:
    """``earmark features`` on Dask: :func:`earmark.features.table.compute_features` (the
    same table, ``options``: ``cache_dir``, ``on_file``) with every row the cache does not
    hold computed by a task, one per file or segment."""
    from earmark.features.table import compute_features as table_features

    with _UseEngine(engine, workers, scheduler, retries) as eng:

        def remote(
            paths: Sequence[str],
            spans: Sequence[tuple[float, float] | None],
            audio: Any,
            features: FeatureConfig,
        ) -> Iterator[tuple[int, Any, str | None]]:
            sent = [_sent(p) for p in paths]
            items = list(zip(sent, spans, strict=True))
            args = (audio.to_dict(), features.to_dict(), device)
            for k, (value, error) in eng.map(_features_task, items, *args, name="features"):
                yield k, value, None if error is None else _as_given(error, sent[k], paths[k])

        return table_features(manifest, audio, features, device=device, remote=remote, **options)


def embed_files(
    inputs: str | Path | Iterable[str | Path],
    frontend: str | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    engine: Engine | None = None,
    retries: int = RETRIES,
    device: str = "auto",
    **options: Any,
) -> Embeddings:
    """``earmark embed`` on Dask: :func:`earmark.features.pretrained.embed.embed_files`
    (the same table; ``options``: ``window``, ``hop``, ``batch_size``, ``on_file``) with
    each file embedded by a task. ``device`` is resolved on each worker (``auto``: its
    GPU when it has one)."""
    from earmark.features import pretrained
    from earmark.features.pretrained.embed import embed_files as embed_here

    frontend = frontend or pretrained.DEFAULT
    with _UseEngine(engine, workers, scheduler, retries) as eng:

        def remote(
            paths: list[str], windowing: Windowing, batch_size: int
        ) -> Iterator[tuple[int, Any]]:
            sent = [_sent(p) for p in paths]
            args = (frontend, windowing.to_dict(), batch_size, device)
            for k, result in eng.map(_embed_task, sent, *args, name="embed"):
                yield k, _as_given(result, sent[k], paths[k]) if isinstance(result, str) else result

        return embed_here(inputs, frontend, device=device, remote=remote, **options)
