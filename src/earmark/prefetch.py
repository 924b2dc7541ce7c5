"""Run I/O-bound work (decoding files) in threads ahead of its consumer, in order.

Decoders (libsndfile through cffi, FFmpeg through PyAV, soxr) release the GIL, so threads
overlap decoding with the torch work of the consumer without the start-up cost and the
copies of worker processes. The number of items in flight is bounded, so memory stays flat
however many files there are.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["default_workers", "prefetch_map"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers(cap: int = 8) -> int:
    """Decoding threads when the caller gives none: half the cores (the other half runs the
    torch work they feed; measured best on 2 cores), at least 1, at most ``cap``."""
    return max(1, min(cap, (os.cpu_count() or 1) // 2))


def prefetch_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int | None = None, ahead: int = 64
) -> Iterator[R]:
    """``map(fn, items)`` computed by ``workers`` threads, at most ``ahead`` items ahead of
    the consumer; results come in the order of ``items``. An exception raised by ``fn``
    is raised when its result is reached (catch it inside ``fn`` to go on)."""
    workers = workers or default_workers()
    ahead = max(1, ahead)
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="earmark-decode") as pool:
        queue: deque[Future[R]] = deque()
        for item in source:
            queue.append(pool.submit(fn, item))
            if len(queue) >= ahead:
                break
        while queue:
            future = queue.popleft()
            nxt = next(source, _END)
            if nxt is not _END:
                queue.append(pool.submit(fn, nxt))  # type: ignore[arg-type]
            try:
                yield future.result()
            except GeneratorExit:
                for f in queue:
                    f.cancel()
                raise


_END = object()
