"""The neural model zoo in the registry: names, defaults, and lazy builders.

Every network takes log-mel spectrograms ``[batch, channels, n_mels, frames]`` and returns
class logits ``[batch, n_classes]``; ``build(n_classes, in_channels=..., **params)`` makes a
fresh one. The exception is ``head``, which takes the embedding vectors ``[batch, dim]`` of a
pretrained frontend (``aisfx`` by default; ``embedding_input``). The default frontend is 40
mel bands with a 40 ms window and 20 ms hop: enough detail for speech and sound events, and
half the frames of a 10 ms hop, which is what lets these networks train at hundreds to
thousands of clips per second on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from earmark.features.pretrained import FRONTENDS as PRETRAINED_FRONTENDS
from earmark.models.sgan_config import GanSettings
from earmark.models.spec import ModelSpec, Param, register

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


def _widths(default: list[int]) -> Param:
    return Param("widths", list[int], default, "channels of each conv block (one block each)")


def _dropout(default: float) -> Param:
    return Param("dropout", float, default, "dropout probability before the classifier")


def _hidden(default: int, what: str = "recurrent") -> Param:
    return Param("hidden", int, default, f"units of the {what} layer per direction")


def _cnn(n_classes: int, **params: Any):
    from earmark.models.cnn import CNN

    return CNN(n_classes, **params)


register(
    ModelSpec(
        "seed-cnn",
        "neural",
        _seed_cnn,
        "4 x (conv, batch norm, ReLU, max pool), global average pooling, linear",
        default_features=dict(NEURAL_FEATURES),
        seeded=True,
        params=(Param("width", int, 8, "channels of the first block (doubled twice after)"),),
    )
)
register(
    ModelSpec(
        "cnn",
        "neural",
        _cnn,
        "PANNs-style CNN (pairs of 3x3 convs, avg pooling) + attention pooling",
        default_features=dict(NEURAL_FEATURES),
        seeded=True,
        params=(_widths([16, 32, 64, 128]), _dropout(0.2)),
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
        default_features=dict(NEURAL_FEATURES),
        params=(_widths([16, 32, 64]), _hidden(64, "GRU"), _dropout(0.2)),
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
        default_features=dict(NEURAL_FEATURES),
        params=(
            _hidden(64, "LSTM"),
            Param("layers", int, 2, "stacked LSTM layers"),
            _dropout(0.2),
        ),
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
        default_features=dict(NEURAL_FEATURES),
        params=(
            Param("patch_freq", int, 8, "mel bands per patch"),
            Param("patch_time", int, 4, "frames per patch"),
            Param("dim", int, 64, "width of the patch embeddings and the encoder"),
            Param("heads", int, 4, "attention heads (must divide dim)"),
            Param("layers", int, 2, "encoder layers"),
            Param("dropout", float, 0.1, "dropout probability inside the encoder"),
        ),
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
        default_features=dict(NEURAL_FEATURES),
        params=(_widths([16, 32, 64]), _hidden(48, "GRU"), _dropout(0.2)),
        seeded=True,
        needs_bins=True,
    )
)


# What each setting of the adversarial game means (sgan_config.GanSettings holds the values).
_GAN_HELP = {
    "noise_dim": "length of the generator's noise vector",
    "gen_width": "channels of the generator's last block",
    "unsupervised_weight": "weight of the real-vs-generated loss against the labelled one",
    "real_label": "target of real clips for the real-vs-generated loss (one-sided smoothing)",
    "g_lr_ratio": "generator learning rate as a multiple of the discriminator's",
    "entropy_weight": "weight of the class entropy of unlabelled clips (0: off)",
    "rampup_epochs": "epochs over which the unsupervised weight ramps up (0: none)",
    "adversarial": "train against the generator (false: a plain supervised network)",
    "sample_every": "epochs between grids of generated samples (0: never)",
    "collapse_ratio": "generated/real diversity below which mode collapse is flagged",
}


def _gan_params() -> tuple[Param, ...]:
    hints = typing.get_type_hints(GanSettings)
    return tuple(
        Param(f.name, hints[f.name], f.default, _GAN_HELP.get(f.name, "adversarial setting"))
        for f in dataclasses.fields(GanSettings)
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
        default_features=dict(NEURAL_FEATURES),
        seeded=True,
        needs_bins=True,
        semi_supervised=True,
        params=(
            Param("width", int, 16, "channels of the discriminator's first block"),
            Param("dropout", float, 0.1, "dropout probability after the last three blocks"),
            Param(
                "norm",
                Literal["spectral", "weight", "none"],
                "spectral",
                "normalization of the discriminator's weights",
            ),
            Param("groups", int, 4, "groups of the group norms (0: none)"),
            *_gan_params(),
        ),
    )
)


def _aisfx_finetune(n_classes: int, **params: Any):
    from earmark.models.finetune import AisfxFineTune

    return AisfxFineTune(n_classes, **params)


# Transfer learning: the pretrained aisfx network (weights CC BY 4.0, from the aisfx pip
# package) fine-tuned end to end. It takes 44.1 kHz waveforms (its mel frontend is part of
# the network, and of its ONNX export); on two CPU cores it trains at a few clips per second,
# hence its fewer epochs and smaller batches.
register(
    ModelSpec(
        "aisfx-finetune",
        "neural",
        _aisfx_finetune,
        "pretrained aisfx CNN (sound effects, 4.7 M parameters) fine-tuned end to end with a "
        "new head; 44.1 kHz waveforms; weights CC BY 4.0",
        default_features={"kind": "waveform"},
        seeded=True,
        pretrained=True,
        sample_rate=44_100,
        feature_kinds=("waveform",),
        train_defaults={"epochs": 6, "batch_size": 16},
        params=(
            Param("head_hidden", int, 0, "units of the head's hidden layer (0: a linear head)"),
            _dropout(0.2),
            Param(
                "backbone_lr_scale",
                float,
                0.1,
                "the pretrained backbone's learning rate as a multiple of the head's",
            ),
            Param("freeze_epochs", int, 2, "first epochs training the head only (backbone frozen)"),
            Param(
                "min_frames",
                int,
                8,
                "spectrogram frames (23 ms each) a shorter window is padded to with silence",
            ),
        ),
    )
)


def _head(n_classes: int, *, in_channels: int = 1, n_mels: int, **params: Any):
    from earmark.models.head import EmbeddingHead

    return EmbeddingHead(n_classes, dim=n_mels, in_channels=in_channels, **params)


# On frozen embeddings nothing is gained from many epochs of a waveform-augmented frontend
# pass: by default the head trains without augmentation, so the clips are embedded once.
register(
    ModelSpec(
        "head",
        "neural",
        _head,
        "a small MLP (or linear layer) on frozen pretrained embeddings (aisfx by default)",
        default_features={"kind": "aisfx"},
        seeded=True,
        needs_bins=True,
        embedding_input=True,
        feature_kinds=PRETRAINED_FRONTENDS,
        train_defaults={"augment": "none"},
        params=(
            Param("hidden", int, 256, "units of the hidden layer (0: a linear classifier)"),
            _dropout(0.2),
        ),
    )
)
