"""Score a long recording window by window, streaming it in blocks.

The scoring itself is the predictor interface's (:meth:`earmark.predict.Predictor.
score_track`): the recording is decoded block by block, so memory holds one block plus the
windows waiting to be scored whatever the length, windows are scored in batches, and the
spectrogram frames overlapping windows share are computed once. This module is detection's
entry point to it for any trained model (a classifier, an ONNX model or an ensemble).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from earmark.detection.windows import Windowing
from earmark.predict import BLOCK_SECONDS, ScoreTrack

__all__ = ["BLOCK_SECONDS", "ScoreTrack", "score_file"]


def score_file(
    model: Any,
    path: str | Path,
    windowing: Windowing | None = None,
    *,
    batch_size: int = 256,
    block_seconds: float = BLOCK_SECONDS,
    blocks: Iterable[np.ndarray] | None = None,
    on_block: Callable[[float], None] | None = None,
) -> ScoreTrack:
    """Slide ``windowing``'s windows over the recording at ``path`` and score each with
    ``model`` (anything loaded by :func:`earmark.load`).

    ``blocks`` replaces decoding (``[channels, samples]`` blocks at the model's rate, e.g.
    from a reader opened ahead: see ``model.preprocessing.blocks``); ``on_block(seconds)`` is
    called as each block's audio is consumed. Raises :class:`AudioError` for an unreadable
    file (possibly after some blocks: nothing is returned then)."""
    return model.score_track(
        path,
        windowing,
        batch_size=batch_size,
        block_seconds=block_seconds,
        blocks=blocks,
        on_block=on_block,
    )
