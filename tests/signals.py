"""Signals the tests share, imported as ``from signals import SR, tone``: a module of its own
because more than one folder has a ``conftest.py``, and whichever is imported last holds the
name ``conftest`` when the whole suite is collected."""

from __future__ import annotations

import numpy as np

SR = 16_000


def tone(freq: float = 440.0, duration: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    """A sine of ``freq`` Hz, float32 ``[samples]``."""
    t = np.arange(round(duration * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
