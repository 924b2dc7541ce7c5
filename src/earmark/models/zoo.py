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
from earmark.models.sgan_config import GAN_DEFAULTS

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


def _crnn(n_classes: int, **params: Any):
    from earmark.models.crnn import CRNN

    return CRNN(n_classes, **params)


def _lstm(n_classes: int, **params: Any):
    from earmark.models.crnn import LSTMNet

    return LSTMNet(n_classes, **params)


def _transformer(n_classes: int, **params: Any):
    from earmark.models.transformer import PatchTransformer

    return PatchTransformer(n_classes, **params)


def _fusion(n_classes: int, **params: Any):
    from earmark.models.fusion import Fusion

    return Fusion(n_classes, **params)


# The recurrent and patch networks size their input layer from the number of feature bins
# per frame (needs_bins): the Classifier passes it as n_mels.
register(
    ModelSpec(
        "crnn",
        "neural",
        _crnn,
        "CNN front, bidirectional GRU, attention pooling",
        {"widths": [16, 32, 64], "hidden": 64, "dropout": 0.2},
        dict(NEURAL_FEATURES),
        seeded=True,
        needs_bins=True,
    )
)
register(
    ModelSpec(
        "lstm",
        "neural",
        _lstm,
        "stacked BiLSTM over mel frames, attention pooling",
        {"hidden": 64, "layers": 2, "dropout": 0.2},
        dict(NEURAL_FEATURES),
        seeded=True,
        needs_bins=True,
    )
)
register(
    ModelSpec(
        "transformer",
        "neural",
        _transformer,
        "AST-like: spectrogram patches, CLS token, small Transformer encoder",
        {"patch_freq": 8, "patch_time": 4, "dim": 64, "heads": 4, "layers": 2},
        dict(NEURAL_FEATURES),
        seeded=True,
        needs_bins=True,
    )
)
register(
    ModelSpec(
        "fusion",
        "neural",
        _fusion,
        "CNN branch + GRU-attention branch, concatenated before the classifier",
        {"widths": [16, 32, 64], "hidden": 48, "dropout": 0.2},
        dict(NEURAL_FEATURES),
        seeded=True,
        needs_bins=True,
    )
)


def _sgan(n_classes: int, **params: Any):
    from earmark.models.sgan import build_discriminator

    return build_discriminator(n_classes, **params)


register(
    ModelSpec(
        "sgan",
        "neural",
        _sgan,
        "semi-supervised GAN: a spectral-norm CNN discriminator (K class logits) trained against "
        "a generator on labelled and unlabelled audio",
        {"width": 16, "dropout": 0.1, "norm": "spectral", "groups": 4, **GAN_DEFAULTS},
        dict(NEURAL_FEATURES),
        seeded=True,
        needs_bins=True,
        semi_supervised=True,
    )
)
