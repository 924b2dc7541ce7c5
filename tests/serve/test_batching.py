"""The dynamic batcher on its own: windows gather concurrent requests, a lone one never waits,
errors reach every waiting request."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from earmark.serve.batching import Batcher


def _scores(segments: list[np.ndarray]) -> np.ndarray:
    """One row per window: [sum, n] (the row tells which request it came from)."""
    return np.array([[float(s.sum()), float(len(segments))] for s in segments])


def test_a_lone_request_does_not_wait_for_the_window() -> None:
    async def go() -> tuple[float, np.ndarray]:
        batcher = Batcher(_scores, wait=2.0, incoming=lambda: 0)
        t0 = time.perf_counter()
        got = await batcher.score([np.ones(3)])
        seconds = time.perf_counter() - t0
        await batcher.close()
        return seconds, got

    seconds, got = asyncio.run(go())
    assert seconds < 1.0  # not the 2 s window
    assert got.tolist() == [[3.0, 1.0]]


def test_the_window_waits_for_requests_on_their_way() -> None:
    async def go() -> tuple[list[np.ndarray], int]:
        incoming = {"n": 2}
        batcher = Batcher(_scores, wait=2.0, incoming=lambda: incoming["n"])

        async def late(k: int, delay: float) -> np.ndarray:
            await asyncio.sleep(delay)
            incoming["n"] -= 1  # as the app does, right before queueing
            return await batcher.score([np.full(2, float(k)), np.full(2, float(k))])

        first = asyncio.create_task(batcher.score([np.zeros(1)]))
        got = await asyncio.gather(first, late(1, 0.05), late(2, 0.1))
        await batcher.close()
        return got, batcher.batches

    (a, b, c), batches = asyncio.run(go())
    assert batches == 1  # all three in one call to the model
    assert a.tolist() == [[0.0, 5.0]]  # 5 windows in that call
    assert b.tolist() == [[2.0, 5.0], [2.0, 5.0]] and c.tolist() == [[4.0, 5.0], [4.0, 5.0]]


def test_without_an_incoming_count_the_window_runs_its_time() -> None:
    async def go() -> int:
        batcher = Batcher(_scores, wait=0.3)

        async def late() -> np.ndarray:
            await asyncio.sleep(0.05)
            return await batcher.score([np.ones(1)])

        await asyncio.gather(batcher.score([np.ones(1)]), late())
        await batcher.close()
        return batcher.batches

    assert asyncio.run(go()) == 1


def test_a_failing_model_call_fails_every_request_of_its_batch_only() -> None:
    calls = {"n": 0}

    def breaks_once(segments: list[np.ndarray]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model broke")
        return _scores(segments)

    async def go() -> list[object]:
        batcher = Batcher(breaks_once, wait=0.2)
        got = await asyncio.gather(
            batcher.score([np.ones(1)]), batcher.score([np.ones(1)]), return_exceptions=True
        )
        got.append(await asyncio.wait_for(batcher.score([np.ones(2)]), 5))  # still serving
        await batcher.close()
        return got

    first, second, third = asyncio.run(go())
    assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError)
    assert np.asarray(third).tolist() == [[2.0, 1.0]]


def test_a_window_closes_when_it_holds_max_windows() -> None:
    async def go() -> int:
        batcher = Batcher(_scores, wait=5.0, max_windows=3, incoming=lambda: 1)
        t0 = time.perf_counter()
        await asyncio.gather(*(batcher.score([np.ones(1)]) for _ in range(3)))
        assert time.perf_counter() - t0 < 2.5
        await batcher.close()
        return batcher.batches

    assert asyncio.run(go()) == 1
