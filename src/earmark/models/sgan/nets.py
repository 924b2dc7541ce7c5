"""The semi-supervised GAN's networks: the discriminator (the classifier that is saved and
served) and the generator of log-mel patches."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from earmark.errors import ParameterError
from earmark.models.cnn import MaxPool
from earmark.models.sgan_config import GanSettings

__all__ = ["Discriminator", "Generator", "Norm", "build_discriminator"]

Norm = Literal["spectral", "weight", "none"]


def _normed(layer: nn.Module, norm: Norm) -> nn.Module:
    if norm == "spectral":
        return nn.utils.parametrizations.spectral_norm(layer)
    if norm == "weight":
        return nn.utils.parametrizations.weight_norm(layer)
    return layer


class Discriminator(nn.Module):
    """Four blocks of 3x3 convolution (spectral norm), group norm, 2x2 max pooling and leaky
    ReLU (dropout after the last three), global average pooling, and a linear layer to K
    class logits: the ``seed-cnn`` layout made fit for a GAN.

    No batch norm: it would mix the statistics of real and generated batches; group norm
    normalizes each example alone (without it, spectral-normed layers shrink the signal and
    the network barely learns: measured). The input is normalized per channel and mel band
    by fixed statistics (buffers, saved with the weights) that the trainer sets from the
    training audio before the first step. ``groups=0`` drops the group norms."""

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 1,
        n_mels: int = 40,
        width: int = 16,
        dropout: float = 0.1,
        norm: Norm = "spectral",
        groups: int = 4,
    ) -> None:
        super().__init__()
        if norm not in ("spectral", "weight", "none"):
            raise ParameterError(f"sgan: norm must be spectral, weight or none, got {norm!r}")
        self.register_buffer("mean", torch.zeros(1, in_channels, n_mels, 1))
        self.register_buffer("std", torch.ones(1, in_channels, n_mels, 1))
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            conv = nn.Conv2d(chans[i], chans[i + 1], 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(conv.bias)
            layers += [_normed(conv, norm)]
            if groups:
                layers.append(nn.GroupNorm(min(groups, chans[i + 1]), chans[i + 1]))
            layers += [MaxPool((2, 2)), nn.LeakyReLU(0.2, inplace=True)]
            if i >= 1 and dropout:
                layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.head = _normed(nn.Linear(chans[-1], n_classes), norm)

    def set_input_stats(self, mean: Tensor, std: Tensor) -> None:
        """Per channel and mel band (``[channels, n_mels]``), in dB."""
        with torch.no_grad():
            self.mean.copy_(mean.reshape(self.mean.shape))
            self.std.copy_(std.reshape(self.std.shape).clamp_min(1e-3))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[batch, 4 * width]`` (what feature matching compares)."""
        return self.body((x - self.mean) / self.std).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class Generator(nn.Module):
    """Noise ``[n, noise_dim]`` -> log-mel patches ``[n, channels, n_mels, frames]`` in dB.

    A linear layer to a quarter-resolution map, two (upsample, 3x3 conv, batch norm, ReLU)
    stages and a last convolution; the output is made in normalized units and mapped to dB
    with the discriminator's input statistics. Its batch norms always use the batch's own
    statistics (no running averages), so training and sampling behave alike."""

    def __init__(
        self, shape: tuple[int, int, int], *, noise_dim: int = 64, width: int = 64
    ) -> None:
        super().__init__()
        c, f, t = (int(v) for v in shape)
        self.shape, self.noise_dim, self.width = (c, f, t), int(noise_dim), int(width)
        self._f0, self._t0 = math.ceil(f / 4), math.ceil(t / 4)
        n = 2 * width * self._f0 * self._t0
        self.fc = nn.Sequential(
            nn.Linear(noise_dim, n), nn.BatchNorm1d(n, track_running_stats=False), nn.ReLU()
        )

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout, track_running_stats=False),
                nn.ReLU(),
            ]

        self.body = nn.Sequential(
            *stage(2 * width, width), *stage(width, width // 2), nn.Conv2d(width // 2, c, 3, 1, 1)
        )
        self.register_buffer("mean", torch.zeros(1, c, f, 1))
        self.register_buffer("std", torch.ones(1, c, f, 1))

    def forward(self, z: Tensor) -> Tensor:
        _, f, t = self.shape
        h = self.fc(z).view(-1, 2 * self.width, self._f0, self._t0)
        return self.body(h)[..., :f, :t] * self.std + self.mean

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.noise_dim, generator=generator)

    def config(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "noise_dim": self.noise_dim, "width": self.width}


def build_discriminator(n_classes: int, **params: Any) -> Discriminator:
    """The registry's builder: the GAN settings among ``params`` are not the network's."""
    _, own = GanSettings.split(params)
    return Discriminator(n_classes, **own)
