"""Feature settings: which features, with which parameters (plain data, no torch).

:class:`FeatureConfig` round-trips through JSON and is stored with every trained model, so
prediction computes exactly the features training saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

from earmark.config import JsonConfig
from earmark.errors import ParameterError
from earmark.features.handcrafted import HandcraftedFeatures

__all__ = ["FEATURE_KINDS", "FeatureConfig"]

FeatureKind = Literal["waveform", "stft", "logmel", "mfcc", "handcrafted"]
FEATURE_KINDS: tuple[str, ...] = ("waveform", "stft", "logmel", "mfcc", "handcrafted")

# n_mels / n_mfcc when not given: the spectral kinds' 64 / 20, the hand-crafted vector's 40 / 13
# (the values it has always been computed with).
_SPECTRAL_DEFAULTS = {"n_mels": 64, "n_mfcc": 20}
_HANDCRAFTED_DEFAULTS = {
    "n_mels": HandcraftedFeatures.n_mels,
    "n_mfcc": HandcraftedFeatures.n_mfcc,
}
# Written with every hand-crafted record since n_mels and n_mfcc are honoured. A complete
# record without it was written before: its vectors were computed with 13 MFCCs from
# min(n_mels, 40) mel bands, whatever it says, and it is read as such.
_HANDCRAFTED_VERSION = "handcrafted_version"
_V1_KEYS = frozenset(
    {
        *("kind", "n_fft", "win_length", "hop_length", "n_mels", "fmin", "fmax", "top_db"),
        *("n_mfcc", "deltas", "stats"),
    }
)


@dataclass(frozen=True)
class FeatureConfig(JsonConfig):
    """Feature settings. Window and hop in samples; ``fmin`` / ``fmax`` in Hz; ``top_db`` in dB.

    The defaults suit 16 kHz speech and sound events: a 25 ms window (400 samples) in a
    512-point FFT, a 10 ms hop, 64 mel bands (``mfcc``: 20 coefficients).

    ``n_mels`` and ``n_mfcc`` left unset take the kind's defaults: 64 and 20, except for
    ``handcrafted``, whose vector has always been made of 13 MFCCs from 40 mel bands (so the
    vectors of models trained before either could be set stay the same). Values given are
    honoured by every kind. Records of hand-crafted settings written before that (without
    ``handcrafted_version``) are read as what was computed then: 13 MFCCs from at most 40
    mel bands.
    """

    kind: FeatureKind = "logmel"
    n_fft: int = 512
    win_length: int | None = 400
    hop_length: int = 160
    n_mels: int | None = None  # None: the kind's default (see above); an int once made
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    n_mfcc: int | None = None  # None: the kind's default (see above)
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
        defaults = _HANDCRAFTED_DEFAULTS if self.kind == "handcrafted" else _SPECTRAL_DEFAULTS
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self.kind == "handcrafted":
            d[_HANDCRAFTED_VERSION] = 2
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        version = data.pop(_HANDCRAFTED_VERSION, None)
        if version not in (None, 2):
            raise ParameterError(
                f"{_HANDCRAFTED_VERSION} {version!r} is not one this earmark reads (2); upgrade"
            )
        if data.get("kind") == "handcrafted" and version is None and data.keys() >= _V1_KEYS:
            data["n_mfcc"] = _HANDCRAFTED_DEFAULTS["n_mfcc"]  # what was computed
            if data["n_mels"] is not None:
                data["n_mels"] = min(data["n_mels"], _HANDCRAFTED_DEFAULTS["n_mels"])
        return super().from_dict(data)

    @property
    def n_bins(self) -> int:
        """Feature bins per frame of the spectral kinds (what a network's input layer sees)."""
        if self.kind == "mfcc":
            return self.n_mfcc * (1 + self.deltas)
        if self.kind == "stft":
            return self.n_fft // 2 + 1
        return self.n_mels

    def handcrafted(self, sr: int) -> HandcraftedFeatures:
        """The hand-crafted extractor these settings describe at ``sr`` Hz (``n_mfcc`` and
        ``n_mels`` as they are: refused with :class:`ParameterError` if unusable)."""
        return HandcraftedFeatures(
            sr=sr,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mfcc=self.n_mfcc,
            n_mels=self.n_mels,
            stats=self.stats,
        )
