"""``transformer``: an AST-like encoder over spectrogram patches.

The log-mel ``[batch, channels, n_mels, frames]`` is cut into patches (``patch_freq`` mel
bands x ``patch_time`` frames) by a strided convolution; each patch becomes a token with a
learned frequency-position embedding and a sinusoidal time-position encoding (so any number
of frames works); a CLS token is prepended; a small pre-norm Transformer encoder reads the
sequence and the CLS output is classified.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["PatchTransformer"]


class PatchTransformer(nn.Module):
    """Patch embedding, CLS token, Transformer encoder, linear head."""

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 1,
        n_mels: int = 40,
        patch_freq: int = 8,
        patch_time: int = 4,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.patch_freq, self.patch_time, self.dim = patch_freq, patch_time, dim
        self.bn = nn.BatchNorm2d(in_channels)
        self.embed = nn.Conv2d(
            in_channels, dim, (patch_freq, patch_time), stride=(patch_freq, patch_time)
        )
        self.freq_pos = nn.Parameter(torch.zeros(1, -(-n_mels // patch_freq), 1, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)
        nn.init.trunc_normal_(self.freq_pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)

    def _time_encoding(self, t: int, device: torch.device) -> Tensor:
        pos = torch.arange(t, device=device, dtype=torch.float32)[:, None]
        div = torch.exp(
            torch.arange(0, self.dim, 2, device=device) * (-math.log(10000.0) / self.dim)
        )
        enc = torch.zeros(t, self.dim, device=device)
        enc[:, 0::2] = torch.sin(pos * div)
        enc[:, 1::2] = torch.cos(pos * div)
        return enc

    def forward(self, x: Tensor) -> Tensor:
        f_pad = -x.shape[2] % self.patch_freq
        t_pad = -x.shape[3] % self.patch_time
        x = nn.functional.pad(self.bn(x), (0, t_pad, 0, f_pad))
        tokens = self.embed(x).permute(0, 2, 3, 1)  # [B, F', T', D]
        tokens = tokens + self.freq_pos[:, : tokens.shape[1]]
        tokens = tokens + self._time_encoding(tokens.shape[2], x.device)[None, None]
        seq = tokens.flatten(1, 2)  # [B, F'*T', D]
        seq = torch.cat([self.cls.expand(seq.shape[0], -1, -1), seq], dim=1)
        return self.head(self.norm(self.encoder(seq)[:, 0]))
