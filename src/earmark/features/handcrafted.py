"""Hand-crafted features: frame-level descriptors summarized into one named vector per clip.

The frame-level descriptors are the classical set (as in pyAudioAnalysis): zero-crossing
rate, RMS energy, energy entropy, spectral centroid, bandwidth, flatness, rolloff, flux,
contrast, chroma, and MFCCs with their first and second deltas. librosa computes them (the
reference implementation most users know); energy entropy and flux, which librosa lacks,
follow pyAudioAnalysis' definitions. One magnitude STFT is shared by all spectral ones.

Each descriptor row is summarized over frames by statistics (mean, std, min, max and
percentiles), giving names such as ``mfcc03_d1_mean`` or ``centroid_p90`` that a person can
read and a classical learner can use.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np

from earmark.config import JsonConfig
from earmark.errors import ParameterError

__all__ = ["HandcraftedFeatures", "handcrafted"]

_CHROMA_NAMES = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")
_STAT_FUNCS = {
    "mean": lambda x: x.mean(axis=1),
    "std": lambda x: x.std(axis=1),
    "min": lambda x: x.min(axis=1),
    "max": lambda x: x.max(axis=1),
}
_EPS = 1e-10
_CONTRAST_FMIN = 200.0  # Hz, librosa's default lowest contrast band edge


def _check_stat(name: str) -> None:
    if name in _STAT_FUNCS:
        return
    if name.startswith("p") and name[1:].isdigit() and 0 <= int(name[1:]) <= 100:
        return
    raise ParameterError(f"unknown statistic {name!r}; use mean, std, min, max or pNN (0..100)")


def _delta(x: np.ndarray, order: int) -> np.ndarray:
    """librosa.feature.delta with the window shrunk to fit short clips (few frames)."""
    n = x.shape[-1]
    width = min(9, n if n % 2 else n - 1)
    if width < 3:
        return np.zeros_like(x)
    return librosa.feature.delta(x, width=width, order=order, axis=-1)


@functools.lru_cache(maxsize=64)
def _empty_mel_bands(sr: int, n_fft: int, n_mels: int) -> int:
    """How many of librosa's ``n_mels`` mel filters catch no FFT bin (constant rows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about exactly this
        weights = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    return int(np.sum(weights.max(axis=1) <= 0))


def _contrast_bands(sr: int) -> int:
    # librosa requires every octave band below Nyquist: fmin * 2**n_bands < sr / 2.
    n = 6
    while n > 1 and _CONTRAST_FMIN * 2**n >= sr / 2:
        n -= 1
    return n


