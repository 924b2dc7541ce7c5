"""The neural model zoo in the registry: names, defaults, and lazy builders.

Every network takes log-mel spectrograms ``[batch, channels, n_mels, frames]`` and returns
class logits ``[batch, n_classes]``; ``build(n_classes, in_channels=..., **params)`` makes a
fresh one. The default frontend is 40 mel bands with a 40 ms window and 20 ms hop: enough
detail for speech and sound events, and half the frames of a 10 ms hop, which is what lets
these networks train at hundreds to thousands of clips per second on two CPU cores.
"""

from __future__ import annotations

from typing import Any

from earmark.models.registry import ModelSpec, register

__all__ = ["NEURAL_FEATURES"]

NEURAL_FEATURES: dict[str, Any] = {
    "kind": "logmel",
    "n_fft": 1024,
    "win_length": 640,
    "hop_length": 320,
    "n_mels": 40,
}


def _seed_cnn(n_classes: int, **params: Any):
    from earmark.models.cnn import SeedCNN

    return SeedCNN(n_classes, **params)


def _cnn(n_classes: int, **params: Any):
    from earmark.models.cnn import CNN

    return CNN(n_classes, **params)


register(
    ModelSpec(
        "seed-cnn",
        "neural",
        _seed_cnn,
        "4 x (conv, batch norm, ReLU, max pool), global average pooling, linear",
        {"width": 8},
        dict(NEURAL_FEATURES),
        seeded=True,
    )
)
register(
    ModelSpec(
        "cnn",
        "neural",
        _cnn,
        "PANNs-style CNN (pairs of 3x3 convs, avg pooling) + attention pooling",
        {"widths": [16, 32, 64, 128], "dropout": 0.2},
        dict(NEURAL_FEATURES),
        seeded=True,
    )
)
