from __future__ import annotations

import pytest

from earmark.detection import Windowing, window_starts
from earmark.errors import ParameterError


def test_full_windows_every_hop_then_the_last_window_policy() -> None:
    assert window_starts(100, 40, 20, "pad").tolist() == [0, 20, 40, 60]  # exact cover
    assert window_starts(110, 40, 20, "pad").tolist() == [0, 20, 40, 60, 80]  # 80 runs past
    assert window_starts(110, 40, 20, "end").tolist() == [0, 20, 40, 60, 70]
    assert window_starts(110, 40, 20, "drop").tolist() == [0, 20, 40, 60]


def test_recordings_shorter_than_a_window_and_empty_ones() -> None:
    assert window_starts(10, 40, 20, "pad").tolist() == [0]
    assert window_starts(10, 40, 20, "end").tolist() == [0]
    assert window_starts(10, 40, 20, "drop").tolist() == []
    assert window_starts(40, 40, 20).tolist() == [0]
    assert window_starts(0, 40, 20).tolist() == []


def test_hop_longer_than_the_window_leaves_gaps() -> None:
    assert window_starts(100, 10, 30, "drop").tolist() == [0, 30, 60, 90]
    assert window_starts(95, 10, 30, "pad").tolist() == [0, 30, 60, 90]  # 90: partial, padded
    assert window_starts(89, 10, 30, "pad").tolist() == [0, 30, 60]  # the gap is never scored
    assert window_starts(89, 10, 30, "end").tolist() == [0, 30, 60, 79]


def test_windowing_resolves_hop_or_overlap_in_samples() -> None:
    assert Windowing().resolve(1.0, 16_000) == (16_000, 8_000)  # half overlap by default
    assert Windowing(window=2.0, hop=0.5).resolve(1.0, 16_000) == (32_000, 8_000)
    assert Windowing(overlap=0.75).resolve(1.0, 16_000) == (16_000, 4_000)
    assert Windowing(overlap=0.0).resolve(0.5, 8_000) == (4_000, 4_000)
    with pytest.raises(ParameterError, match="not both"):
        Windowing(hop=0.5, overlap=0.5)
    with pytest.raises(ParameterError, match="overlap"):
        Windowing(overlap=1.0)
    with pytest.raises(ParameterError, match="last"):
        Windowing(last="wrap")  # type: ignore[arg-type]
    assert Windowing.from_dict(Windowing(hop=0.25, last="end").to_dict()).hop == 0.25


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"window": float("nan")}, "window must be a finite number"),
        ({"hop": float("inf")}, "hop must be a finite number"),
        ({"hop": -0.5}, "hop must be between"),
        ({"window": 0.0}, "window must be between"),
        ({"window": 1e9}, "window must be between 0.001 and 600 seconds"),
        ({"hop": 1e-12}, "hop must be between"),
        ({"hop": 7200.0}, "hop must be between 0.001 and 3600 seconds"),
        ({"overlap": float("nan")}, "overlap must be a finite number"),
        ({"window": "long"}, "window must be a number"),
        ({"hop": True}, "hop must be a number"),
    ],
)
def test_nan_infinite_negative_or_absurd_windows_are_refused(settings, message) -> None:
    with pytest.raises(ParameterError, match=message):
        Windowing(**settings)


def test_a_record_with_integers_reads_back_as_seconds() -> None:
    w = Windowing.from_dict({"window": 2, "hop": 1, "overlap": None, "last": "pad"})
    assert (w.window, w.hop) == (2.0, 1.0) and isinstance(w.window, float)
    assert Windowing(window=600.0, hop=3600.0).resolve(1.0, 100) == (60_000, 360_000)
