"""Where the windows of a long recording start: window length, hop (or overlap), and what
happens to the partial window at the end."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from earmark.config import JsonConfig
from earmark.errors import ParameterError

__all__ = ["LastWindow", "Windowing", "window_starts"]

LastWindow = Literal["pad", "end", "drop"]

MIN_SECONDS = 0.001  # window and hop: a millisecond (below, a file has millions of windows)
MAX_WINDOW_SECONDS = 600.0  # a window is one model input: ten minutes is already absurd
MAX_HOP_SECONDS = 3600.0


def _number(name: str, value: object) -> float | None:
    """``value`` as a finite float (``None`` stays ``None``); anything else is refused."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParameterError(f"{name} must be a number of seconds, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ParameterError(f"{name} must be a finite number, got {value}")
    return number


@dataclass(frozen=True)
class Windowing(JsonConfig):
    """How a recording is cut into windows.

    Args:
        window: window length in seconds (``MIN_SECONDS`` to ``MAX_WINDOW_SECONDS``);
            ``None``: the model's training clip length.
        hop: seconds between window starts (``MIN_SECONDS`` to ``MAX_HOP_SECONDS``). Give
            ``hop`` or ``overlap``, not both; with neither, windows overlap by half.
        Numbers must be finite (no NaN or infinity).
        overlap: the fraction (0 <= overlap < 1) that consecutive windows share.
        last: the partial window at the end: ``pad`` (score it, zero-padded), ``end`` (add a
            window aligned to the end of the recording) or ``drop`` (ignore the remainder).
            A recording shorter than one window gets one zero-padded window unless ``drop``.
    """

    window: float | None = None
    hop: float | None = None
    overlap: float | None = None
    last: LastWindow = "pad"

    def __post_init__(self) -> None:
        if self.hop is not None and self.overlap is not None:
            raise ParameterError("give a hop or an overlap, not both")
        for name, most in (("window", MAX_WINDOW_SECONDS), ("hop", MAX_HOP_SECONDS)):
            value = _number(name, getattr(self, name))
            if value is not None and not MIN_SECONDS <= value <= most:
                raise ParameterError(
                    f"{name} must be between {MIN_SECONDS:g} and {most:g} seconds, got {value}"
                )
            object.__setattr__(self, name, value)
        overlap = _number("overlap", self.overlap)
        if overlap is not None and not 0 <= overlap < 1:
            raise ParameterError(f"overlap must be in [0, 1), got {overlap}")
        object.__setattr__(self, "overlap", overlap)
        if self.last not in ("pad", "end", "drop"):
            raise ParameterError(f"last must be pad, end or drop, got {self.last!r}")

    def resolve(self, clip_seconds: float, sample_rate: int) -> tuple[int, int]:
        """Window and hop in samples at ``sample_rate`` Hz (``clip_seconds``: the default
        window)."""
        window = self.window or clip_seconds
        if self.hop is not None:
            hop = self.hop
        else:
            hop = window * (1 - (0.5 if self.overlap is None else self.overlap))
        return max(1, round(window * sample_rate)), max(1, round(hop * sample_rate))


def window_starts(n: int, window: int, hop: int, last: LastWindow = "pad") -> np.ndarray:
    """Start samples of the windows over ``n`` samples (int64, increasing).

    Full windows start every ``hop`` samples. After the last full one, ``pad`` adds the next
    start on the hop grid if the remaining audio is not yet covered (the window runs past the
    end and is zero-padded), ``end`` adds a window ending exactly at ``n``, ``drop`` adds
    nothing. With ``hop > window`` the gaps between windows are never scored.
    """
    if window < 1 or hop < 1:
        raise ParameterError(f"window and hop must be >= 1 sample, got {window} and {hop}")
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n < window:
        return np.zeros(0 if last == "drop" else 1, dtype=np.int64)
    starts = np.arange(0, n - window + 1, hop, dtype=np.int64)
    covered = int(starts[-1]) + window
    if covered < n:
        nxt = int(starts[-1]) + hop
        if last == "pad" and nxt < n:
            starts = np.append(starts, nxt)
        elif last == "end":
            starts = np.append(starts, n - window)
    return starts
