"""The review endpoints of the server: ``/v1/reviews`` and ``/v1/suggestions``.

- ``POST /v1/reviews``: a JSON item (``recording``, ``start_s``, ``end_s``, ``label``,
  ``score``, ``source``) with ``verdict`` (``correct`` / ``wrong`` / ``relabel``),
  ``new_label`` (relabel), ``reviewer`` and, optionally, ``settings`` (what the client asked
  the model with: window, hop, threshold...). The server adds the model's name and artifact
  SHA-256, whether it scores calibrated (and its calibrated thresholds), and the time;
  201 ``{"review": {...}}``. 422 for a bad verdict, a relabel without ``new_label``, a bad
  span or a recording id the server does not know; 410 when the recording can no longer be
  read.
- ``GET /v1/reviews?recording=&source=&verdict=&latest=&limit=50&offset=0``:
  ``{"reviews": [...], "total": n}``, newest first (``latest=true``: only the review that
  counts for each item).
- ``DELETE /v1/reviews/{id}``: 204 (undo), 404 when there is no such review.
- ``GET /v1/suggestions?offset=0&limit=20``: the windows of the suggestion list the server
  was started with, as items with their ``uncertainty``, in order; one already reviewed
  carries the review that counts for its span as ``review``. 404 when there is none.

Every review endpoint answers 404 when the server keeps no reviews. The database is written
and read in worker threads (:func:`asyncio.to_thread`): the event loop never waits for
SQLite. Errors are ``{"detail": "one line"}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from earmark import audio as audio_io
from earmark.errors import AudioError, EarmarkError, ParameterError
from earmark.review.store import SOURCES, TIME_DIGITS, Review, ReviewStore
from earmark.review.suggestions import Suggestions
from earmark.serve.recordings import Recordings

__all__ = ["add_review_routes", "audio_url", "identity_sha256"]

#: Largest review body (bytes): an item, a verdict and a small settings record.
MAX_BODY = 64 * 1024
MAX_LIMIT = 500


def audio_url(rid: str, start_s: float, end_s: float) -> str:
    """Where the page plays a span of a recording (``GET /v1/audio/{id}``)."""
    return f"/v1/audio/{rid}?" + urlencode({"start_s": f"{start_s:g}", "end_s": f"{end_s:g}"})


def identity_sha256(model: Any) -> str:
    """A SHA-256 naming ``model`` when its artifact file is not known (a model built in
    Python): of its identity (:func:`earmark.detection.run.model_identity`: name,
    parameters, classes, settings, training record)."""
    from earmark.detection.run import model_identity

    text = json.dumps(model_identity(model), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _detail(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _int(params: Any, name: str, default: int, low: int, high: int | None) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ParameterError(f"{name} must be a whole number, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise ParameterError(
            f"{name} must be {low} or more"
            + (f" and at most {high}" if high else "")
            + f", got {value}"
        )
    return value


def _bool(params: Any, name: str) -> bool:
    text = (params.get(name) or "false").strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ParameterError(f"{name} must be true or false, got {text!r}")
    return text in ("true", "1", "yes")


def add_review_routes(
    app: Any,
    model: Any,
    *,
    name: str,
    recordings: Recordings,
    reviews: ReviewStore | None,
    suggestions: Suggestions | None,
    model_sha256: str | None = None,
) -> None:
    """Add the review and suggestion endpoints (see the module doc) to ``app``. The files of
    ``suggestions`` are registered in ``recordings`` (ids the page plays and reviews)."""
    app.state.reviews = reviews
    app.state.suggestions = suggestions
    model_name = name or str(getattr(model, "model", ""))
    digests: list[str] = [model_sha256] if model_sha256 else []

    def digest() -> str:
        """The model's SHA-256 (a digest of its identity computed at the first review when
        the artifact's is not given)."""
        if not digests:
            digests.append(identity_sha256(model))
        return digests[0]

    calibrated = getattr(model, "calibration_", None) is not None
    thresholds = getattr(model, "thresholds_", None)
    server_settings = {
        "calibrated": calibrated,
        "calibrated_thresholds": dict(thresholds) if thresholds else None,
    }
    queue: list[tuple[str, Any]] = []
    if suggestions is not None:
        queue = [(recordings.add_file(s.path, suggestions.root), s) for s in suggestions.items]
    off = "reviews are off (start the server with --reviews DB)"

    def public(review: Review) -> dict[str, Any]:
        out = review.to_dict()
        out["audio_url"] = audio_url(review.recording, review.start_s, review.end_s)
        return out

    @app.post("/v1/reviews", status_code=201)
    async def add_review(request: Request) -> JSONResponse:
        """Store a review of an item (see :mod:`earmark.serve.reviews_api`)."""
        if reviews is None:
            return _detail(404, off)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _detail(413, f"a review is at most {MAX_BODY // 1024} KiB of JSON")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _detail(422, "the body must be a JSON object (an item and its verdict)")
        if not isinstance(body, dict):
            return _detail(422, "the body must be a JSON object (an item and its verdict)")
        rid = body.get("recording")
        if not (isinstance(rid, str) and rid in recordings):
            return _detail(422, f"unknown recording id {rid!r}")
        if "source" not in body:
            return _detail(422, f"source is required (one of {', '.join(SOURCES)})")
        client = body.get("settings") or {}
        if not isinstance(client, dict):
            return _detail(422, "settings must be a JSON object")
        try:
            review = Review(
                recording=rid,
                path=str(recordings.path(rid)),
                name=recordings.name(rid),
                start_s=body.get("start_s"),  # type: ignore[arg-type]
                end_s=body.get("end_s"),  # type: ignore[arg-type]
                label=body.get("label"),
                verdict=body.get("verdict"),  # type: ignore[arg-type]
                new_label=body.get("new_label"),
                score=body.get("score"),
                source=body["source"],
                reviewer=body.get("reviewer"),
                model=model_name,
                model_sha256=digest(),
                settings={**client, **server_settings},
            ).checked()
        except ParameterError as exc:
            return _detail(422, str(exc))

        def store() -> Review:
            duration = audio_io.info(review.path).duration
            if review.start_s >= duration:
                raise ParameterError(
                    f"start_s {review.start_s:g} is past the end of the recording "
                    f"({duration:.3f} s)"
                )
            return reviews.add(review)

        try:
            stored = await asyncio.to_thread(store)
        except ParameterError as exc:
            return _detail(422, str(exc))
        except AudioError as exc:
            return _detail(410, f"the recording can no longer be read: {exc.problem}")
        except EarmarkError as exc:
            return _detail(503, f"the review could not be stored: {exc}")
        return JSONResponse({"review": public(stored)}, status_code=201)

    @app.get("/v1/reviews")
    async def list_reviews(request: Request) -> JSONResponse:
        """Reviews, newest first, filtered and paged (see the module doc)."""
        if reviews is None:
            return _detail(404, off)
        params = request.query_params
        try:
            limit = _int(params, "limit", 50, 1, MAX_LIMIT)
            offset = _int(params, "offset", 0, 0, None)
            latest = _bool(params, "latest")
            rows, total = await asyncio.to_thread(
                reviews.list,
                recording=params.get("recording") or None,
                source=params.get("source") or None,
                verdict=params.get("verdict") or None,
                latest=latest,
                limit=limit,
                offset=offset,
            )
        except ParameterError as exc:
            return _detail(422, str(exc))
        except EarmarkError as exc:
            return _detail(503, f"the reviews could not be read: {exc}")
        return JSONResponse({"reviews": [public(r) for r in rows], "total": total})

    @app.delete("/v1/reviews/{review_id}", status_code=204)
    async def delete_review(review_id: str) -> Response:
        """Remove a review (undo): 204, or 404 when there is no such review."""
        if reviews is None:
            return _detail(404, off)
        if not review_id.isdigit():
            return _detail(404, "no such review")
        try:
            gone = await asyncio.to_thread(reviews.delete, int(review_id))
        except EarmarkError as exc:
            return _detail(503, f"the review could not be removed: {exc}")
        if not gone:
            return _detail(404, "no such review")
        return Response(status_code=204)

    @app.get("/v1/suggestions")
    async def list_suggestions(request: Request) -> JSONResponse:
        """The windows to review next, in order (see the module doc)."""
        if not queue:
            return _detail(404, "no suggestions (start the server with --suggestions FILE)")
        params = request.query_params
        try:
            offset = _int(params, "offset", 0, 0, None)
            limit = _int(params, "limit", 20, 1, MAX_LIMIT)
        except ParameterError as exc:
            return _detail(422, str(exc))
        page = queue[offset : offset + limit]

        def reviewed() -> dict[tuple[str, float, float], Review]:
            # The review that counts for a window's span, whatever label it was given.
            found: dict[tuple[str, float, float], Review] = {}
            for rid in dict.fromkeys(r for r, _ in page):
                for rev in reviews.latest(recording=rid):  # type: ignore[union-attr]
                    key = (rid, rev.start_s, rev.end_s)
                    if key not in found or (rev.id or 0) > (found[key].id or 0):
                        found[key] = rev
            return found

        try:
            done = await asyncio.to_thread(reviewed) if reviews is not None else {}
        except EarmarkError as exc:
            return _detail(503, f"the reviews could not be read: {exc}")
        items = []
        for rid, s in page:
            item: dict[str, Any] = {
                "recording": rid,
                "name": recordings.name(rid),
                "start_s": s.start_s,
                "end_s": s.end_s,
                "label": s.label,
                "score": s.score,
                "source": "suggestion",
                "audio_url": audio_url(rid, s.start_s, s.end_s),
                "uncertainty": s.uncertainty,
            }
            key = (rid, round(s.start_s, TIME_DIGITS), round(s.end_s, TIME_DIGITS))
            if key in done:
                item["review"] = public(done[key])
            items.append(item)
        return JSONResponse({"items": items, "total": len(queue)})
