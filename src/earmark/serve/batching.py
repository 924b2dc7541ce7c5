"""Dynamic batching: the windows of requests that arrive together go to the model as one
batch.

The first request to arrive opens a window of ``wait`` seconds (or until ``max_windows``
windows are waiting); everything queued by then is scored in one call in a worker thread,
and each request gets its own rows back. The window closes early when no other request is
on its way (``incoming()``, the requests still decoding, is 0), so a lone
request never waits; under load the model sees batches instead of single clips, and while
one batch is scored the next one gathers.

A request with more than ``max_windows`` windows is queued ``max_windows`` at a time, each
part after the previous one is scored: a model call never holds more than about twice
``max_windows`` windows, and a request given up on (its ``score`` cancelled, e.g. on a
timeout) stops after the part being scored, instead of its whole file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import numpy as np
from starlette.concurrency import run_in_threadpool

__all__ = ["Batcher"]


class Batcher:
    """Collect window batches from concurrent requests and score them together with
    ``score(segments) -> [n, classes]`` (run in a worker thread)."""

    def __init__(
        self,
        score: Callable[[list[np.ndarray]], np.ndarray],
        *,
        wait: float = 0.005,
        max_windows: int = 64,
        incoming: Callable[[], int] | None = None,
    ) -> None:
        self.score_fn, self.wait, self.max_windows = score, wait, max_windows
        self.incoming = incoming  # requests that may still join a window (None: unknown)
        self.queue: asyncio.Queue[tuple[list[np.ndarray], asyncio.Future]] | None = None
        self.task: asyncio.Task | None = None
        self.batches = 0  # batches scored (for tests and metrics)

    def _ensure(self) -> None:
        if self.task is None or self.task.done():
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def score(self, segments: list[np.ndarray]) -> np.ndarray:
        """The scores ``[len(segments), classes]`` of one request's windows."""
        step = max(1, self.max_windows)
        if len(segments) <= step:
            return await self._score_part(segments)
        parts = [
            await self._score_part(segments[at : at + step]) for at in range(0, len(segments), step)
        ]
        return np.concatenate(parts)

    async def _score_part(self, segments: list[np.ndarray]) -> np.ndarray:
        self._ensure()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self.queue.put((segments, future))  # type: ignore[union-attr]
        return await future

    async def _run(self) -> None:
        queue = self.queue
        if queue is None:  # _ensure() creates the queue before the task
            return
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            n = len(items[0][0])
            deadline = loop.time() + self.wait
            while n < self.max_windows:
                if queue.empty() and self.incoming is not None and self.incoming() <= 0:
                    break  # nobody else is coming: do not wait for them
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    break
                items.append(item)
                n += len(item[0])
            live = [(segs, fut) for segs, fut in items if not fut.cancelled()]
            if not live:
                continue
            try:
                scores = await run_in_threadpool(
                    self.score_fn, [s for segs, _ in live for s in segs]
                )
            except Exception as exc:  # every waiting request gets the error
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            at = 0
            for segs, fut in live:
                if not fut.done():
                    fut.set_result(scores[at : at + len(segs)])
                at += len(segs)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
