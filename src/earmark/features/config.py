"""Feature settings: which features, with which parameters (plain data, no torch).

:class:`FeatureConfig` round-trips through JSON and is stored with every trained model, so
prediction computes exactly the features training saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from earmark.config import JsonConfig
from earmark.errors import ParameterError
from earmark.features.handcrafted import HandcraftedFeatures

__all__ = ["FEATURE_KINDS", "FeatureConfig"]

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

    @property
    def n_bins(self) -> int:
        """Feature bins per frame of the spectral kinds (what a network's input layer sees)."""
        if self.kind == "mfcc":
            return self.n_mfcc * (1 + self.deltas)
        if self.kind == "stft":
            return self.n_fft // 2 + 1
        return self.n_mels

    def handcrafted(self, sr: int) -> HandcraftedFeatures:
        """The hand-crafted extractor these settings describe at ``sr`` Hz."""
        return HandcraftedFeatures(
            sr=sr,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=min(self.n_mels, 40),
            stats=self.stats,
        )