@dataclass(frozen=True)
class HandcraftedFeatures(JsonConfig):
    """Settings of the hand-crafted feature vector; call it on a clip to get the vector.

    ``n_fft`` and ``hop_length`` are in samples at ``sr`` Hz; ``n_mfcc`` MFCCs (each with its
    first and second delta) come from ``n_mels`` mel bands; ``stats`` are the summaries over
    frames (``mean``, ``std``, ``min``, ``max``, ``pNN`` percentiles). Settings that cannot give
    meaningful rows are refused with :class:`ParameterError` naming the setting: more MFCCs
    than mel bands, or so many mel bands for ``n_fft`` that some catch no FFT bin.
    """

    sr: int = 16_000
    n_fft: int = 512
    hop_length: int = 160
    n_mfcc: int = 13
    n_mels: int = 40
    entropy_blocks: int = 10
    stats: tuple[str, ...] = ("mean", "std", "min", "max", "p10", "p50", "p90")

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.n_fft < 16 or self.hop_length < 1:
            raise ParameterError(
                f"need sr > 0, n_fft >= 16, hop_length >= 1; got {self.sr}, {self.n_fft}, "
                f"{self.hop_length}"
            )
        if self.n_mfcc < 1 or self.n_mels < 1:
            raise ParameterError(
                f"need n_mfcc >= 1 and n_mels >= 1; got n_mfcc={self.n_mfcc}, n_mels={self.n_mels}"
            )
        if self.n_mfcc > self.n_mels:
            raise ParameterError(
                f"n_mfcc={self.n_mfcc} is more than n_mels={self.n_mels}: the MFCCs are a DCT "
                "of the mel bands, so there are at most as many; lower n_mfcc or raise n_mels"
            )
        empty = _empty_mel_bands(self.sr, self.n_fft, self.n_mels)
        if empty:
            raise ParameterError(
                f"n_mels={self.n_mels} is too many for n_fft={self.n_fft} at {self.sr} Hz: "
                f"{empty} mel bands would catch no FFT bin; lower n_mels or raise n_fft"
            )
        if not self.stats:
            raise ParameterError("stats must name at least one statistic")
        object.__setattr__(self, "stats", tuple(self.stats))
        for s in self.stats:
            _check_stat(s)

    @property
    def row_names(self) -> list[str]:
        """Names of the frame-level descriptors, in order."""
        rows = ["zcr", "rms", "energy_entropy", "centroid", "bandwidth", "flatness", "rolloff"]
        rows += ["flux"]
        rows += [f"contrast{i}" for i in range(_contrast_bands(self.sr) + 1)]
        rows += [f"chroma_{c}" for c in _CHROMA_NAMES]
        for suffix in ("", "_d1", "_d2"):
            rows += [f"mfcc{i:02d}{suffix}" for i in range(self.n_mfcc)]
        return rows

    @property
    def names(self) -> list[str]:
        """Names of the vector's entries: ``<descriptor>_<statistic>``, descriptor-major."""
        return [f"{row}_{stat}" for row in self.row_names for stat in self.stats]

    def frames(self, y: np.ndarray) -> np.ndarray:
        """Frame-level descriptors of mono audio ``y`` (``[samples]`` or ``[1, samples]``,
        at ``self.sr`` Hz): ``[len(row_names), frames]``, float64. Clips shorter than
        ``n_fft`` are zero-padded by the centred STFT, as librosa does."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
            return self._frames(y)

    def _frames(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=0)
        if y.ndim != 1 or y.size == 0:
            raise ParameterError(f"expected mono audio [samples], got shape {y.shape}")
        sr, n_fft, hop = self.sr, self.n_fft, self.hop_length
        S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
        power = S**2
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)
        rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)
        entropy = self._energy_entropy(y)
        centroid = librosa.feature.spectral_centroid(S=S, sr=sr, n_fft=n_fft)
        bandwidth = librosa.feature.spectral_bandwidth(S=S, sr=sr, n_fft=n_fft)
        flatness = librosa.feature.spectral_flatness(S=S)
        rolloff = librosa.feature.spectral_rolloff(S=S, sr=sr, n_fft=n_fft)
        flux = self._flux(S)
        contrast = librosa.feature.spectral_contrast(
            S=S, sr=sr, n_fft=n_fft, fmin=_CONTRAST_FMIN, n_bands=_contrast_bands(sr)
        )
        # tuning=0: no pitch-tuning estimate per clip (slow, and makes chroma clip-dependent).
        chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, tuning=0.0)
        mel = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=n_fft, n_mels=self.n_mels)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=self.n_mfcc)
        rows = [zcr, rms, entropy, centroid, bandwidth, flatness, rolloff, flux, contrast, chroma]
        rows += [mfcc, _delta(mfcc, 1), _delta(mfcc, 2)]
        n = S.shape[1]
        return np.concatenate([r[:, :n].astype(np.float64) for r in rows], axis=0)

    def _energy_entropy(self, y: np.ndarray) -> np.ndarray:
        """Entropy (bits) of the energy spread over ``entropy_blocks`` sub-blocks per frame:
        low for a click, high for a steady sound (pyAudioAnalysis' energy entropy)."""
        padded = np.pad(y, self.n_fft // 2)
        if padded.size < self.n_fft:
            padded = np.pad(padded, (0, self.n_fft - padded.size))
        frames = librosa.util.frame(padded, frame_length=self.n_fft, hop_length=self.hop_length)
        k = self.entropy_blocks
        sub = frames[: (self.n_fft // k) * k].reshape(k, -1, frames.shape[1])
        energy = np.square(sub).sum(axis=1)
        p = energy / (energy.sum(axis=0, keepdims=True) + _EPS)
        return -(p * np.log2(p + _EPS)).sum(axis=0, keepdims=True)

    @staticmethod
    def _flux(S: np.ndarray) -> np.ndarray:
        """Squared change of the sum-normalized magnitude spectrum between frames (0 first)."""
        norm = S / (S.sum(axis=0, keepdims=True) + _EPS)
        flux = np.square(np.diff(norm, axis=1)).sum(axis=0)
        return np.concatenate([[0.0], flux])[None, :]

    def summarize(self, frames: np.ndarray) -> np.ndarray:
        """Statistics of each descriptor row over frames: float32 ``[len(names)]``."""
        cols = []
        for stat in self.stats:
            if stat in _STAT_FUNCS:
                cols.append(_STAT_FUNCS[stat](frames))
            else:
                cols.append(np.percentile(frames, float(stat[1:]), axis=1))
        return np.stack(cols, axis=1).reshape(-1).astype(np.float32)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """The named feature vector of one clip: float32 ``[len(names)]``."""
        return self.summarize(self.frames(y))


def handcrafted(y: np.ndarray, sr: int, **settings: Any) -> tuple[np.ndarray, list[str]]:
    """The hand-crafted feature vector of mono ``y`` at ``sr`` Hz and the entries' names."""
    feats = HandcraftedFeatures(sr=sr, **settings)
    return feats(y), feats.names
