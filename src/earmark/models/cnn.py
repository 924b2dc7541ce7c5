"""Convolutional networks over log-mel spectrograms.

Input ``[batch, channels, n_mels, frames]`` (channels: 1 for mono), output class logits
``[batch, n_classes]``. Both accept any number of frames (global pooling over time), so the
same network scores a 0.4 s clip and a 40 s window.

* ``seed-cnn``: the classic tutorial network, kept as a baseline: four blocks of 3x3
  convolution, batch norm, ReLU and 2x2 max pooling, global average pooling, a linear layer.
* ``cnn``: in the style of PANNs' CNN6/CNN10 (Kong et al. 2020): blocks of two 3x3
  convolutions with batch norm and ReLU, average pooling, frequency averaged out, then
  attention pooling over time (a learned weight per frame), dropout and a linear layer.
  Narrower than PANNs so that it trains in minutes on a CPU.
"""

from __future__ import annotations

import functools
import itertools

import torch
from torch import Tensor, nn

__all__ = ["CNN", "AttentionPool", "MaxPool", "SeedCNN"]


class MaxPool(nn.Module):
    """``nn.MaxPool2d(pool, ceil_mode=True)`` (stride = kernel) as strided element-wise maxima.

    PyTorch's CPU max pooling of NCHW tensors with few channels is about 5x slower than these
    maxima (it also computes argmax indices, even for inference), and it was the largest cost
    of ``seed-cnn`` inference. Sizes that do not divide are padded with -inf, which is what
    ``ceil_mode`` does. When gradients are needed, torch's pooling runs instead.
    """

    def __init__(self, pool: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.pool = pool

    def extra_repr(self) -> str:
        return f"pool={self.pool}"

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            # training: torch's pooling has the much cheaper backward (measured 0.6 vs 1.0 ms
            # per seed-cnn clip); the forward values are identical (tested)
            return nn.functional.max_pool2d(x, self.pool, ceil_mode=True)
        kh, kw = self.pool
        h, w = -x.shape[-2] % kh, -x.shape[-1] % kw
        if h or w:
            x = nn.functional.pad(x, (0, w, 0, h), value=float("-inf"))
        if kh > 1:
            x = functools.reduce(torch.maximum, (x[..., i::kh, :] for i in range(kh)))
        if kw > 1:
            x = functools.reduce(torch.maximum, (x[..., i::kw] for i in range(kw)))
        return x


class SeedCNN(nn.Module):
    """Four conv + batch-norm + ReLU + max-pool blocks, global average pooling, linear.

    Each block pools before its ReLU: the two commute (both are monotone), and the ReLU then
    touches a quarter of the values."""

    def __init__(self, n_classes: int, *, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        chans = [in_channels, width, width * 2, width * 4, width * 4]
        blocks = []
        for cin, cout in itertools.pairwise(chans):
            blocks += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                MaxPool((2, 2)),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class _ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then 2x2 average pooling (PANNs' ConvBlock)."""

    def __init__(self, cin: int, cout: int, pool: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AvgPool2d(pool, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.body(x))


class AttentionPool(nn.Module):
    """Weighted average over time: ``[batch, dim, frames] -> [batch, dim]`` with a learned,
    softmax-normalized weight per frame (what lets a short event dominate a long window)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Conv1d(dim, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        w = torch.softmax(self.score(x), dim=-1)
        return (x * w).sum(dim=-1)


class CNN(nn.Module):
    """PANNs-style CNN (CNN6/CNN10 family) with attention pooling over time."""

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 1,
        widths: tuple[int, ...] = (24, 48, 96, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(in_channels)  # normalizes the dB scale per channel
        chans = [in_channels, *widths]
        self.blocks = nn.Sequential(
            *(_ConvBlock(cin, cout) for cin, cout in itertools.pairwise(chans))
        )
        self.pool = AttentionPool(widths[-1])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.bn0(x))  # [B, C, F', T']
        h = h.mean(dim=2)  # average out frequency: [B, C, T']
        return self.head(self.dropout(self.pool(h)))
