"""The HTTP API over a trained model (FastAPI): predict, model card, health, metrics.

Safety limits (:class:`ServeSettings`): uploads over ``max_upload_bytes`` get 413 before the
body is read (from ``Content-Length``, or as soon as a chunked body passes the limit); audio
over ``max_duration`` seconds gets 413; more than ``max_concurrency`` predictions running and
``max_queue`` waiting gets 503 with ``Retry-After`` (the queue is never unbounded); a
prediction over ``timeout`` seconds gets 504; undecodable input gets 415 (not audio, no
audio track, unsupported codec) or 400 (corrupt) with the reason. Upload names are never
used as paths: the body goes to a temporary file with a generated name (only a known audio
extension is kept, for the decoder), removed in every case. Decoding and the model run in
worker threads, so ``/healthz`` answers while predictions run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the endpoints' annotations
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from earmark import audio as audio_io
from earmark.errors import (
    AudioError,
    DurationLimitError,
    NotAudioError,
    ParameterError,
    UnsupportedCodecError,
)

__all__ = ["ServeSettings", "create_app"]

# The page is plain HTML and JavaScript in the package: no build step.
PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")

CONTENT_TYPES = {  # raw-body content types -> the extension the decoder is told
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/flac": ".flac",
    "audio/x-flac": ".flac", "audio/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
    "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac", "audio/webm": ".webm",
    "video/mp4": ".mp4", "video/webm": ".webm", "application/octet-stream": "",
}  # fmt: skip


@dataclass(frozen=True)
class ServeSettings:
    """Limits of the server (sizes in bytes, durations in seconds)."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_duration: float = 600.0
    timeout: float = 30.0
    max_concurrency: int = 8
    max_queue: int = 16
    top_k: int = 5
    max_detect_duration: float = 4 * 3600.0
    batch_wait: float = 0.005  # longest wait (s) for requests still decoding to batch with
    batch_max_windows: int = 64
    upload_dir: str | None = None  # where uploads are written; None: /dev/shm if usable


