"""Augmentation: waveform and spectrogram transforms, composable, batched, replayable.

Every transform works on a whole batch in torch (``[batch, channels, samples]`` for waveforms,
``[batch, channels, freq, frames]`` for spectrograms) with per-example random parameters, so
augmentation keeps up with training on a CPU. As in audiomentations, drawing the parameters
(:meth:`Transform.randomize_parameters`, from an explicit ``torch.Generator``) is separate
from applying them (:meth:`Transform.apply`): the same generator state replays the same
augmentation. Ranges are named with their unit (``min_snr_db``, ``max_shift_s``); the
probability ``p`` is per example.

Presets for ``--augment``: ``none``, ``default`` (shift, gain, noise, SpecAugment) and
``strong`` (wider ranges, background noise when a folder is given, time stretch, pitch shift,
mixup); a recipe can instead spell out every transform (:func:`from_spec`). :class:`Mixup`
acts on examples and targets together and is applied by the trainer.
"""

from __future__ import annotations

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
    "Compose",
    "Gain",
    "GaussianNoise",
    "Mixup",
    "OneOf",
    "PitchShift",
    "Shift",
    "SpecAugment",
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
    """The ``none`` / ``default`` / ``strong`` augmentation for clips at ``sample_rate`` Hz."""
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
    raise ParameterError(f"unknown augmentation preset {name!r}; use none, default or strong")


_BY_NAME: dict[str, type] = {
    c.__name__: c
    for c in (Shift, Gain, GaussianNoise, BackgroundNoise, TimeStretch, PitchShift, SpecAugment)
}
_NEEDS_RATE = {"Shift", "BackgroundNoise", "PitchShift"}
_WAVEFORM = {"Shift", "Gain", "GaussianNoise", "BackgroundNoise", "TimeStretch", "PitchShift"}


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
        if spec not in ("none", "default", "strong"):
            raise ParameterError(
                f"unknown augmentation preset {spec!r}; use none, default or strong"
            )
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
