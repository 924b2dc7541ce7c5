"""One feature setting for the whole pipeline: which features, with which parameters.

:class:`FeatureConfig` is plain data (round-trips through JSON) stored with every trained
model, so prediction computes exactly the features training saw. :func:`build_frontend`
turns it into a torch module (for the network kinds) and :func:`extract` computes features
for a batch of standardized clips, whatever the kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from earmark.config import JsonConfig
from earmark.errors import ParameterError
from earmark.features.handcrafted import HandcraftedFeatures
from earmark.features.spectral import MFCC, STFT, LogMel

__all__ = ["FEATURE_KINDS", "FeatureConfig", "build_frontend", "extract"]

FeatureKind = Literal["waveform", "stft", "logmel", "mfcc", "handcrafted"]
FEATURE_KINDS: tuple[str, ...] = ("waveform", "stft", "logmel", "mfcc", "handcrafted")


@dataclass(frozen=True)
class FeatureConfig(JsonConfig):
    """Feature settings. Window and hop in samples; ``fmin`` / ``fmax`` in Hz; ``top_db`` in dB.

    The defaults suit 16 kHz speech and sound events: a 25 ms window (400 samples) in a
    512-point FFT, a 10 ms hop, 64 mel bands.
    """

    kind: FeatureKind = "logmel"
    n_fft: int = 512
    win_length: int | None = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    n_mfcc: int = 20
    deltas: int = 0
    stats: tuple[str, ...] = ("mean", "std", "min", "max", "p10", "p50", "p90")

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ParameterError(f"unknown feature kind {self.kind!r}; use one of {FEATURE_KINDS}")
        if self.win_length is not None and not 1 <= self.win_length <= self.n_fft:
            raise ParameterError(f"need 1 <= win_length <= n_fft, got {self.win_length}")
        if self.hop_length < 1:
            raise ParameterError(f"hop_length must be >= 1 samples, got {self.hop_length}")
        object.__setattr__(self, "stats", tuple(self.stats))

    def handcrafted(self, sr: int) -> HandcraftedFeatures:
        """The hand-crafted extractor these settings describe at ``sr`` Hz."""
        return HandcraftedFeatures(
            sr=sr,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=min(self.n_mels, 40),
            stats=self.stats,
        )


def build_frontend(config: FeatureConfig, sr: int) -> nn.Module:
    """The torch module computing ``config``'s features from ``[..., samples]`` at ``sr`` Hz.

    ``waveform`` gives ``nn.Identity``; ``handcrafted`` has no torch form (use :func:`extract`).
    """
    common = dict(n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length)
    if config.kind == "waveform":
        return nn.Identity()
    if config.kind == "stft":
        return STFT(power=2.0, **common)
    mel = dict(n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, top_db=config.top_db)
    if config.kind == "logmel":
        return LogMel(sr, **common, **mel)
    if config.kind == "mfcc":
        return MFCC(sr, n_mfcc=config.n_mfcc, deltas=config.deltas, **common, **mel)
    raise ParameterError("handcrafted features are computed with numpy/librosa, not a torch module")


def extract(
    batch: np.ndarray | torch.Tensor,
    sr: int,
    config: FeatureConfig,
    *,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Features of standardized clips ``[batch, channels, samples]`` at ``sr`` Hz.

    Returns float32 ``[batch, channels, freq, frames]`` for stft / logmel / mfcc,
    ``[batch, channels, samples]`` for waveform and ``[batch, n_features]`` for handcrafted
    (channels averaged first).
    """
    if config.kind == "handcrafted":
        x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
        if x.ndim != 3:
            raise ParameterError(f"expected [batch, channels, samples], got shape {x.shape}")
        feats = config.handcrafted(sr)
        return np.stack([feats(clip) for clip in x]) if len(x) else np.zeros((0, len(feats.names)))
    x = torch.as_tensor(batch, dtype=torch.float32)
    if x.ndim != 3:
        raise ParameterError(f"expected [batch, channels, samples], got shape {tuple(x.shape)}")
    frontend = build_frontend(config, sr).to(device)
    with torch.inference_mode():
        return frontend(x.to(device)).float().cpu().numpy()
