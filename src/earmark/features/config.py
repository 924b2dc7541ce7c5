"""Feature settings: which features, with which parameters (plain data, no torch).

:class:`FeatureConfig` round-trips through JSON and is stored with every trained model, so
prediction computes exactly the features training saw. Besides the spectral and hand-crafted
kinds, a kind may name a pretrained embedding frontend (:data:`earmark.features.pretrained.
FRONTENDS`: ``aisfx``, ``birdnet``): one vector per window, computed by that network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Self

from earmark.config import JsonConfig
from earmark.errors import ParameterError
from earmark.features.handcrafted import HandcraftedFeatures
from earmark.features.pretrained import FRONTENDS, is_frontend

__all__ = ["FEATURE_KINDS", "PRETRAINED_KINDS", "FeatureConfig"]

FeatureKind = Literal["waveform", "stft", "logmel", "mfcc", "handcrafted", "aisfx", "birdnet"]
#: The pretrained embedding frontends, by the registry's names.
PRETRAINED_KINDS: tuple[str, ...] = FRONTENDS
FEATURE_KINDS: tuple[str, ...] = ("waveform", "stft", "logmel", "mfcc", "handcrafted", *FRONTENDS)

# n_mels / n_mfcc when not given: the spectral kinds' 64 / 20, the hand-crafted vector's 40 / 13
# (the values it has always been computed with).
_SPECTRAL_DEFAULTS = {"n_mels": 64, "n_mfcc": 20}
_HANDCRAFTED_DEFAULTS = {
    "n_mels": HandcraftedFeatures.n_mels,
    "n_mfcc": HandcraftedFeatures.n_mfcc,
}
# The keys of every record written before ``handcrafted_version`` existed.
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
    honoured by every kind.

    ``handcrafted_version`` (recorded with hand-crafted settings) tells records apart: 2, the
    settings as they are; 1, settings recorded before ``n_mfcc`` and ``n_mels`` were honoured,
    whose vectors were computed with 13 MFCCs from at most 40 mel bands whatever the record
    says; they are made into what was computed (``n_mfcc=13``, ``n_mels=min(n_mels, 40)``,
    version 2). :meth:`from_dict` reads a complete hand-crafted record without the key (one
    written before it existed) as version 1.

    A pretrained kind (``aisfx``, ``birdnet``) has no settings of its own: the network
    fixes its spectrogram, so the other fields are set to their defaults (whatever was
    given: a model's default spectral settings merged in, say) and not recorded
    (:meth:`to_dict` is ``{"kind": name}``).
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
    handcrafted_version: int = 2

    def __post_init__(self) -> None:
        if self.kind not in FEATURE_KINDS:
            raise ParameterError(f"unknown feature kind {self.kind!r}; use one of {FEATURE_KINDS}")
        if is_frontend(self.kind):  # the network's own spectrogram: nothing to set
            for f in dataclasses.fields(self):
                if f.name != "kind":
                    object.__setattr__(self, f.name, f.default)
        if self.win_length is not None and not 1 <= self.win_length <= self.n_fft:
            raise ParameterError(f"need 1 <= win_length <= n_fft, got {self.win_length}")
        if self.hop_length < 1:
            raise ParameterError(f"hop_length must be >= 1 samples, got {self.hop_length}")
        object.__setattr__(self, "stats", tuple(self.stats))
        if self.handcrafted_version not in (1, 2):
            raise ParameterError(
                f"handcrafted_version must be 1 or 2, got {self.handcrafted_version!r} "
                "(a record from a newer earmark?)"
            )
        if self.handcrafted_version == 1 and self.kind == "handcrafted":  # what was computed
            object.__setattr__(self, "n_mfcc", _HANDCRAFTED_DEFAULTS["n_mfcc"])
            if self.n_mels is not None:
                object.__setattr__(
                    self, "n_mels", min(self.n_mels, _HANDCRAFTED_DEFAULTS["n_mels"])
                )
        object.__setattr__(self, "handcrafted_version", 2)
        defaults = _HANDCRAFTED_DEFAULTS if self.kind == "handcrafted" else _SPECTRAL_DEFAULTS
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def pretrained(self) -> bool:
        """Whether these are a pretrained frontend's embeddings (one vector per window)."""
        return is_frontend(self.kind)

    def to_dict(self) -> dict[str, Any]:
        if self.pretrained:
            return {"kind": self.kind}
        d = super().to_dict()
        if self.kind != "handcrafted":  # (the other kinds' records and cache keys as before)
            del d["handcrafted_version"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if (
            data.get("kind") == "handcrafted"
            and "handcrafted_version" not in data
            and data.keys() >= _V1_KEYS
        ):
            data = {**data, "handcrafted_version": 1}  # recorded before the key existed
        return super().from_dict(data)

    @property
    def n_bins(self) -> int:
        """Feature bins per frame of the spectral kinds (what a network's input layer sees);
        a pretrained frontend's embedding size."""
        if self.pretrained:
            from earmark.features.pretrained import info

            return info(self.kind).dim
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
