"""Score a long recording window by window, streaming it in blocks.

The recording is decoded block by block in a background thread (:class:`Prefetched`), so
memory holds one block plus the windows waiting to be scored, whatever the length. Windows
are scored in batches. For spectrogram features (stft / logmel / mfcc) the frames that
overlapping windows share are computed once over the continuous signal
(:func:`earmark.features.spectral.framed`): a window's frames then equal those of the clip
alone except at its two edges, which see the neighbouring audio instead of zero padding.
Per-clip normalization, waveform and hand-crafted features score each window on its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from earmark import audio as audio_io
from earmark.detection.windows import Windowing, window_starts
from earmark.errors import ParameterError

if TYPE_CHECKING:
    from earmark.classifier import Classifier

__all__ = ["ScoreTrack", "score_file"]

BLOCK_SECONDS = 30.0  # decoded at a time; memory is a few blocks whatever the length


@dataclass
class ScoreTrack:
    """Class scores of one recording's windows: ``scores[i]`` (``[windows, classes]``, in
    ``classes`` order) for the window starting at ``starts[i]`` seconds and lasting
    ``window`` seconds; ``duration`` is the recording's length in seconds."""

    path: str
    classes: list[str]
    starts: np.ndarray
    window: float
    hop: float
    scores: np.ndarray
    duration: float

    @property
    def ends(self) -> np.ndarray:
        """Window ends in seconds (a padded last window ends at the recording's end)."""
        return np.minimum(self.starts + self.window, self.duration)


class _WindowScorer:
    """Scores windows cut from a sample buffer with one classifier."""

    def __init__(self, clf: Classifier, window: int, hop: int) -> None:
        clf._check_fitted()
        self.clf = clf
        self.window = window
        features, audio = clf.features, clf.audio
        self.frontend: Any = None
        self.context = 0
        spectral = features.kind in ("stft", "logmel", "mfcc")
        if spectral and audio.normalize is None:
            from earmark.features.frontend import build_frontend

            frontend = build_frontend(features, audio.sample_rate)
            if hop % frontend.hop_length == 0 and frontend.pad_mode == "constant":
                self.frontend = frontend
                self.context = frontend.n_fft // 2
        if clf.family != "neural" and window != clf.audio.n_samples:
            raise ParameterError(
                f"a {clf.model} model takes windows of its training clip length "
                f"({clf.clip_seconds_} s); got {window / audio.sample_rate} s"
            )

    def grid(self) -> int:
        """Window starts must be multiples of this many samples."""
        return self.frontend.hop_length if self.frontend is not None else 1

    def __call__(self, buf: np.ndarray, offsets: list[int]) -> np.ndarray:
        clf = self.clf
        if self.frontend is not None:
            import torch

            from earmark.features.spectral import framed

            with torch.inference_mode():
                X = framed(self.frontend, torch.from_numpy(buf), offsets, self.window).numpy()
            return clf._proba(X if clf.family == "neural" else X.reshape(len(X), -1))
        segments = [buf[:, o : o + self.window] for o in offsets]
        if clf.audio.normalize is not None:
            segments = [
                audio_io.normalize(s, method=clf.audio.normalize, target_db=clf.audio.target_db)
                for s in segments
            ]
        return clf._proba(clf._window_features(segments))


