"""Run I/O-bound work (decoding files) in threads ahead of its consumer, in order.

Decoders (libsndfile through cffi, FFmpeg through PyAV, soxr) release the GIL, so threads
overlap decoding with the torch work of the consumer without the start-up cost and the
copies of worker processes. The number of items in flight is bounded, so memory stays flat
however many files there are.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["Prefetched", "cgroup_quota", "default_workers", "prefetch_map", "usable_cores"]

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The cores this process may use, at least 1: its CPU affinity (``taskset``, a
    cpuset), lowered to its CPU quota when a cgroup sets one (``docker --cpus``, a
    Kubernetes CPU limit; rounded up)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs' worth of time the cgroup at ``root`` allows (v2 ``cpu.max``, v1
    ``cpu/cpu.cfs_quota_us / cpu.cfs_period_us``), or ``None``: no limit, or not readable."""
    v2 = (f"{root}/cpu.max",)
    v1 = (f"{root}/cpu/cpu.cfs_quota_us", f"{root}/cpu/cpu.cfs_period_us")
    try:
        with open(v2[0]) as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(v1[0]) as f1, open(v1[1]) as f2:
            quota_us, period_us = int(f1.read()), int(f2.read())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


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


class Prefetched(Iterator[R]):
    """Iterate ``iterable`` in a background thread that stays at most ``depth`` items ahead
    (the next blocks of a recording decode while the current one is scored).

    The thread starts at construction, so several can be opened ahead of use. An exception in
    the producer is raised to the consumer at that point of the sequence. :meth:`close` (or
    leaving a ``with`` block) stops the producer early.
    """

    def __init__(self, iterable: Iterable[R], depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(iterable,), name="earmark-prefetch", daemon=True
        )
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterable: Iterable[R]) -> None:
        try:
            for value in iterable:
                if not self._put(("item", value)):
                    break
            else:
                self._put(("end", None))
        except BaseException as exc:  # handed to the consumer
            self._put(("error", exc))
        finally:
            close = getattr(iterable, "close", None)
            if close is not None and self._stop.is_set():
                close()

    def __iter__(self) -> Prefetched[R]:
        return self

    def __next__(self) -> R:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == "item":
            return value
        self._done = True
        self._thread.join()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the producer and wait for its thread."""
        self._stop.set()  # the producer notices within 0.1 s, or after its current item
        self._done = True
        self._thread.join()

    def __enter__(self) -> Prefetched[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
