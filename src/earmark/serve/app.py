"""The HTTP API over a trained model (FastAPI): predict, detect, model card, health, metrics.

Safety limits (:class:`ServeSettings`), in the order a request meets them:

- who: with ``api_key`` set, everything but the page, ``/healthz`` and ``/readyz`` needs the
  key (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``), else 401;
- the connection: the request's head must arrive within ``header_timeout`` seconds and an
  idle keep-alive connection is closed after ``keep_alive`` (:mod:`earmark.serve.server`);
- the body: over ``max_upload_bytes`` gets 413 (before it is read when ``Content-Length``
  says so); it must arrive within ``body_timeout`` seconds plus one per
  ``body_min_rate`` bytes, else 408 and the connection is dropped
  (:mod:`earmark.serve.guards`); at most ``max_uploads`` bodies are received at once (503
  beyond). Bodies are streamed to a temporary file (memory-backed ``/dev/shm`` while it has
  room, else the disk; 503 when neither can take it), never held whole in memory
  (:mod:`earmark.serve.uploads`);
- the work, admitted once the body is in: ``max_concurrency`` predictions run and
  ``max_queue`` wait; beyond, 503 with ``Retry-After``. A prediction over ``timeout``
  seconds gets 504 and is *stopped* (the model's loops check a cancellation flag between
  blocks and batches: :func:`earmark.predict.cancel_on`); until it has stopped it still holds
  its place in the concurrency limit and its upload;
- the audio: over ``max_duration`` seconds (``max_detect_duration`` for detection) gets
  413; undecodable input 415 (not audio, no audio track, unsupported codec) or 400
  (corrupt), with the reason, never naming a server path; bad query parameters 422.

A client that goes away before its answer is not an error: its upload is removed and the
request is counted as 499 in ``/metrics``, without a traceback. Upload names are never used
as paths. Decoding and the model run in worker threads, so ``/healthz`` answers while
predictions run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the endpoints' annotations
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from earmark import audio as audio_io
from earmark.errors import (
    AudioError,
    DurationLimitError,
    NotAudioError,
    ParameterError,
    UnsupportedCodecError,
)
from earmark.review.store import ReviewStore
from earmark.review.suggestions import Suggestions
from earmark.serve.recordings import Recordings
from earmark.serve.uploads import CONTENT_TYPES, UploadProblem, receive_upload, scrub, spool_dirs

__all__ = ["CONTENT_TYPES", "ServeSettings", "create_app"]

# The page is plain HTML and JavaScript in the package: no build step.
PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ServeSettings:
    """Limits of the server (sizes in bytes, durations in seconds, rates in bytes/s).

    ``api_key``: when set, the key every request but the page and the health probes must
    carry; it is never shown (not in ``repr``, not in the model card's limits)."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_duration: float = 600.0
    timeout: float = 30.0
    max_concurrency: int = 8
    max_queue: int = 16
    top_k: int = 5
    max_detect_duration: float = 4 * 3600.0
    batch_wait: float = 0.005  # longest wait (s) for requests still decoding to batch with
    batch_max_windows: int = 64
    upload_dir: str | None = None  # where uploads are written; None: /dev/shm, then disk
    max_uploads: int = 32  # bodies received at once (slow ones included)
    header_timeout: float = 10.0  # from connecting (or the last answer) to a request's head
    keep_alive: float = 5.0  # an idle keep-alive connection is closed after this
    body_timeout: float = 20.0  # for the body, plus a second per body_min_rate bytes
    body_min_rate: float = 64 * 1024
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_concurrency", "max_uploads", "batch_max_windows"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_queue < 0 or self.top_k < 1:
            raise ParameterError("max_queue must be >= 0 and top_k >= 1")
        for name in (
            "max_duration",
            "timeout",
            "max_detect_duration",
            "header_timeout",
            "keep_alive",
            "body_timeout",
            "body_min_rate",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ParameterError(f"{name} must be a finite number > 0, got {value!r}")
        if not (math.isfinite(self.batch_wait) and self.batch_wait >= 0):
            raise ParameterError(f"batch_wait must be >= 0, got {self.batch_wait!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ParameterError("api_key must not be empty (leave it unset for no key)")

    def limits(self) -> dict[str, Any]:
        """The settings a client may see (everything but the key)."""
        out = dataclasses.asdict(self)
        out.pop("api_key")
        out.pop("upload_dir")
        return out


def _busy(detail: str, retry_after: int = 1) -> JSONResponse:
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(retry_after)}
    )


def create_app(
    model: Any,
    settings: ServeSettings | None = None,
    *,
    name: str = "",
    recordings: Recordings | None = None,
    reviews: ReviewStore | None = None,
    suggestions: Suggestions | None = None,
    model_sha256: str | None = None,
    index: Any = None,
) -> Any:
    """The FastAPI app serving ``model`` (a loaded :class:`earmark.Classifier`, ensemble or
    ONNX model) with ``settings``. Run it with :func:`earmark.serve.run` (or
    :func:`earmark.serve.server_config`): plain uvicorn lacks the head deadline.

    ``recordings``: the audio ``GET /v1/audio/{id}`` plays back (:class:`Recordings`); when
    it keeps uploads, each analysed upload is kept and its answer carries ``recording``, the
    id a review of it points at.

    ``reviews``: the :class:`~earmark.review.store.ReviewStore` ``/v1/reviews`` writes to
    (``None``: reviews are off, 404); ``suggestions``: the windows ``/v1/suggestions`` walks
    through (:func:`earmark.review.suggestions.load_suggestions`); ``model_sha256``: the
    artifact's SHA-256 each review records (:func:`earmark.review.store.artifact_sha256`;
    default: a digest of the model's identity). See :mod:`earmark.serve.reviews_api`.

    ``index``: a similarity index (:class:`earmark.review.index.SearchIndex`) that ``POST
    /v1/search`` queries; its files are registered in ``recordings`` so hits are playable."""
    from fastapi import FastAPI, Query
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    import earmark
    from earmark.predict import cancel_on
    from earmark.serve.guards import ApiKeyGuard, BodyGuard, Metrics

    settings = settings or ServeSettings()
    recordings = recordings if recordings is not None else Recordings()
    registry = CollectorRegistry()
    requests = Counter(
        "earmark_requests", "HTTP requests", ["endpoint", "status"], registry=registry
    )
    latency = Histogram(
        "earmark_request_seconds",
        "Request latency (s)",
        ["endpoint"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )
    errors = Counter(
        "earmark_errors", "Requests answered with an error", ["status"], registry=registry
    )
    depth = Gauge("earmark_queue_depth", "Predictions running or waiting", registry=registry)
    receiving = Gauge("earmark_uploads_receiving", "Uploads being received", registry=registry)
    stopping = Gauge(
        "earmark_timed_out_running", "Timed-out predictions not yet stopped", registry=registry
    )
    gate = asyncio.Semaphore(settings.max_concurrency)
    # pending: admitted (running, waiting, or timed out and still stopping); decoding: in the
    # batched path's decode step; receiving: bodies being read; stopping: timed out, running
    state = {"pending": 0, "decoding": 0, "receiving": 0, "stopping": 0}
    # Every admitted prediction holds a gate slot while its thread runs: this many suffice.
    executor = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="earmark-work")
    dirs = spool_dirs(settings.upload_dir)
    batcher = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        if batcher is not None:
            await batcher.close()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="earmark",
        version=earmark.__version__,
        description="Audio classification with a trained earmark model.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.load = state
    app.state.recordings = recordings
    app.state.index = index
    indexed: dict[str, str] = {}  # an indexed file's path -> its recording id
    if index is not None:
        index.prepare_queries()  # the frontend's weights checked against the index's now
        indexed = {path: recordings.add_file(path, root) for path, root in index.roots().items()}

    def observe(endpoint: str, status: int, seconds: float) -> None:
        requests.labels(endpoint, str(status)).inc()
        latency.labels(endpoint).observe(seconds)
        if status >= 400:
            errors.labels(str(status)).inc()

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        """The web page: drop or record audio, hear it, see it, and see the predictions."""
        return HTMLResponse(PAGE)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> dict[str, Any]:
        if settings.api_key:  # open to probes: it names nothing then
            return {"status": "ready"}
        return {"status": "ready", "model": getattr(model, "model", name)}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            generate_latest(registry).decode(), media_type="text/plain; version=0.0.4"
        )

    @app.get("/v1/model")
    async def model_card() -> dict[str, Any]:
        audio = getattr(model, "audio", None)
        features = getattr(model, "features", None)
        return {
            "name": name or str(getattr(model, "model", "")),
            "model": getattr(model, "model", ""),
            "earmark_version": earmark.__version__,
            "classes": list(model.classes_),
            "clip_seconds": getattr(model, "clip_seconds_", None),
            "audio": audio.to_dict() if audio is not None else None,
            "features": features.to_dict() if features is not None else None,
            "metrics": getattr(model, "metrics_", {}),
            "multi_label": bool(getattr(model, "multi_label_", False)),
            "thresholds": getattr(model, "thresholds_", None),
            "limits": settings.limits(),
            "reviews": reviews is not None,
            "search": index is not None,
            "suggestions": len(suggestions) if suggestions is not None else 0,
        }

    # Classifiers (torch or ONNX) expose their window scoring: requests are batched then.
    # Ensembles score each request on its own.
    predictor = getattr(model, "predictor", None)
    if settings.batch_wait > 0 and predictor is not None:
        from earmark.serve.batching import Batcher

        batcher = Batcher(
            predictor.score_windows,
            wait=settings.batch_wait,
            max_windows=settings.batch_max_windows,
            incoming=lambda: state["decoding"],
        )
        app.state.batcher = batcher

    async def in_thread(cancel: threading.Event, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, under ``cancel_on(cancel)``. A thread cannot be
        interrupted: when this is cancelled it still waits for ``fn`` to notice ``cancel``
        (at its next check) and return, so whoever awaits it holds its slot until then."""

        def job() -> Any:
            with cancel_on(cancel):
                return fn(*args)

        future = asyncio.get_running_loop().run_in_executor(executor, job)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait({future})
            if not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning
            raise

    def _check_duration(path: Path, limit: float) -> None:
        info = audio_io.info(path)
        if info.duration > limit:
            raise DurationLimitError(
                path, f"{info.duration:.1f} s of audio is over the limit of {limit:.1f} s"
            )

    def _decode(path: Path) -> tuple[float, list[Any], list[float]]:
        # the duration cap is checked by the loader itself (one probe of the file, not two)
        y = predictor.preprocessing.read(path, max_duration=settings.max_duration)
        segments, starts = predictor.windows(y)
        return y.shape[1] / predictor.preprocessing.sample_rate, segments, starts

    async def _predict_batched(path: Path, cancel: threading.Event) -> dict[str, Any]:
        # Counted while it decodes (inside the concurrency gate: a request waiting at the
        # gate cannot join before a batch ends): a batching window waits only for these.
        state["decoding"] += 1
        try:
            duration, segments, starts = await in_thread(cancel, _decode, path)
        finally:
            state["decoding"] -= 1  # no await between this and the windows being queued
        scores = await batcher.score(segments)  # type: ignore[union-attr]
        pred = predictor.pooled("", duration, starts, scores, settings.top_k)
        out = pred.to_dict(windows=len(starts) > 1)
        out.pop("path", None)
        return out

    def _predict(path: Path) -> dict[str, Any]:
        _check_duration(path, settings.max_duration)
        pred = model.predict_file(path, top_k=settings.top_k)
        out = pred.to_dict(windows=len(pred.window_starts) > 1)
        out.pop("path", None)
        return out

    def _error(exc: Exception, path: Path | None) -> JSONResponse | None:
        """The answer to an error of the upload or its audio (``None``: not one of those)."""
        if isinstance(exc, UploadProblem):
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)
        if isinstance(exc, DurationLimitError):
            status = 413
        elif isinstance(exc, (NotAudioError, UnsupportedCodecError)):
            status = 415
        elif isinstance(exc, AudioError):
            status = 400
        elif isinstance(exc, ParameterError):
            status = 422
        else:
            return None
        detail = exc.problem if isinstance(exc, AudioError) else str(exc)
        return JSONResponse({"detail": scrub(detail, path)}, status_code=status)

    async def _run(
        request: Request,
        work: Callable[[Path, threading.Event], Awaitable[dict[str, Any]]],
        keep: bool = True,
    ) -> JSONResponse:
        """The upload to a temporary file (at most ``max_uploads`` at once), then admission
        (503 beyond concurrency + queue), ``work(path, cancel)`` within the timeout, errors
        to status codes. On a timeout the work is cancelled; its slot and its file are let go
        when it has stopped."""
        if state["receiving"] >= settings.max_uploads:
            return _busy("busy: too many uploads being received")
        state["receiving"] += 1
        receiving.set(state["receiving"])
        try:
            path = await receive_upload(request, dirs)
        except UploadProblem as exc:
            return _error(exc, None)  # type: ignore[return-value]
        finally:
            state["receiving"] -= 1
            receiving.set(state["receiving"])

        if state["pending"] >= settings.max_concurrency + settings.max_queue:
            with contextlib.suppress(OSError):
                path.unlink()
            return _busy("busy: too many predictions running or waiting")
        state["pending"] += 1
        depth.set(state["pending"])
        holds_gate = False

        def release(*_: Any) -> None:
            if holds_gate:
                gate.release()
            state["pending"] -= 1
            depth.set(state["pending"])
            with contextlib.suppress(OSError):
                path.unlink()

        task: asyncio.Task | None = None
        try:
            await gate.acquire()
            holds_gate = True
            cancel = threading.Event()
            task = asyncio.ensure_future(work(path, cancel))
            done, _ = await asyncio.wait({task}, timeout=settings.timeout)
            if not done:
                raise TimeoutError
            result = task.result()
        except (TimeoutError, asyncio.CancelledError) as exc:
            if task is None or task.done():
                release()
            else:  # stop it; the slot and the file stay taken until it has
                cancel.set()
                task.cancel()
                state["stopping"] += 1
                stopping.set(state["stopping"])

                def stopped(t: asyncio.Task) -> None:
                    if not t.cancelled():
                        t.exception()
                    state["stopping"] -= 1
                    stopping.set(state["stopping"])
                    release()

                task.add_done_callback(stopped)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return JSONResponse(
                {"detail": f"prediction took over {settings.timeout} s"}, status_code=504
            )
        except Exception as exc:
            release()
            answer = _error(exc, path)
            if answer is None:
                raise
            return answer
        if keep and recordings.keep_dir is not None:
            try:
                result["recording"] = await asyncio.to_thread(recordings.keep, path, path.suffix)
            except OSError as exc:  # the answer still stands; the upload is just not kept
                result["recording"] = None
                result["recording_error"] = f"the upload could not be kept: {exc.strerror}"
        release()
        result["model"] = {
            "name": name or str(getattr(model, "model", "")),
            "version": earmark.__version__,
        }
        return JSONResponse(result)

    @app.post("/v1/predict")
    async def predict(request: Request) -> JSONResponse:
        """Top-k labels of an uploaded clip (multipart field ``file``, or a raw audio body);
        long audio is windowed and its window scores returned too."""
        if batcher is None:

            async def work(path: Path, cancel: threading.Event) -> dict[str, Any]:
                return await in_thread(cancel, _predict, path)

            return await _run(request, work)
        return await _run(request, _predict_batched)

    @app.get("/v1/audio/{rid}")
    async def audio_span(
        rid: str,
        start_s: float = Query(0.0, ge=0, allow_inf_nan=False),
        end_s: float | None = Query(None, gt=0, allow_inf_nan=False),
    ) -> Response:
        """A span of a recording the server knows (a kept upload, an index's or a suggestion
        list's file) as WAV, for the page to play: 404 for an unknown id, 422 for a span
        with no audio or over a minute."""
        try:
            data = await asyncio.to_thread(recordings.snippet, rid, start_s, end_s)
        except KeyError:
            return JSONResponse({"detail": "no such recording"}, status_code=404)
        except ParameterError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        except AudioError as exc:
            return JSONResponse({"detail": exc.problem}, status_code=410)
        return Response(data, media_type="audio/wav")

    @app.post("/v1/search")
    async def search(request: Request, k: int = Query(10, ge=1, le=1000)) -> JSONResponse:
        """The ``k`` windows of the index nearest to an uploaded query clip (multipart field
        ``file``, or a raw audio body), nearest first: items (``source: search``) with
        ``distance`` (cosine) and ``rank``, playable at their ``audio_url``; 404 when the
        server has no index (``earmark serve --index DIR``)."""
        if index is None:
            return JSONResponse(
                {"detail": "this server has no search index (start it with --index DIR)"},
                status_code=404,
            )

        def find(path: Path) -> dict[str, Any]:
            result = index.search_file(path, k=k, max_duration=settings.max_duration)
            hits = []
            for hit in result.hits:
                rid = indexed[hit.file]
                span = f"start_s={hit.start_s:.3f}&end_s={hit.end_s:.3f}"
                hits.append(
                    {
                        "recording": rid,
                        "name": recordings.name(rid),
                        "start_s": round(hit.start_s, 3),
                        "end_s": round(hit.end_s, 3),
                        "label": None,
                        "score": None,
                        "source": "search",
                        "audio_url": f"/v1/audio/{rid}?{span}",
                        "distance": round(hit.distance, 6),
                        "rank": hit.rank,
                    }
                )
            return {"hits": hits, "took_ms": round(result.took_ms, 3)}

        async def work(path: Path, cancel: threading.Event) -> dict[str, Any]:
            return await in_thread(cancel, find, path)

        return await _run(request, work, keep=False)

    longest = settings.max_detect_duration

    @app.post("/v1/detect")
    async def detect(
        request: Request,
        window: float | None = Query(None, gt=0, le=longest, allow_inf_nan=False),
        hop: float | None = Query(None, gt=0, le=longest, allow_inf_nan=False),
        threshold: float | None = Query(None, ge=0, le=1, allow_inf_nan=False),
        background: list[str] | None = Query(default=None),
        merge_gap: float = Query(0.0, ge=0, le=longest, allow_inf_nan=False),
        min_duration: float = Query(0.0, ge=0, le=longest, allow_inf_nan=False),
    ) -> JSONResponse:
        """Events in an uploaded recording (as ``earmark detect``): ``events`` (start_s,
        end_s, label, score), ``counts`` per label, and the score track (window starts and
        scores per class). ``window`` and ``hop`` (s) must be finite, > 0 and at most
        ``max_detect_duration``; ``threshold`` in [0, 1] (default: the model's calibrated
        per-class thresholds when its run has them, else 0.5); ``merge_gap`` and
        ``min_duration`` finite and >= 0 (else 422)."""
        from earmark.detection import Windowing, score_file
        from earmark.detection.events import EventRules, count_events, find_events

        try:
            windowing = Windowing(window=window, hop=hop)
            calibrated = getattr(model, "thresholds_", None)
            rules = EventRules(
                threshold=0.5 if threshold is None else threshold,
                thresholds=dict(calibrated) if calibrated and threshold is None else {},
                background=tuple(background or ()),
                merge_gap=merge_gap,
                min_duration=min_duration,
            )
            rules.check_classes(list(model.classes_))
        except ParameterError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)

        def detect_file(path: Path) -> dict[str, Any]:
            _check_duration(path, settings.max_detect_duration)
            track = score_file(model, path, windowing)
            events = find_events(track, rules)
            labels = [c for c in track.classes if c not in rules.background]
            counts = {r["label"]: r["n"] for r in count_events(events, [track.path], labels)}
            return {
                "duration_s": round(track.duration, 3),
                "events": [{k: v for k, v in ev.to_dict().items() if k != "file"} for ev in events],
                "counts": counts,
                "classes": track.classes,
                "window_starts_s": [round(float(t), 3) for t in track.starts],
                "window_scores": [[round(float(v), 5) for v in row] for row in track.scores],
            }

        async def work(path: Path, cancel: threading.Event) -> dict[str, Any]:
            return await in_thread(cancel, detect_file, path)

        return await _run(request, work)

    from earmark.serve.reviews_api import add_review_routes

    add_review_routes(
        app,
        model,
        name=name,
        recordings=recordings,
        reviews=reviews,
        suggestions=suggestions,
        model_sha256=model_sha256,
    )

    endpoints = frozenset(r.path for r in app.routes if hasattr(r, "path"))
    # Added innermost first: Metrics sees every answer (401, 408, 413 included), the key is
    # checked before any body is read.
    if settings.api_key:
        app.add_middleware(ApiKeyGuard, key=settings.api_key)
    app.add_middleware(
        BodyGuard,
        limit=settings.max_upload_bytes,
        timeout=settings.body_timeout,
        min_rate=settings.body_min_rate,
    )
    app.add_middleware(Metrics, observe=observe, endpoints=endpoints)
    return app
