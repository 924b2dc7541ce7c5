"""Augmentation: waveform and spectrogram transforms, composable, batched, replayable.

Every transform works on a whole batch in torch (``[batch, channels, samples]`` for waveforms,
``[batch, channels, freq, frames]`` for spectrograms) with per-example random parameters, so
augmentation keeps up with training on a CPU. As in audiomentations, drawing the parameters
(:meth:`Transform.randomize_parameters`, from an explicit ``torch.Generator``) is separate
from applying them (:meth:`Transform.apply`): the same generator state replays the same
augmentation. Ranges are named with their unit (``min_snr_db``, ``max_shift_s``); the
probability ``p`` is per example.

Presets for ``--augment``: ``none``, ``default`` (shift, gain, noise, SpecAugment),
``strong`` (wider ranges, background noise when a folder is given, time stretch, pitch shift,
mixup) and ``robust``, for models that must work on audio recorded differently from their
training clips: speed or pitch, a synthetic room (:class:`Reverb`), coloured noise at 0-30 dB
SNR (and background noise from a folder), a random EQ or a telephone band
(:class:`Equalizer`, :class:`BandPass`), a low-bitrate MP3 or Opus round trip
(:class:`Codec`), SpecAugment and mixup, each on a minority of the examples. A recipe can
instead spell out every transform (:func:`from_spec`). :class:`Mixup` acts on examples and
targets together and is applied by the trainer.

Throughput of the waveform chains on one CPU thread, 64 one-second 16 kHz clips a batch
(``benchmarks/bench_augment.py``, a 2-core machine shared with other jobs): ``default``
about 10,000 clips/s, ``strong`` about 270, ``robust`` about 330; the per-example CPU work
(the codec at 9-17 ms a clip, librosa's pitch shift at 4-6 ms) dominates, hence their small
probabilities.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from earmark.errors import ParameterError

__all__ = [
    "BackgroundNoise",
    "BandPass",
    "Codec",
    "ColoredNoise",
    "Compose",
    "Equalizer",
    "Gain",
    "GaussianNoise",
    "Mixup",
    "OneOf",
    "PitchShift",
    "Reverb",
    "Shift",
    "SpecAugment",
    "Speed",
    "TimeStretch",
    "Transform",
    "check_spec",
    "from_spec",
    "preset",
]


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen).to(device)


def _check_range(name: str, lo: float, hi: float) -> None:
    if lo > hi:
        raise ParameterError(f"min_{name} must be <= max_{name}, got {lo} > {hi}")


class Transform(ABC):
    """A batched transform applied to each example with probability ``p``."""

    p: float = 1.0

    def _mask(self, n: int, gen: torch.Generator, device: torch.device) -> Tensor:
        return (torch.rand(n, generator=gen) < self.p).to(device)

    @abstractmethod
    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        """Draw this batch's parameters (on the CPU generator, moved to ``x``'s device)."""

    @abstractmethod
    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        """Apply drawn ``params`` to ``x``; shape and dtype are kept."""

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        return self.apply(x, self.randomize_parameters(x, generator))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


# -- waveform -------------------------------------------------------------------------------


@dataclass(repr=False)
class Shift(Transform):
    """Shift each example in time by up to ``max_shift_s`` seconds either way; ``rollover``
    wraps the audio around, otherwise the gap is zero-filled."""

    sample_rate: int
    max_shift_s: float = 0.1
    rollover: bool = False
    p: float = 0.5

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n = x.shape[0]
        limit = round(self.max_shift_s * self.sample_rate)
        shift = torch.randint(-limit, limit + 1, (n,), generator=generator)
        return {"shift": shift.to(x.device) * self._mask(n, generator, x.device)}

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        # A slice copy per shifted example: far cheaper than a gather over [batch, samples].
        out = x.clone() if self.rollover else torch.zeros_like(x)
        n = x.shape[-1]
        for i, k in enumerate(params["shift"].tolist()):
            if self.rollover:
                out[i] = torch.roll(x[i], k, dims=-1)
            elif k >= 0:
                out[i, :, k:] = x[i, :, : n - k]
            else:
                out[i, :, :k] = x[i, :, -k:]
        return out


@dataclass(repr=False)
class Gain(Transform):
    """Multiply each example by a gain drawn in ``[min_gain_db, max_gain_db]`` dB."""

    min_gain_db: float = -6.0
    max_gain_db: float = 6.0
    p: float = 0.5

    def __post_init__(self) -> None:
        _check_range("gain_db", self.min_gain_db, self.max_gain_db)

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n = x.shape[0]
        db = _uniform(n, self.min_gain_db, self.max_gain_db, generator, x.device)
        return {"gain_db": db * self._mask(n, generator, x.device)}

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        return x * (10.0 ** (params["gain_db"] / 20.0)).to(x.dtype)[:, None, None]


def _mix_at_snr(
    x: Tensor, noise: Tensor, snr_db: Tensor, on: Tensor, noise_power: Tensor | None = None
) -> Tensor:
    signal = x.pow(2).mean(dim=(1, 2)).clamp_min(1e-12)
    if noise_power is None:
        noise_power = noise.pow(2).mean(dim=(1, 2)).clamp_min(1e-12)
    scale = torch.sqrt(signal / (noise_power * 10.0 ** (snr_db / 10.0))) * on
    return x + noise * scale.to(x.dtype)[:, None, None]


_NOISE_STRIDE = 997  # samples between consecutive examples' windows into one noise buffer


@dataclass(repr=False)
class GaussianNoise(Transform):
    """Add white Gaussian noise at an SNR drawn in ``[min_snr_db, max_snr_db]`` dB.

    Drawing a fresh normal variate for every sample of a batch costs as much as the network
    on a CPU, so each example takes its own window of one random buffer (windows start
    :data:`_NOISE_STRIDE` samples apart): every example still gets white Gaussian noise.
    """

    min_snr_db: float = 15.0
    max_snr_db: float = 40.0
    p: float = 0.5

    def __post_init__(self) -> None:
        _check_range("snr_db", self.min_snr_db, self.max_snr_db)

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, c, length = x.shape
        span = length * c
        buffer = torch.randn(span + _NOISE_STRIDE * (n - 1), generator=generator)
        noise = buffer.as_strided((n, c, length), (_NOISE_STRIDE, length, 1))
        return {
            "snr_db": _uniform(n, self.min_snr_db, self.max_snr_db, generator, x.device),
            "on": self._mask(n, generator, x.device),
            "noise": noise.to(x.device, x.dtype),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        unit = torch.ones(x.shape[0], device=x.device)  # the buffer is standard normal
        return _mix_at_snr(x, params["noise"], params["snr_db"], params["on"], unit)


@dataclass(repr=False)
class BackgroundNoise(Transform):
    """Mix in a random stretch of a random file from ``folder`` (decoded once at
    ``sample_rate``, mono) at an SNR drawn in ``[min_snr_db, max_snr_db]`` dB."""

    folder: str | Path
    sample_rate: int
    min_snr_db: float = 5.0
    max_snr_db: float = 25.0
    p: float = 0.5
    _bank: list[Tensor] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        from earmark.audio import AUDIO_EXTENSIONS, load

        _check_range("snr_db", self.min_snr_db, self.max_snr_db)
        files = sorted(
            f for f in Path(self.folder).rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS
        )
        for f in files:
            y, _ = load(f, sr=self.sample_rate, max_duration=None)
            self._bank.append(torch.from_numpy(y[0]))
        if not self._bank:
            raise ParameterError(f"{self.folder}: no audio files for background noise")

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, length = x.shape[0], x.shape[-1]
        picks = torch.randint(0, len(self._bank), (n,), generator=generator).tolist()
        noise = torch.zeros(n, 1, length)
        for i, k in enumerate(picks):
            clip = self._bank[k]
            if clip.numel() >= length:
                start = int(torch.randint(0, clip.numel() - length + 1, (1,), generator=generator))
                noise[i, 0] = clip[start : start + length]
            else:  # loop a short noise file to the clip length
                noise[i, 0] = clip.repeat(length // clip.numel() + 1)[:length]
        return {
            "noise": noise.to(x.device, x.dtype),
            "snr_db": _uniform(n, self.min_snr_db, self.max_snr_db, generator, x.device),
            "on": self._mask(n, generator, x.device),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        return _mix_at_snr(x, params["noise"], params["snr_db"], params["on"])


def _per_example_numpy(x: Tensor, fn, values: Tensor, on: Tensor) -> Tensor:
    """Apply a numpy (librosa) function to the selected examples, keeping the length."""
    out = x.clone()
    n = x.shape[-1]
    for i in torch.nonzero(on).flatten().tolist():
        y = fn(x[i].detach().cpu().numpy(), float(values[i]))
        y = y[..., :n] if y.shape[-1] >= n else np.pad(y, [(0, 0), (0, n - y.shape[-1])])
        out[i] = torch.from_numpy(np.ascontiguousarray(y)).to(x)
    return out


@dataclass(repr=False)
class TimeStretch(Transform):
    """Change tempo by a rate in ``[min_rate, max_rate]`` without changing pitch (librosa's
    phase vocoder, per example on the CPU: a few ms a clip, so it is in ``strong`` only)."""

    min_rate: float = 0.85
    max_rate: float = 1.15
    p: float = 0.3

    def __post_init__(self) -> None:
        _check_range("rate", self.min_rate, self.max_rate)

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n = x.shape[0]
        return {
            "rate": _uniform(n, self.min_rate, self.max_rate, generator, torch.device("cpu")),
            "on": self._mask(n, generator, torch.device("cpu")),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        import librosa

        return _per_example_numpy(
            x, lambda y, r: librosa.effects.time_stretch(y, rate=r), params["rate"], params["on"]
        )


@dataclass(repr=False)
class PitchShift(Transform):
    """Shift pitch by ``[min_semitones, max_semitones]`` keeping the duration (librosa, per
    example on the CPU; in ``strong`` only)."""

    sample_rate: int
    min_semitones: float = -2.0
    max_semitones: float = 2.0
    p: float = 0.3

    def __post_init__(self) -> None:
        _check_range("semitones", self.min_semitones, self.max_semitones)

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, cpu = x.shape[0], torch.device("cpu")
        return {
            "steps": _uniform(n, self.min_semitones, self.max_semitones, generator, cpu),
            "on": self._mask(n, generator, cpu),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        import librosa

        sr = self.sample_rate
        return _per_example_numpy(
            x,
            lambda y, s: librosa.effects.pitch_shift(y, sr=sr, n_steps=s),
            params["steps"],
            params["on"],
        )


# -- recording conditions: speed, colored noise, channel (EQ, band-pass), room, codec -------


@dataclass(repr=False)
class Speed(Transform):
    """Play each example faster or slower by a factor in ``[min_factor, max_factor]``: pitch
    and tempo move together (a tape or sample-rate mismatch; ``1.1`` is 10 % faster and 10 %
    higher). Resampled with soxr per example on the CPU (under a millisecond a second of
    audio), then cut or zero-padded at the end to the clip length. :class:`PitchShift` keeps
    the duration; this is the cheap, artefact-free variant."""

    sample_rate: int
    min_factor: float = 0.9
    max_factor: float = 1.1
    p: float = 0.3

    def __post_init__(self) -> None:
        _check_range("factor", self.min_factor, self.max_factor)
        if self.min_factor <= 0:
            raise ParameterError(f"min_factor must be > 0, got {self.min_factor}")

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, cpu = x.shape[0], torch.device("cpu")
        return {
            "factor": _uniform(n, self.min_factor, self.max_factor, generator, cpu),
            "on": self._mask(n, generator, cpu),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        from earmark.audio import resample

        sr = self.sample_rate
        return _per_example_numpy(
            x, lambda y, f: resample(y, sr, sr / f), params["factor"], params["on"]
        )


# Spectral exponent of each noise colour: power density proportional to f ** -exponent.
_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def _names(kind: str, given: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    if isinstance(given, str):
        given = (given,)
    if not isinstance(given, Sequence):
        raise ParameterError(f"{kind} must be a list of names ({', '.join(known)}), got {given!r}")
    names = tuple(given)
    bad = [c for c in names if c not in known]
    if not names or bad:
        raise ParameterError(f"unknown {kind} {bad or list(names)}; use {', '.join(known)}")
    return names


@dataclass(repr=False)
class ColoredNoise(Transform):
    """Add white, pink (-3 dB/octave) or brown (-6 dB/octave) Gaussian noise, the colour
    drawn per example from ``colors``, at an SNR drawn in ``[min_snr_db, max_snr_db]`` dB:
    hiss and rumble for runs without a folder of recorded noise (:class:`BackgroundNoise`).

    The noise is shaped in the frequency domain (a random complex spectrum times
    ``f ** (-exponent / 2)``, one batched inverse FFT); below ``min_freq_hz`` the density is
    held flat and the DC bin is zero, so brown noise is an audible rumble, not an offset.
    """

    sample_rate: int
    min_snr_db: float = 0.0
    max_snr_db: float = 30.0
    colors: Sequence[str] = ("white", "pink", "brown")
    min_freq_hz: float = 20.0
    p: float = 0.4

    def __post_init__(self) -> None:
        _check_range("snr_db", self.min_snr_db, self.max_snr_db)
        self.colors = _names("noise colors", self.colors, tuple(_COLORS))
        if not 0 < self.min_freq_hz < self.sample_rate / 2:
            raise ParameterError(
                f"min_freq_hz must be in (0, {self.sample_rate / 2:g}) Hz, got {self.min_freq_hz}"
            )

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, c, length = x.shape
        on = self._mask(n, generator, torch.device("cpu"))
        k, bins = int(on.sum()), length // 2 + 1
        # Only the examples that get noise draw a spectrum: the normals cost most of the time.
        return {
            "on": on.to(x.device),
            "snr_db": _uniform(n, self.min_snr_db, self.max_snr_db, generator, x.device),
            "color": torch.randint(0, len(self.colors), (n,), generator=generator),
            "spectrum": torch.randn(k, c, bins, 2, generator=generator),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        on = params["on"]
        if not bool(on.any()):
            return x
        idx = torch.nonzero(on).flatten()
        length = x.shape[-1]
        freqs = torch.fft.rfftfreq(length, 1.0 / self.sample_rate).clamp_min(self.min_freq_hz)
        exponent = torch.tensor([_COLORS[c] for c in self.colors])[params["color"][idx.cpu()]]
        shape = (freqs / self.min_freq_hz)[None, :] ** (-exponent[:, None] / 2)  # [k, bins]
        shape[:, 0] = 0.0
        spectrum = torch.view_as_complex(params["spectrum"]) * shape[:, None, :]
        noise = torch.fft.irfft(spectrum, n=length).to(x.device, x.dtype)
        mixed = _mix_at_snr(x[idx], noise, params["snr_db"][idx], torch.ones_like(idx))
        out = x.clone()
        out[idx] = mixed
        return out


_FILTER_PAD_S = 0.05  # zero padding before a frequency-domain filter: no wrap-around


def _filter_selected(
    x: Tensor, on: Tensor, sample_rate: int, gain: Callable[[Tensor, Tensor], Tensor]
) -> Tensor:
    """Filter the examples selected by ``on`` with a zero-phase gain curve.

    ``gain(freqs, idx)`` returns the magnitude response ``[k, bins]`` of the selected
    examples ``idx`` on the rfft grid ``freqs`` (Hz, float64). One batched FFT instead of a
    per-example ``scipy.signal.sosfilt`` loop; zero phase keeps the output aligned with the
    input (the classifier sees the channel's colouring, not its group delay). The signal is
    zero-padded by :data:`_FILTER_PAD_S` so a filter's ringing does not wrap around.
    """
    if not bool(on.any()):
        return x
    from scipy.fft import next_fast_len

    idx = torch.nonzero(on).flatten()
    n = x.shape[-1]
    nfft = next_fast_len(n + round(_FILTER_PAD_S * sample_rate), real=True)
    freqs = torch.fft.rfftfreq(nfft, 1.0 / sample_rate, dtype=torch.float64)
    curve = gain(freqs, idx.cpu()).to(x.device, x.dtype)
    filtered = torch.fft.irfft(torch.fft.rfft(x[idx], n=nfft) * curve[:, None, :], n=nfft)
    out = x.clone()
    out[idx] = filtered[..., :n]
    return out


_PEAK, _LOW_SHELF, _HIGH_SHELF = 0, 1, 2
_SHELF_Q = 2**-0.5  # a shelf's slope: the steepest without an overshoot


def biquad_gain(
    kind: Tensor, freq_hz: Tensor, gain_db: Tensor, q: Tensor, freqs: Tensor, sample_rate: float
) -> Tensor:
    """Magnitude response on ``freqs`` (Hz) of cascaded RBJ-cookbook biquads: ``kind``
    (0 peaking, 1 low shelf, 2 high shelf), centre or corner ``freq_hz``, ``gain_db`` and
    ``q`` are ``[batch, bands]``; returns ``[batch, len(freqs)]`` (float64).

    The response of ``b0 + b1 z^-1 + b2 z^-2`` on the unit circle is evaluated in closed
    form (``|B|^2 = b0^2 + b1^2 + b2^2 + 2 (b0 b1 + b1 b2) cos w + 2 b0 b2 cos 2w``), so
    every band of every example is one vectorised torch expression.
    """
    kind, f0, g, q = (t.double()[..., None] for t in (kind, freq_hz, gain_db, q))
    a = 10.0 ** (g / 40.0)
    w0 = 2 * torch.pi * f0 / sample_rate
    cos0 = torch.cos(w0)
    shelf = kind != _PEAK
    alpha = torch.sin(w0) / (2 * torch.where(shelf, torch.full_like(q, _SHELF_Q), q))
    sq = 2 * torch.sqrt(a) * alpha
    ap, am = a + 1, a - 1
    sign = torch.where(kind == _HIGH_SHELF, -1.0, 1.0)  # a high shelf mirrors a low one
    # peaking
    pb = (1 + alpha * a, -2 * cos0, 1 - alpha * a)
    pa = (1 + alpha / a, -2 * cos0, 1 - alpha / a)
    # shelves (low: sign +1, high: sign -1)
    sb = (
        a * (ap - sign * am * cos0 + sq),
        2 * sign * a * (am - sign * ap * cos0),
        a * (ap - sign * am * cos0 - sq),
    )
    sa = (
        ap + sign * am * cos0 + sq,
        -2 * sign * (am + sign * ap * cos0),
        ap + sign * am * cos0 - sq,
    )
    b = [torch.where(shelf, s, p) for s, p in zip(sb, pb, strict=True)]
    den = [torch.where(shelf, s, p) for s, p in zip(sa, pa, strict=True)]
    w = 2 * torch.pi * freqs.double() / sample_rate
    c1, c2 = torch.cos(w), torch.cos(2 * w)

    def power(c: list[Tensor]) -> Tensor:
        return (
            c[0] ** 2
            + c[1] ** 2
            + c[2] ** 2
            + 2 * (c[0] * c[1] + c[1] * c[2]) * c1
            + 2 * (c[0] * c[2]) * c2
        )

    return torch.sqrt((power(b) / power(den)).prod(dim=1))


def butterworth_bandpass_gain(
    low_hz: Tensor, high_hz: Tensor, order: int, freqs: Tensor, sample_rate: float
) -> Tensor:
    """Magnitude response on ``freqs`` (Hz) of an ``order``-th order Butterworth high-pass at
    ``low_hz`` cascaded with one low-pass at ``high_hz`` (``[batch]`` edges, ``[batch,
    len(freqs)]`` out, float64), as :func:`scipy.signal.butter` designs them (bilinear
    transform): ``|H|^2 = 1 / (1 + (tan(pi f / fs) / tan(pi fc / fs)) ** (2 order))``."""
    t = torch.tan(torch.pi * freqs.double().clamp(max=sample_rate / 2) / sample_rate)[None, :]
    t = t.clamp_min(1e-12)
    tl = torch.tan(torch.pi * low_hz.double() / sample_rate)[:, None]
    th = torch.tan(torch.pi * high_hz.double() / sample_rate)[:, None]
    high_pass = 1 / (1 + (tl / t) ** (2 * order))
    low_pass = 1 / (1 + (t / th) ** (2 * order))
    return torch.sqrt(high_pass * low_pass)


def _log_uniform(
    shape: tuple[int, ...], lo: float, hi: float, generator: torch.Generator
) -> Tensor:
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return torch.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * u)


@dataclass(repr=False)
class Equalizer(Transform):
    """A random equaliser: ``bands`` biquads per example, each a peaking filter (half the
    time) or a low or high shelf, with a gain in ``[min_gain_db, max_gain_db]`` dB, a
    centre frequency log-uniform in ``[min_freq_hz, max_freq_hz]`` (capped below Nyquist)
    and, for peaks, a Q log-uniform in ``[min_q, max_q]``: microphones, speakers and rooms
    colour the spectrum. Applied as a zero-phase gain curve (:func:`biquad_gain`), batched."""

    sample_rate: int
    bands: int = 3
    min_gain_db: float = -12.0
    max_gain_db: float = 12.0
    min_freq_hz: float = 60.0
    max_freq_hz: float = 6000.0
    min_q: float = 0.5
    max_q: float = 4.0
    p: float = 0.3

    def __post_init__(self) -> None:
        _check_range("gain_db", self.min_gain_db, self.max_gain_db)
        _check_range("freq_hz", self.min_freq_hz, self.max_freq_hz)
        _check_range("q", self.min_q, self.max_q)
        if self.min_q <= 0 or self.min_freq_hz <= 0 or self.min_freq_hz >= self.sample_rate / 2:
            raise ParameterError(
                f"Equalizer needs min_q > 0 and 0 < min_freq_hz < {self.sample_rate / 2:g} Hz, "
                f"got min_q={self.min_q}, min_freq_hz={self.min_freq_hz}"
            )
        if not isinstance(self.bands, int) or self.bands < 1:
            raise ParameterError(f"bands must be a whole number >= 1, got {self.bands!r}")

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        shape = (x.shape[0], self.bands)
        top = min(self.max_freq_hz, 0.45 * self.sample_rate)
        return {
            # 0, 1 -> peaking, 2 -> low shelf, 3 -> high shelf: half the bands are peaks
            "kind": (torch.randint(0, 4, shape, generator=generator) - 1).clamp(min=0),
            "freq_hz": _log_uniform(shape, self.min_freq_hz, top, generator),
            "gain_db": self.min_gain_db
            + (self.max_gain_db - self.min_gain_db) * torch.rand(shape, generator=generator),
            "q": _log_uniform(shape, self.min_q, self.max_q, generator),
            "on": self._mask(x.shape[0], generator, x.device),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        def gain(freqs: Tensor, idx: Tensor) -> Tensor:
            sel = [params[k][idx] for k in ("kind", "freq_hz", "gain_db", "q")]
            return biquad_gain(*sel, freqs, self.sample_rate)

        return _filter_selected(x, params["on"], self.sample_rate, gain)


@dataclass(repr=False)
class BandPass(Transform):
    """A band-pass channel (a telephone line, a small loudspeaker): an ``order``-th order
    Butterworth high-pass at an edge drawn in ``[min_low_hz, max_low_hz]`` and low-pass at
    one drawn in ``[min_high_hz, max_high_hz]`` (defaults: the 300-3400 Hz telephone band,
    jittered), 24 dB/octave each at order 4. Applied as a zero-phase gain curve
    (:func:`butterworth_bandpass_gain`), batched."""

    sample_rate: int
    min_low_hz: float = 200.0
    max_low_hz: float = 400.0
    min_high_hz: float = 3000.0
    max_high_hz: float = 3800.0
    order: int = 4
    p: float = 0.3

    def __post_init__(self) -> None:
        _check_range("low_hz", self.min_low_hz, self.max_low_hz)
        _check_range("high_hz", self.min_high_hz, self.max_high_hz)
        nyquist = self.sample_rate / 2
        if not (self.min_low_hz > 0 and self.max_low_hz < self.min_high_hz):
            raise ParameterError(
                "BandPass edges must satisfy 0 < min_low_hz and max_low_hz < min_high_hz, got "
                f"{self.min_low_hz}-{self.max_low_hz} Hz and {self.min_high_hz}-"
                f"{self.max_high_hz} Hz"
            )
        if self.max_high_hz >= nyquist:
            raise ParameterError(
                f"max_high_hz must be below the Nyquist frequency {nyquist:g} Hz, "
                f"got {self.max_high_hz}"
            )
        if not isinstance(self.order, int) or not 1 <= self.order <= 12:
            raise ParameterError(f"order must be a whole number in 1..12, got {self.order!r}")

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, cpu = x.shape[0], torch.device("cpu")
        return {
            "low_hz": _uniform(n, self.min_low_hz, self.max_low_hz, generator, cpu),
            "high_hz": _uniform(n, self.min_high_hz, self.max_high_hz, generator, cpu),
            "on": self._mask(n, generator, x.device),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        def gain(freqs: Tensor, idx: Tensor) -> Tensor:
            low, high = params["low_hz"][idx], params["high_hz"][idx]
            return butterworth_bandpass_gain(low, high, self.order, freqs, self.sample_rate)

        return _filter_selected(x, params["on"], self.sample_rate, gain)


_EARLY_REFLECTIONS = 6  # sparse taps in the first _EARLY_S after the pre-delay
_EARLY_S = 0.03


@dataclass(repr=False)
class Reverb(Transform):
    """Put each example in a synthetic room: convolve it with an impulse response made of
    the direct sound, a pre-delay of up to ``max_predelay_s``, a few early reflections and
    a tail of exponentially decaying Gaussian noise that falls by 60 dB in an RT60 drawn in
    ``[min_rt60_s, max_rt60_s]``; the direct-to-reverberant energy ratio is drawn in
    ``[min_drr_db, max_drr_db]`` dB (0 dB: as much room as direct sound).

    FFT convolution, batched; the direct path is the response's first sample, so the output
    is aligned with the input, its length is kept (the tail past the clip is cut) and its
    RMS level is the input's.
    """

    sample_rate: int
    min_rt60_s: float = 0.1
    max_rt60_s: float = 1.0
    min_drr_db: float = -3.0
    max_drr_db: float = 12.0
    max_predelay_s: float = 0.02
    p: float = 0.3

    def __post_init__(self) -> None:
        _check_range("rt60_s", self.min_rt60_s, self.max_rt60_s)
        _check_range("drr_db", self.min_drr_db, self.max_drr_db)
        if self.min_rt60_s <= 0 or self.max_predelay_s < 0:
            raise ParameterError(
                f"Reverb needs min_rt60_s > 0 and max_predelay_s >= 0, got "
                f"{self.min_rt60_s} and {self.max_predelay_s}"
            )

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, length = x.shape[0], x.shape[-1]
        cpu = torch.device("cpu")
        on = self._mask(n, generator, cpu)
        k = int(on.sum())
        rt60 = _uniform(k, self.min_rt60_s, self.max_rt60_s, generator, cpu)
        predelay = _uniform(k, 0.0, self.max_predelay_s, generator, cpu)
        # the response is as long as the slowest room of the batch needs, never over the clip
        span = float((predelay + rt60).max()) if k else 0.0
        taps = min(length, int(np.ceil(span * self.sample_rate)) + 1)
        return {
            "on": on,
            "rt60_s": rt60,
            "predelay_s": predelay,
            "drr_db": _uniform(k, self.min_drr_db, self.max_drr_db, generator, cpu),
            "tail": torch.randn(k, taps, generator=generator),
            "early_s": torch.rand(k, _EARLY_REFLECTIONS, generator=generator) * _EARLY_S,
            "early_gain": torch.rand(k, _EARLY_REFLECTIONS, generator=generator) * 2 - 1,
        }

    def impulse_responses(self, params: dict[str, Any]) -> Tensor:
        """The ``[k, taps]`` room responses of the selected examples (direct sound at 0)."""
        sr = self.sample_rate
        taps = params["tail"].shape[1]
        t = torch.arange(taps, dtype=torch.float64)[None, :] / sr
        start = params["predelay_s"].double()[:, None] + 1.0 / sr  # after the direct sound
        decay = 10.0 ** (-3.0 * (t - start) / params["rt60_s"].double()[:, None])
        reverb = torch.where(t >= start, params["tail"].double() * decay, 0.0)
        pos = ((start + params["early_s"].double()) * sr).round().long().clamp(max=taps - 1)
        env = 10.0 ** (-3.0 * params["early_s"].double() / params["rt60_s"].double()[:, None])
        # early reflections: a few discrete echoes, stronger than the diffuse tail around them
        reverb.scatter_add_(1, pos, params["early_gain"].double() * env * 3.0)
        energy = reverb.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-20)
        target = 10.0 ** (-params["drr_db"].double()[:, None] / 10.0)  # direct energy is 1
        h = reverb * torch.sqrt(target / energy)
        h[:, 0] += 1.0
        return h.float()

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        on = params["on"].to(x.device)
        if not bool(on.any()):
            return x
        from scipy.fft import next_fast_len

        idx = torch.nonzero(on).flatten()
        n = x.shape[-1]
        h = self.impulse_responses(params).to(x.device)
        nfft = next_fast_len(n + h.shape[-1] - 1, real=True)
        dry = x[idx]
        wet = torch.fft.irfft(
            torch.fft.rfft(dry, n=nfft) * torch.fft.rfft(h, n=nfft)[:, None, :], n=nfft
        )[..., :n]
        rms_dry = dry.pow(2).mean(dim=(1, 2), keepdim=True)
        rms_wet = wet.pow(2).mean(dim=(1, 2), keepdim=True).clamp_min(1e-20)
        out = x.clone()
        out[idx] = (wet * torch.sqrt(rms_dry / rms_wet)).to(x.dtype)
        return out


_CODEC_RATES = (16_000, 12_000, 8_000)  # rates both MP3 (MPEG-2/2.5) and Opus encode at
_CODECS = ("mp3", "opus")
_CODEC_PEAK = 0.5  # each example is encoded at this peak level (no clipping), then restored


def _codec_rate(sample_rate: int) -> int:
    return next(r for r in _CODEC_RATES if r <= sample_rate)


def _mp3_round_trip(y: np.ndarray, rate: int, kbps: int) -> tuple[np.ndarray, int]:
    """Encode mono ``y`` to constant-bitrate MP3 in memory with libsndfile (LAME) and decode.

    libsndfile sets the bitrate from ``compression_level`` linearly between its bounds for
    the MPEG version (8-160 kbit/s at 16-24 kHz, 8-64 at 8-12 kHz): inverted here, with a
    quarter kbit/s to spare against rounding (LAME snaps to the nearest legal bitrate)."""
    import io

    import soundfile as sf

    top = 160.0 if rate >= 16_000 else 64.0
    level = (top - kbps - 0.25) / (top - 8.0)
    buf = io.BytesIO()
    sf.write(
        buf,
        y,
        rate,
        format="MP3",
        subtype="MPEG_LAYER_III",
        compression_level=min(max(level, 0.0), 1.0),
        bitrate_mode="CONSTANT",
    )
    buf.seek(0)
    out, out_rate = sf.read(buf, dtype="float32")
    return out.reshape(-1), out_rate


def _opus_round_trip(y: np.ndarray, rate: int, kbps: int) -> tuple[np.ndarray, int]:
    """Encode mono ``y`` with libopus (PyAV's bundled FFmpeg) at ``kbps`` and decode (FFmpeg's
    Opus decoders always deliver 48 kHz), packet by packet in memory, no container."""
    from fractions import Fraction

    import av

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = rate, "mono", "flt"
    enc.bit_rate = int(kbps * 1000)
    enc.time_base = Fraction(1, rate)
    enc.open()
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate, dec.layout = 48_000, "mono"
    if enc.extradata:
        dec.extradata = enc.extradata
    size = enc.frame_size
    padded = np.zeros(-(-len(y) // size) * size, dtype=np.float32)
    padded[: len(y)] = y
    packets = []
    for start in range(0, len(padded), size):
        frame = av.AudioFrame.from_ndarray(
            padded[None, start : start + size], format="flt", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, start, enc.time_base
        packets += enc.encode(frame)
    packets += enc.encode(None)
    frames = [f.to_ndarray().reshape(-1) for p in packets for f in dec.decode(p)]
    frames += [f.to_ndarray().reshape(-1) for f in dec.decode(None)]
    if not frames:
        return np.zeros(0, np.float32), 48_000
    decoded = np.concatenate(frames)
    if decoded.dtype.kind == "i":  # FFmpeg's libopus decoder delivers 16-bit integers
        return decoded.astype(np.float32) / -np.iinfo(decoded.dtype).min, 48_000
    return decoded.astype(np.float32), 48_000


_ROUND_TRIP = {"mp3": _mp3_round_trip, "opus": _opus_round_trip}


def _codec_chain(y: np.ndarray, codec: str, sample_rate: int, kbps: int) -> np.ndarray:
    """``y`` (mono, ``sample_rate``) through the codec at its rate and back, not yet aligned."""
    from earmark.audio import resample

    rate = _codec_rate(sample_rate)
    short = round(0.05 * sample_rate) - len(y)  # a few samples may resample to none at all
    if short > 0:
        y = np.concatenate([y, np.zeros(short, y.dtype)])  # the caller cuts to its length
    low = resample(y[None, :], sample_rate, rate)[0]
    decoded, out_rate = _ROUND_TRIP[codec](low, rate, kbps)
    return resample(decoded[None, :], out_rate, sample_rate)[0]


@functools.lru_cache(maxsize=512)
def codec_delay(codec: str, sample_rate: int, kbps: int) -> int:
    """Samples (at ``sample_rate``) by which the ``codec`` round trip at ``kbps`` delays its
    input: measured once per setting by cross-correlating a probe (a 0.5 s chirp from 200 to
    3000 Hz, in band for every codec rate) with its round trip, over lags -50..+250 ms.

    Encoder priming, decoder look-ahead and gapless metadata differ by codec, bitrate and
    library version (libsndfile drops the LAME tag when it does not fit a low-bitrate frame:
    1105 samples late at 16 kHz instead of 0), so they are measured, not tabulated."""
    from scipy.signal import chirp, correlate

    t = np.arange(sample_rate // 2) / sample_rate
    probe = (0.5 * chirp(t, 200.0, t[-1], 3000.0) * np.hanning(len(t))).astype(np.float32)
    out = _codec_chain(probe, codec, sample_rate, kbps)
    before, after = round(0.05 * sample_rate), round(0.25 * sample_rate)
    # xcorr[lag] = sum_t out[t + lag] probe[t]; full mode puts lag 0 at len(probe) - 1
    xcorr = correlate(out, probe, mode="full", method="fft")
    zero = len(probe) - 1
    lags = np.arange(-before, after + 1)
    valid = (zero + lags >= 0) & (zero + lags < len(xcorr))
    return int(lags[valid][np.argmax(xcorr[zero + lags[valid]])])


def _check_codec(codec: str) -> None:
    """Raise :class:`ParameterError` if this machine cannot run ``codec`` (one line)."""
    if codec == "mp3":
        import inspect

        import soundfile as sf

        has_level = "bitrate_mode" in inspect.signature(sf.write).parameters
        if "MP3" not in sf.available_formats() or not has_level:
            raise ParameterError(
                "Codec mp3 needs soundfile >= 0.13 with libsndfile >= 1.1 (MP3 encoding); "
                f"this is soundfile {sf.__version__}, libsndfile {sf.__libsndfile_version__}"
            )
    else:
        try:
            import av
        except ImportError:
            raise ParameterError("Codec opus needs PyAV (pip install av)") from None
        if "libopus" not in av.codecs_available:
            raise ParameterError("Codec opus: this PyAV build has no libopus encoder")


@dataclass(repr=False)
class Codec(Transform):
    """A low-bitrate lossy round trip per example: one of ``codecs`` (``mp3``: LAME through
    libsndfile; ``opus``: libopus through PyAV) at a bitrate drawn in ``[min_kbps,
    max_kbps]`` kbit/s (whole numbers, 8-64), at 16 kHz (8 or 12 kHz for slower clips;
    resampled with soxr down and back). The codec's delay is measured
    (:func:`codec_delay`) and removed: the output is aligned with the input and as long.

    Runs on the CPU, one clip at a time: about 10-20 ms a second of audio (see the
    ``robust`` preset), hence a small default ``p``. Each example is encoded at a peak of
    :data:`_CODEC_PEAK` and scaled back, so loud clips do not clip and quiet ones are not
    drowned in the codec's noise floor.
    """

    sample_rate: int
    codecs: Sequence[str] = _CODECS
    min_kbps: int = 8
    max_kbps: int = 32
    p: float = 0.15

    def __post_init__(self) -> None:
        self.codecs = _names("codecs", self.codecs, _CODECS)
        _check_range("kbps", self.min_kbps, self.max_kbps)
        if not (self.min_kbps >= 8 and self.max_kbps <= 64):
            raise ParameterError(
                f"Codec bitrates must be within 8-64 kbit/s, got {self.min_kbps}-{self.max_kbps}"
            )
        if self.sample_rate < _CODEC_RATES[-1]:
            raise ParameterError(
                f"Codec needs clips at >= {_CODEC_RATES[-1]} Hz, got {self.sample_rate} Hz"
            )
        for codec in self.codecs:
            _check_codec(codec)

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n = x.shape[0]
        lo, hi = int(np.ceil(self.min_kbps)), int(np.floor(self.max_kbps))
        return {
            "codec": torch.randint(0, len(self.codecs), (n,), generator=generator),
            "kbps": torch.randint(lo, hi + 1, (n,), generator=generator),
            "on": self._mask(n, generator, torch.device("cpu")),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        out = x.clone()
        n = x.shape[-1]
        for i in torch.nonzero(params["on"]).flatten().tolist():
            codec, kbps = self.codecs[int(params["codec"][i])], int(params["kbps"][i])
            delay = codec_delay(codec, self.sample_rate, kbps)
            for c, y in enumerate(x[i].detach().cpu().numpy()):
                peak = float(np.abs(y).max())
                if peak == 0.0:
                    continue  # silence stays silence
                z = _codec_chain(y * (_CODEC_PEAK / peak), codec, self.sample_rate, kbps)
                z = z[delay:] if delay >= 0 else np.concatenate([np.zeros(-delay, z.dtype), z])
                z = z[:n] if len(z) >= n else np.pad(z, (0, n - len(z)))
                out[i, c] = torch.from_numpy(z * (peak / _CODEC_PEAK)).to(x)
        return out


# -- spectrogram ----------------------------------------------------------------------------


@dataclass(repr=False)
class SpecAugment(Transform):
    """SpecAugment masks on ``[batch, channels, freq, frames]``: ``freq_masks`` bands of up
    to ``max_freq_width`` bins and ``time_masks`` spans of up to ``max_time_width`` frames,
    filled with each example's mean (a zero in dB would be loud, not silent)."""

    freq_masks: int = 2
    max_freq_width: int = 8
    time_masks: int = 2
    max_time_width: int = 10
    p: float = 0.5

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n, f, t = x.shape[0], x.shape[-2], x.shape[-1]

        def spans(count: int, width: int, size: int) -> tuple[Tensor, Tensor]:
            w = torch.randint(0, max(1, min(width, size)) + 1, (n, count), generator=generator)
            start = (torch.rand(n, count, generator=generator) * (size - w + 1)).long()
            return start.to(x.device), w.to(x.device)

        return {
            "freq": spans(self.freq_masks, self.max_freq_width, f),
            "time": spans(self.time_masks, self.max_time_width, t),
            "on": self._mask(n, generator, x.device),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        f, t = x.shape[-2], x.shape[-1]

        def mask(spans: tuple[Tensor, Tensor], size: int) -> Tensor:
            start, width = spans
            pos = torch.arange(size, device=x.device)[None, None, :]
            hit = (pos >= start[..., None]) & (pos < (start + width)[..., None])
            return hit.any(dim=1)  # [B, size]

        masked = (
            mask(params["freq"], f)[:, None, :, None] | mask(params["time"], t)[:, None, None, :]
        )
        masked = masked & params["on"][:, None, None, None]
        fill = x.mean(dim=(1, 2, 3), keepdim=True)
        return torch.where(masked, fill, x)


@dataclass(repr=False)
class Mixup(Transform):
    """Mix each example with another of the batch, weight ``lambda ~ Beta(alpha, alpha)``;
    targets are mixed the same way (:meth:`mix`). Applied by the trainer after features."""

    alpha: float = 0.2
    p: float = 1.0

    def randomize_parameters(self, x: Tensor, generator: torch.Generator) -> dict[str, Any]:
        n = x.shape[0]
        # torch's Beta takes no generator: draw it with numpy, seeded from the generator.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        lam = torch.from_numpy(np.random.default_rng(seed).beta(self.alpha, self.alpha, n))
        lam = torch.maximum(lam, 1 - lam).float()  # the example keeps the larger share
        lam = torch.where(self._mask(n, generator, torch.device("cpu")), lam, torch.ones(n))
        return {
            "lam": lam.to(x.device),
            "perm": torch.randperm(n, generator=generator).to(x.device),
        }

    def apply(self, x: Tensor, params: dict[str, Any]) -> Tensor:
        lam = params["lam"].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
        return lam * x + (1 - lam) * x[params["perm"]]

    def mix(self, x: Tensor, targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Mixed examples and mixed (soft) targets ``[batch, classes]``."""
        params = self.randomize_parameters(x, generator)
        return self.apply(x, params), self.apply(targets, params)


# -- composition -----------------------------------------------------------------------------


Augmenter = Callable[..., Tensor]  # called as f(x, generator=...)


class Compose:
    """Apply ``transforms`` (transforms or other containers) in order."""

    def __init__(self, transforms: Sequence[Transform | Compose | OneOf]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        for t in self.transforms:
            x = t(x, generator=generator)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class OneOf:
    """Apply one of ``transforms``, chosen per batch, with probability ``p`` per batch."""

    def __init__(self, transforms: Sequence[Transform | Compose | OneOf], p: float = 1.0) -> None:
        if not transforms:
            raise ParameterError("OneOf needs at least one transform")
        self.transforms = list(transforms)
        self.p = p

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        if float(torch.rand(1, generator=generator)) >= self.p:
            return x
        k = int(torch.randint(0, len(self.transforms), (1,), generator=generator))
        return self.transforms[k](x, generator=generator)

    def __repr__(self) -> str:
        return f"OneOf({self.transforms!r}, p={self.p})"


@dataclass
class Augmentation:
    """What the trainer applies: waveform transforms, spectrogram transforms, mixup."""

    waveform: Compose
    spectrogram: Compose
    mixup: Mixup | None = None


def preset(name: str, *, sample_rate: int, background: str | Path | None = None) -> Augmentation:
    """The ``none`` / ``default`` / ``strong`` / ``robust`` augmentation for clips at
    ``sample_rate`` Hz (``background``: a folder of noise files, for ``strong`` and
    ``robust``)."""
    if name == "none":
        return Augmentation(Compose([]), Compose([]))
    if name == "default":
        return Augmentation(
            Compose(
                [Shift(sample_rate, max_shift_s=0.1), Gain(-6.0, 6.0), GaussianNoise(15.0, 40.0)]
            ),
            Compose([SpecAugment()]),
        )
    if name == "strong":
        wave: list[Transform | OneOf] = [
            Shift(sample_rate, max_shift_s=0.2, p=0.7),
            Gain(-10.0, 10.0, p=0.7),
            OneOf(
                [TimeStretch(0.85, 1.15, p=1.0), PitchShift(sample_rate, -2.0, 2.0, p=1.0)], p=0.3
            ),
            GaussianNoise(5.0, 30.0, p=0.6),
        ]
        if background is not None:
            wave.append(BackgroundNoise(background, sample_rate, 0.0, 20.0, p=0.5))
        spec = Compose(
            [SpecAugment(freq_masks=2, max_freq_width=12, time_masks=3, max_time_width=15, p=0.8)]
        )
        return Augmentation(Compose(wave), spec, Mixup(alpha=0.4, p=0.5))
    if name == "robust":
        return _robust(sample_rate, background)
    raise ParameterError(f"unknown augmentation preset {name!r}; use {', '.join(PRESETS)}")


def _robust(sample_rate: int, background: str | Path | None) -> Augmentation:
    """New recording conditions, in the order a sound meets them: the source (speed or
    pitch), the room (reverb), the noise in it, the channel (a random EQ or a telephone
    band), the codec. Each condition touches 15-40 % of the examples (per example; a
    :class:`OneOf` picks per batch which of its two it uses), so about one example in six
    gets none of them and the clean condition stays well represented."""
    sr = sample_rate
    wave: list[Transform | OneOf] = [
        Shift(sr, max_shift_s=0.1, p=0.5),
        Gain(-10.0, 10.0, p=0.5),
        OneOf([Speed(sr, 0.9, 1.1, p=0.3), PitchShift(sr, -2.0, 2.0, p=0.3)]),
        Reverb(sr, 0.1, 1.0, p=0.3),
        ColoredNoise(sr, 0.0, 30.0, p=0.4),
    ]
    if background is not None:
        wave.append(BackgroundNoise(background, sr, 0.0, 20.0, p=0.4))
    if sr >= 8_000:  # a telephone band and a codec need at least 8 kHz audio
        wave += [OneOf([Equalizer(sr, p=0.3), BandPass(sr, p=0.3)]), Codec(sr, p=0.15)]
    else:
        wave.append(Equalizer(sr, p=0.3))
    spec = Compose(
        [SpecAugment(freq_masks=2, max_freq_width=10, time_masks=2, max_time_width=12, p=0.5)]
    )
    return Augmentation(Compose(wave), spec, Mixup(alpha=0.3, p=0.3))


PRESETS = ("none", "default", "strong", "robust")

_BY_NAME: dict[str, type] = {
    c.__name__: c
    for c in (
        Shift,
        Gain,
        GaussianNoise,
        BackgroundNoise,
        TimeStretch,
        PitchShift,
        Speed,
        ColoredNoise,
        Equalizer,
        BandPass,
        Reverb,
        Codec,
        SpecAugment,
    )
}
_NEEDS_RATE = {
    "Shift",
    "BackgroundNoise",
    "PitchShift",
    "Speed",
    "ColoredNoise",
    "Equalizer",
    "BandPass",
    "Reverb",
    "Codec",
}
_WAVEFORM = {name for name in _BY_NAME if name != "SpecAugment"}


def _build(
    item: dict[str, Any], sample_rate: int, where: str, background: str | Path | None = None
) -> Transform | OneOf:
    if not isinstance(item, dict) or "name" not in item:
        raise ParameterError(f"augment {where}: each transform is a mapping with a 'name'")
    args = {k: v for k, v in item.items() if k != "name"}
    name = item["name"]
    if name == "OneOf":
        inner = [_build(t, sample_rate, where, background) for t in args.pop("transforms", [])]
        return OneOf(inner, **args)
    allowed = _WAVEFORM if where == "waveform" else {"SpecAugment"}
    if name not in allowed:
        raise ParameterError(
            f"augment {where}: unknown transform {name!r}; use {', '.join(sorted(allowed))}"
            + (" or OneOf" if where == "waveform" else "")
        )
    if name in _NEEDS_RATE:
        args["sample_rate"] = sample_rate
    if name == "BackgroundNoise" and "folder" not in args:
        if background is None:
            raise ParameterError("augment: BackgroundNoise needs a folder (or --background)")
        args["folder"] = background  # the training run's --background
    try:
        return _BY_NAME[name](**args)
    except TypeError as exc:
        raise ParameterError(f"augment {where}: bad settings for {name}: {exc}") from None


def from_spec(
    spec: str | dict[str, Any], *, sample_rate: int, background: str | Path | None = None
) -> Augmentation:
    """A preset name, or full control as plain data (a recipe's ``train.augment``; a
    ``BackgroundNoise`` without a ``folder`` mixes from ``background``)::

    waveform: [{name: Shift, max_shift_s: 0.1, p: 0.5},
               {name: OneOf, p: 0.3, transforms: [{name: TimeStretch}, {name: PitchShift}]}]
    spectrogram: [{name: SpecAugment, freq_masks: 2, max_freq_width: 8}]
    mixup: {alpha: 0.2, p: 0.5}
    """
    if isinstance(spec, str):
        return preset(spec, sample_rate=sample_rate, background=background)
    unknown = set(spec) - {"waveform", "spectrogram", "mixup"}
    if unknown:
        raise ParameterError(f"augment: unknown sections {sorted(unknown)}")
    wave = [_build(t, sample_rate, "waveform", background) for t in spec.get("waveform", [])]
    spectro = [_build(t, sample_rate, "spectrogram") for t in spec.get("spectrogram", [])]
    mix = spec.get("mixup")
    return Augmentation(Compose(wave), Compose(spectro), Mixup(**mix) if mix else None)


def check_spec(spec: str | dict[str, Any]) -> None:
    """Raise :class:`ParameterError` if ``spec`` names an unknown preset, section, transform
    or setting (builds it at 16 kHz without background files, which load only in training)."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ParameterError(f"unknown augmentation preset {spec!r}; use {', '.join(PRESETS)}")
        return
    if not isinstance(spec, dict):
        raise ParameterError(f"augment must be a preset name or a mapping, got {spec!r}")
    checked = {
        **spec,
        "waveform": [
            t
            for t in spec.get("waveform", [])
            if not (isinstance(t, dict) and t.get("name") == "BackgroundNoise")
        ],
    }
    from_spec(checked, sample_rate=16_000)