def _blocks(path: Path, clf: Classifier, block_seconds: float) -> Iterable[np.ndarray]:
    cfg = clf.audio
    mono = cfg.channels == 1 and cfg.channel_policy == "downmix"
    for block in audio_io.stream(path, block_seconds, sr=cfg.sample_rate, mono=mono):
        yield audio_io.set_channels(
            block, cfg.channels, policy=cfg.channel_policy, channel=cfg.channel
        )


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
    ``model`` (a :class:`Classifier` or an :class:`Ensemble`).

    ``blocks`` replaces decoding (standardized ``[channels, samples]`` blocks at the model's
    rate, e.g. from a :class:`Prefetched` reader opened ahead); ``on_block(seconds)`` is
    called as each block's audio is consumed. Raises :class:`AudioError` for an unreadable
    file (possibly after some blocks: nothing is returned then).
    """
    windowing = windowing or Windowing()
    members = getattr(model, "members", None)
    if members is not None:  # an ensemble: every member scores the same windows
        tracks = [
            score_file(
                m,
                path,
                _fixed(windowing, model),
                batch_size=batch_size,
                block_seconds=block_seconds,
                on_block=on_block if i == 0 else None,
            )
            for i, m in enumerate(members)
        ]
        aligned = [model._aligned(m, t.scores) for m, t in zip(members, tracks, strict=True)]
        first = tracks[0]
        return ScoreTrack(
            str(path),
            list(model.classes_),
            first.starts,
            first.window,
            first.hop,
            model.combine(aligned),
            first.duration,
        )
    clf: Classifier = model
    sr = clf.audio.sample_rate
    window, hop = windowing.resolve(float(clf.clip_seconds_), sr)
    scorer = _WindowScorer(clf, window, hop)
    grid, ctx = scorer.grid(), scorer.context
    if blocks is None:
        blocks = _blocks(Path(path), clf, block_seconds)

    channels = clf.audio.channels
    buf = np.zeros((channels, ctx), dtype=np.float32)  # zeros before the recording
    buf_start = -ctx  # absolute sample index of buf[:, 0]
    total = 0
    next_k = 0  # the next full window on the hop grid
    pending: list[int] = []
    starts_out: list[np.ndarray] = []
    scores_out: list[np.ndarray] = []

    def run(batch: list[int]) -> None:
        nonlocal buf, buf_start
        need = batch[-1] + window + ctx - (buf_start + buf.shape[1])
        if need > 0:  # past the end of the recording: zeros
            buf = np.concatenate([buf, np.zeros((channels, need), np.float32)], axis=1)
        scores_out.append(scorer(buf, [s - buf_start for s in batch]))
        starts_out.append(np.asarray(batch, dtype=np.int64))

    def drain(final: bool) -> None:
        nonlocal buf, buf_start
        while len(pending) >= batch_size or (final and pending):
            batch = pending[:batch_size]
            del pending[:batch_size]
            run(batch)
            # keep from the next window's context (an end-aligned last window may start up
            # to a hop before the next grid start)
            keep_from = (pending[0] if pending else (next_k - 1) * hop) - ctx - buf_start
            if keep_from > 0:
                buf = buf[:, keep_from:]
                buf_start += keep_from

    for block in blocks:
        buf = np.concatenate([buf, block], axis=1) if buf.shape[1] else block
        total += block.shape[1]
        while next_k * hop + window + ctx <= buf_start + buf.shape[1]:
            pending.append(next_k * hop)
            next_k += 1
        if on_block is not None:
            on_block(block.shape[1] / sr)
        drain(final=False)
    # the end: full windows the context held back, then the partial window's policy
    # (those already queued are the grid starts up to (next_k - 1) * hop)
    for s in window_starts(total, window, hop, windowing.last).tolist():
        if s > (next_k - 1) * hop:
            pending.append(math.ceil(s / grid) * grid)  # an end window snaps to the frames
    pending[:] = sorted(set(pending))
    drain(final=True)
    starts = np.concatenate(starts_out) if starts_out else np.zeros(0, np.int64)
    n_classes = len(clf.classes_)
    scores = np.concatenate(scores_out) if scores_out else np.zeros((0, n_classes))
    return ScoreTrack(
        path=str(path),
        classes=list(clf.classes_),
        starts=starts / sr,
        window=window / sr,
        hop=hop / sr,
        scores=np.asarray(scores, dtype=np.float32),
        duration=total / sr,
    )


def _fixed(windowing: Windowing, ensemble: Any) -> Windowing:
    """The ensemble's windowing with the window fixed (members may differ in clip length)."""
    if windowing.window is not None:
        return windowing
    clip = float(ensemble.members[0].clip_seconds_)
    return dataclasses.replace(windowing, window=clip)
