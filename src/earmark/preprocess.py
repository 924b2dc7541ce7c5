"""The one preprocessing path from a file to a model's input.

A :class:`Preprocessing` holds what a trained model was trained with: the audio settings
(:class:`earmark.audio.AudioConfig`: rate, channels, normalization, padding), the features
(:class:`earmark.features.FeatureConfig`) and the window, the training clip length. Every
path that feeds a model goes through it: training clips (:meth:`clip`), evaluation,
``predict``, ``detect``, the server and ONNX export. So a file is always read, cut,
normalized, padded and featurized the same way, whoever asks.

The steps, for a file of any length:

1. :meth:`read` / :meth:`blocks`: decode, set the channels, resample (the whole file, or
   block by block for long recordings). No normalization and no length change yet.
2. :meth:`starts`: where the windows of the model's clip length start
   (:func:`earmark.detection.windows.window_starts`, the one windowing function).
3. :meth:`prepare`: each window normalized on its own, then padded to the window length
   (as :func:`earmark.audio.standardize` does for a training clip: a training clip is one
   window).
4. :meth:`features_of`: the frontend (torch, batched) or the hand-crafted statistics. A
   pretrained frontend (``aisfx``, ``birdnet``) gives one embedding vector per window,
   ``[n, dim]``, for classical learners and networks alike; it runs on ``device``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earmark import audio as audio_io
from earmark.audio import AudioConfig
from earmark.detection.windows import Windowing, window_starts
from earmark.errors import ParameterError
from earmark.features.config import FeatureConfig

__all__ = ["PREDICT_WINDOWING", "SPECTRAL_KINDS", "Preprocessing"]

#: How ``predict`` cuts a file longer than the window: half-overlapping windows, the tail
#: covered by one window aligned to the end. ``detect`` takes its own :class:`Windowing`.
PREDICT_WINDOWING = Windowing(overlap=0.5, last="end")
SPECTRAL_KINDS = ("stft", "logmel", "mfcc")


@dataclass(frozen=True)
class Preprocessing:
    """A model's preprocessing: ``audio`` and ``features`` settings and ``window_seconds``,
    the clip length the model was trained on (the window every path scores).

    ``featurize=False`` stops after :meth:`prepare`: for a model whose graph computes the
    features itself (an exported ONNX model takes waveforms). ``device`` is where a
    pretrained frontend runs (``cpu``, ``cuda``); the other kinds are computed on the CPU."""

    audio: AudioConfig
    features: FeatureConfig
    window_seconds: float
    featurize: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_seconds) and self.window_seconds > 0):
            raise ParameterError(f"window must be > 0 seconds, got {self.window_seconds}")

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def window(self) -> int:
        """The window in samples."""
        return max(1, round(self.window_seconds * self.audio.sample_rate))

    @property
    def variable_length(self) -> bool:
        """Whether windows are taken as they are, unpadded: hand-crafted statistics of clips
        trained at their own lengths (no ``audio.duration``)."""
        return self.features.kind == "handcrafted" and self.audio.duration is None

    # -- decoding ---------------------------------------------------------------------------

    def read(
        self,
        path: str | Path,
        *,
        max_duration: float | None = None,
        max_decoded_bytes: int | None = audio_io.DEFAULT_MAX_DECODED_BYTES,
        offset: float = 0.0,
        duration: float | None = None,
    ) -> np.ndarray:
        """``path`` decoded at the model's rate and channels, at its own length: float32
        ``[channels, samples]``, not yet normalized. ``max_duration`` overrides the audio
        settings' longest accepted file; ``max_decoded_bytes`` is the decoding budget of
        :func:`earmark.audio.load` (memory follows the model's rate whatever the file's).
        ``offset`` / ``duration``: only that segment of the file (seconds; zero-padded where
        it runs past the end), as :func:`earmark.audio.load_clip` reads one."""
        cfg = dataclasses.replace(self.audio, duration=None, normalize=None)
        if max_duration is not None:
            cfg = dataclasses.replace(cfg, max_duration=max_duration)
        return audio_io.load_clip(
            path, cfg, max_decoded_bytes=max_decoded_bytes, offset=offset, duration=duration
        )

    def blocks(self, path: str | Path, block_seconds: float) -> Iterator[np.ndarray]:
        """``path`` as consecutive ``[channels, samples]`` blocks of about ``block_seconds``
        at the model's rate and channels (memory does not grow with the file's length)."""
        cfg = self.audio
        mono = cfg.channels == 1 and cfg.channel_policy == "downmix"
        for block in audio_io.stream(path, block_seconds, sr=cfg.sample_rate, mono=mono):
            yield audio_io.set_channels(
                block, cfg.channels, policy=cfg.channel_policy, channel=cfg.channel
            )

    def clip(
        self,
        path: str | Path,
        *,
        rng: np.random.Generator | None = None,
        offset: float = 0.0,
        duration: float | None = None,
    ) -> np.ndarray:
        """A training clip: decoded and standardized by the audio settings (cropped and
        padded to ``audio.duration`` when set), exactly as :meth:`prepare` treats a window.
        ``offset`` / ``duration``: a segment of the file as the clip."""
        return audio_io.load_clip(path, self.audio, rng=rng, offset=offset, duration=duration)

    # -- windows ----------------------------------------------------------------------------

    def resolve(self, windowing: Windowing | None = None) -> tuple[int, int]:
        """Window and hop in samples (the default window: the training clip length)."""
        return (windowing or PREDICT_WINDOWING).resolve(self.window_seconds, self.sample_rate)

    def starts(self, n: int, windowing: Windowing | None = None) -> np.ndarray:
        """Start samples of the windows over ``n`` samples (``predict``'s windowing by
        default)."""
        windowing = windowing or PREDICT_WINDOWING
        window, hop = self.resolve(windowing)
        return window_starts(n, window, hop, windowing.last)

    def cut(
        self, signal: np.ndarray, windowing: Windowing | None = None
    ) -> tuple[list[np.ndarray], list[float]]:
        """The windows of a decoded ``signal`` (views, the last possibly short) and their
        starts in seconds. A signal shorter than the window is one window."""
        window, _ = self.resolve(windowing)
        starts = self.starts(signal.shape[1], windowing)
        if len(starts) == 0:
            return [], []
        sr = self.sample_rate
        return [signal[:, s : s + window] for s in starts.tolist()], [s / sr for s in starts]

    def prepare(self, segments: Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Windows as the model's input audio: each normalized on its own (when the audio
        settings say so), then cropped or padded to the window (``audio.pad``). Returns one
        float32 ``[n, channels, window]`` array, or the list of windows as they are for
        :attr:`variable_length` features."""
        cfg = self.audio
        if cfg.normalize is not None:
            segments = [
                audio_io.normalize(s, method=cfg.normalize, target_db=cfg.target_db)
                for s in segments
            ]
        if self.variable_length:
            return list(segments)
        n = self.window
        if not segments:
            return np.zeros((0, cfg.channels, n), dtype=np.float32)
        fixed = np.zeros((len(segments), segments[0].shape[0], n), dtype=np.float32)
        for row, s in zip(fixed, segments, strict=True):
            if s.shape[1] > n or (s.shape[1] < n and cfg.pad != "end"):
                s = audio_io.fix_length(s, n, crop=cfg.crop, pad=cfg.pad)
            row[:, : s.shape[1]] = s
        return fixed

    # -- features ---------------------------------------------------------------------------

    def frontend(self) -> Any:
        """The torch module of the spectral / waveform kinds, or the pretrained frontend on
        :attr:`device` (built once per settings and device)."""
        device = self.device if self.features.pretrained else "cpu"
        return _frontend(self.features, self.sample_rate, device)

    def features_of(self, prepared: np.ndarray | Sequence[np.ndarray], *, flat: bool) -> Any:
        """Model input for :meth:`prepare`'s output: spectrograms ``[n, channels, bins,
        frames]`` (``flat``: one vector per window, for classical learners), hand-crafted
        vectors ``[n, features]``, embeddings ``[n, dim]`` of a pretrained frontend (flat
        either way), or the waveforms themselves when not :attr:`featurize`."""
        if not self.featurize:
            return prepared
        kind = self.features.kind
        if kind == "handcrafted":
            extractor = _handcrafted(self.features, self.sample_rate)
            if len(prepared) == 0:
                return np.zeros((0, len(extractor.names)), dtype=np.float32)
            return np.stack([extractor(s) for s in prepared])
        import torch

        frontend = self.frontend()
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(prepared), dtype=torch.float32)
            if self.features.pretrained:
                x = x.to(self.device)
            out = frontend(x).float().cpu().numpy()
        return out.reshape(len(out), -1) if flat else out

    def shared_frames(self, hop: int) -> Any:
        """The frontend when windows ``hop`` samples apart can share their spectrogram frames
        (spectral features, no per-window normalization, hop on the frame grid), else None."""
        if not self.featurize or self.features.kind not in SPECTRAL_KINDS:
            return None
        if self.audio.normalize is not None:
            return None
        frontend = self.frontend()
        if hop % frontend.hop_length == 0 and frontend.pad_mode == "constant":
            return frontend
        return None


def _frontend(features: FeatureConfig, sr: int, device: str = "cpu") -> Any:
    key = (features.key(), sr, device)
    module = _FRONTENDS.get(key)
    if module is None:
        from earmark.features.frontend import build_frontend

        module = build_frontend(features, sr).eval().to(device)
        if len(_FRONTENDS) > 16:
            _FRONTENDS.clear()
        _FRONTENDS[key] = module
    return module


def _handcrafted(features: FeatureConfig, sr: int) -> Any:
    key = (features.key(), sr)
    extractor = _EXTRACTORS.get(key)
    if extractor is None:
        extractor = features.handcrafted(sr)
        if len(_EXTRACTORS) > 16:
            _EXTRACTORS.clear()
        _EXTRACTORS[key] = extractor
    return extractor


_FRONTENDS: dict[tuple[str, int, str], Any] = {}
_EXTRACTORS: dict[tuple[str, int], Any] = {}
