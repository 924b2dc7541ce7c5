"""A small classifier on frozen embeddings: the ``head`` model of the zoo.

The pretrained frontend (``aisfx`` by default) turns each window into one vector; the head
maps those vectors ``[batch, dim]`` to class logits. It trains in seconds: the frontend is
frozen, and when no waveform augmentation is asked for the Trainer embeds the clips once and
then trains on the stored vectors (:mod:`earmark.training`).

``hidden=0`` gives a linear classifier (multinomial logistic regression trained by the
Trainer); otherwise one hidden ReLU layer of ``hidden`` units. The vectors are first
normalized per example (layer norm without a learned scale): the embeddings' overall level
varies with loudness, and a per-example norm, unlike a batch norm, is defined for batches of
one (the last batch of an epoch can be).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["EmbeddingHead"]


class EmbeddingHead(nn.Module):
    """Embeddings ``[batch, dim]`` to logits ``[batch, n_classes]``: layer norm, dropout,
    then a linear layer (``hidden=0``) or ``Linear -> ReLU -> dropout -> Linear``.
    ``in_channels`` is accepted for the zoo's signature and ignored (the frontend averages
    channels)."""

    def __init__(
        self,
        n_classes: int,
        *,
        dim: int,
        hidden: int = 256,
        dropout: float = 0.2,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if dim < 1 or n_classes < 1 or hidden < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"need dim >= 1, n_classes >= 1, hidden >= 0 and 0 <= dropout < 1, got "
                f"{dim}, {n_classes}, {hidden}, {dropout}"
            )
        self.dim = dim
        layers: list[nn.Module] = [nn.LayerNorm(dim, elementwise_affine=False), nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden or dim, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
