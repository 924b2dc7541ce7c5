from __future__ import annotations

import threading
import time

import pytest

from earmark.prefetch import prefetch_map


def test_results_keep_the_input_order_whatever_finishes_first() -> None:
    def slow_for_small(i: int) -> int:
        time.sleep(0.002 * (10 - i % 10))
        return i * i

    assert list(prefetch_map(slow_for_small, range(40), workers=4, ahead=8)) == [
        i * i for i in range(40)
    ]


def test_at_most_ahead_items_are_in_flight() -> None:
    lock = threading.Lock()
    started = 0
    most_ahead = 0
    consumed = 0

    def work(i: int) -> int:
        nonlocal started, most_ahead
        with lock:
            started += 1
            most_ahead = max(most_ahead, started - consumed)
        return i

    for _ in prefetch_map(work, range(100), workers=4, ahead=5):
        time.sleep(0.001)
        with lock:
            consumed += 1
    assert started == 100 and most_ahead <= 5 + 1  # + the item the consumer holds


def test_an_error_surfaces_at_its_item_and_closing_early_stops_the_work() -> None:
    calls = []

    def work(i: int) -> int:
        calls.append(i)
        if i == 3:
            raise ValueError("three")
        return i

    got = []
    with pytest.raises(ValueError, match="three"):
        for value in prefetch_map(work, range(1000), workers=2, ahead=4):
            got.append(value)
    assert got == [0, 1, 2] and len(calls) < 20


def test_usable_cores_follow_the_affinity_and_a_cgroup_quota(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from earmark import prefetch

    (tmp_path / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    assert prefetch.cgroup_quota(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert prefetch.cgroup_quota(str(tmp_path)) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")  # cgroup v1
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert prefetch.cgroup_quota(str(tmp_path)) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert prefetch.cgroup_quota(str(tmp_path)) is None
    assert prefetch.cgroup_quota(str(tmp_path / "absent")) is None

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(prefetch, "cgroup_quota", lambda: 1.5)
    assert prefetch.usable_cores() == 2  # the quota, rounded up
    monkeypatch.setattr(prefetch, "cgroup_quota", lambda: None)
    assert prefetch.usable_cores() == 4
