"""Recurrent networks over log-mel spectrograms: ``crnn`` and ``lstm``.

Input ``[batch, channels, n_mels, frames]``, output logits ``[batch, n_classes]``; any number
of frames (attention pooling over time).

* ``crnn``: a small CNN front (three conv blocks pooling frequency, and time once) turns the
  spectrogram into a sequence of feature vectors; a bidirectional GRU reads it; attention
  pooling weighs the frames; a linear layer classifies.
* ``lstm``: stacked bidirectional LSTMs straight over the mel frames (each frame's mel
  vector, batch-normalized, is one step), then attention pooling and a linear layer.
"""

from __future__ import annotations

from torch import Tensor, nn

from earmark.models.cnn import AttentionPool, MaxPool

__all__ = ["CRNN", "LSTMNet"]


def _conv(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        MaxPool(pool),  # before the ReLU: they commute, and it has less to do then
        nn.ReLU(inplace=True),
    )


class CRNN(nn.Module):
    """CNN front, bidirectional GRU, attention pooling, linear."""

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 1,
        n_mels: int = 40,
        widths: tuple[int, ...] = (16, 32, 64),
        hidden: int = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        pools = [(2, 2)] + [(2, 1)] * (len(widths) - 1)  # time is halved once
        chans = [in_channels, *widths]
        self.front = nn.Sequential(
            *(_conv(a, b, p) for a, b, p in zip(chans[:-1], chans[1:], pools, strict=True))
        )
        freq = n_mels
        for _ in widths:
            freq = -(-freq // 2)
        self.rnn = nn.GRU(widths[-1] * freq, hidden, batch_first=True, bidirectional=True)
        self.pool = AttentionPool(2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.front(x)  # [B, C, F', T']
        b, c, f, t = h.shape
        seq, _ = self.rnn(h.permute(0, 3, 1, 2).reshape(b, t, c * f))  # [B, T', 2H]
        return self.head(self.dropout(self.pool(seq.transpose(1, 2))))


class LSTMNet(nn.Module):
    """Stacked bidirectional LSTM over mel frames, attention pooling, linear."""

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 1,
        n_mels: int = 40,
        hidden: int = 64,
        layers: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_channels * n_mels)
        self.rnn = nn.LSTM(
            in_channels * n_mels,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.pool = AttentionPool(2 * hidden)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        b, c, f, t = x.shape
        seq = self.norm(x.reshape(b, c * f, t))  # [B, C*F, T]
        out, _ = self.rnn(seq.transpose(1, 2))  # [B, T, 2H]
        return self.head(self.pool(out.transpose(1, 2)))
