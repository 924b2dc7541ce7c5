"""``fusion``: a CNN branch and a recurrent-attention branch, fused before the classifier.

The CNN branch (PANNs-style blocks, frequency averaged, attention pooling over time) sees
local time-frequency patterns; the recurrent branch (a bidirectional GRU over the mel frames
with attention pooling) sees the temporal sequence. Their embeddings are concatenated and a
linear layer classifies: one network, two views, trained together.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from earmark.models.cnn import CNN, AttentionPool

__all__ = ["Fusion"]


class Fusion(nn.Module):
    """Concatenated CNN and GRU-attention embeddings, then a linear layer."""

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 1,
        n_mels: int = 40,
        widths: tuple[int, ...] = (16, 32, 64),
        hidden: int = 48,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        cnn = CNN(n_classes, in_channels=in_channels, widths=tuple(widths))
        self.cnn_bn, self.cnn_blocks, self.cnn_pool = cnn.bn0, cnn.blocks, cnn.pool
        self.norm = nn.BatchNorm1d(in_channels * n_mels)
        self.rnn = nn.GRU(in_channels * n_mels, hidden, batch_first=True, bidirectional=True)
        self.rnn_pool = AttentionPool(2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1] + 2 * hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        a = self.cnn_pool(self.cnn_blocks(self.cnn_bn(x)).mean(dim=2))
        b, c, f, t = x.shape
        seq, _ = self.rnn(self.norm(x.reshape(b, c * f, t)).transpose(1, 2))
        r = self.rnn_pool(seq.transpose(1, 2))
        return self.head(self.dropout(torch.cat([a, r], dim=1)))