def _memory_tmp() -> str | None:
    """``/dev/shm`` when it is a writable folder (Linux tmpfs), else the system default."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


class _TooLarge(Exception):
    pass


class _BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, before the app reads it all."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _reject(send, 413, f"upload over the limit of {self.limit} bytes")
        seen = 0
        started = False

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except _TooLarge:
            if not started:
                await _reject(send, 413, f"upload over the limit of {self.limit} bytes")


class _Metrics:
    """ASGI middleware: ``observe(endpoint, status, seconds)`` for every HTTP request.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs each request through extra streams and a task group, which costs time on every
    request. Paths that are not the app's endpoints are counted as ``other`` (a client must
    not be able to grow the metrics without bound)."""

    def __init__(self, app: Any, observe: Any, endpoints: frozenset[str]) -> None:
        self.app, self.observe, self.endpoints = app, observe, endpoints

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def tracked(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            path = scope["path"] if scope["path"] in self.endpoints else "other"
            self.observe(path, status, time.perf_counter() - t0)


async def _reject(send: Any, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _suffix(filename: str | None, content_type: str | None) -> str:
    """The temporary file's extension: a known audio extension of the upload's name, else
    one for its content type; never anything else from the client."""
    ext = Path(filename or "").suffix.lower()
    if ext in audio_io.AUDIO_EXTENSIONS:
        return ext
    return CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower(), "")


def create_app(model: Any, settings: ServeSettings | None = None, *, name: str = "") -> Any:
    """The FastAPI app serving ``model`` (a loaded :class:`earmark.Classifier`, ensemble or
    ONNX model) with ``settings``."""
    from fastapi import FastAPI, HTTPException, Query
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.concurrency import run_in_threadpool

    import earmark

    settings = settings or ServeSettings()
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
    gate = asyncio.Semaphore(settings.max_concurrency)
    state = {"pending": 0, "decoding": 0}

    app = FastAPI(
        title="earmark",
        version=earmark.__version__,
        description="Audio classification with a trained earmark model.",
    )
    app.add_middleware(_BodyLimit, limit=settings.max_upload_bytes)

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
            "limits": settings.__dict__,
        }

    # Uploads live for milliseconds: kept in memory (tmpfs) where the system has it, so
    # they never reach a disk (on this project's machine it made no measurable difference
    # to latency; the tails there come from elsewhere).
    upload_dir = settings.upload_dir or _memory_tmp()

    async def _body_to_file(request: Request) -> Path:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(400, "send the audio as the multipart field 'file'")
            suffix = _suffix(upload.filename, upload.content_type)
            data = await upload.read()
        else:
            if content_type.split(";")[0].strip().lower() not in CONTENT_TYPES:
                raise HTTPException(
                    415,
                    f"unsupported content type {content_type!r}: send "
                    "audio/* or video/* as the body, or a multipart upload",
                )
            suffix = _suffix(None, content_type)
            data = await request.body()
        if not data:
            raise HTTPException(400, "the upload is empty")
        fd, tmp = tempfile.mkstemp(prefix="earmark-upload-", suffix=suffix, dir=upload_dir)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return Path(tmp)

    # Classifiers (torch or ONNX) expose their window scoring: requests are batched then.
    # Ensembles score each request on its own.
    predictor = getattr(model, "predictor", None)
    batcher = None
    if settings.batch_wait > 0 and predictor is not None:
        from earmark.serve.batching import Batcher

        batcher = Batcher(
            predictor.score_windows,
            wait=settings.batch_wait,
            max_windows=settings.batch_max_windows,
            incoming=lambda: state["decoding"],
        )
        app.state.batcher = batcher

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

    async def _predict_batched(path: Path) -> dict[str, Any]:
        # Counted while it decodes (inside the concurrency gate: a request waiting at the
        # gate cannot join before a batch ends): a batching window waits only for these.
        state["decoding"] += 1
        try:
            duration, segments, starts = await run_in_threadpool(_decode, path)
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

    async def _run(request: Request, work: Any) -> JSONResponse:
        """Admission (503 beyond concurrency + queue), the upload to a temporary file,
        ``work(path)`` in a worker thread within the timeout, errors to status codes, and the
        temporary file removed whatever happens."""
        if state["pending"] >= settings.max_concurrency + settings.max_queue:
            return JSONResponse(
                {"detail": "busy: too many predictions running or waiting"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        state["pending"] += 1
        depth.set(state["pending"])
        path: Path | None = None
        try:
            path = await _body_to_file(request)
            async with gate:
                result = await asyncio.wait_for(work(path), settings.timeout)
        except TimeoutError:
            return JSONResponse(
                {"detail": f"prediction took over {settings.timeout} s"}, status_code=504
            )
        except DurationLimitError as exc:
            return JSONResponse({"detail": exc.problem}, status_code=413)
        except (NotAudioError, UnsupportedCodecError) as exc:
            return JSONResponse({"detail": exc.problem}, status_code=415)
        except AudioError as exc:
            return JSONResponse({"detail": exc.problem}, status_code=400)
        except ParameterError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        finally:
            state["pending"] -= 1
            depth.set(state["pending"])
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()
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
            return await _run(request, lambda path: run_in_threadpool(_predict, path))
        return await _run(request, _predict_batched)

    @app.post("/v1/detect")
    async def detect(
        request: Request,
        window: float | None = None,
        hop: float | None = None,
        threshold: float = 0.5,
        background: list[str] | None = Query(default=None),
        merge_gap: float = 0.0,
        min_duration: float = 0.0,
    ) -> JSONResponse:
        """Events in an uploaded recording (as ``earmark detect``): ``events`` (start_s,
        end_s, label, score), ``counts`` per label, and the score track (window starts and
        scores per class)."""
        from earmark.detection import Windowing, score_file
        from earmark.detection.events import EventRules, count_events, find_events

        try:
            windowing = Windowing(window=window, hop=hop)
            rules = EventRules(
                threshold=threshold,
                background=tuple(background or ()),
                merge_gap=merge_gap,
                min_duration=min_duration,
            )
            rules.check_classes(list(model.classes_))
        except ParameterError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)

        def work(path: Path) -> dict[str, Any]:
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

        return await _run(request, lambda path: run_in_threadpool(work, path))

    endpoints = frozenset(r.path for r in app.routes if hasattr(r, "path"))
    app.add_middleware(_Metrics, observe=observe, endpoints=endpoints)  # outermost: sees 413s
    return app
