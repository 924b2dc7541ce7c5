"""Features: spectral (torch), hand-crafted (librosa), the setting that picks between them,
and feature tables. The torch parts load on first use, so hand-crafted features and feature
tables never import torch."""

from earmark._lazy import lazy_attributes
from earmark.features.config import FEATURE_KINDS, FeatureConfig
from earmark.features.handcrafted import HandcraftedFeatures, handcrafted
from earmark.features.table import FeatureTable, compute_features

_LAZY = {
    "build_frontend": "frontend",
    "extract": "frontend",
    "MFCC": "spectral",
    "STFT": "spectral",
    "LogMel": "spectral",
    "logmel": "spectral",
    "mfcc": "spectral",
    "stft": "spectral",
}
__getattr__, _lazy_dir = lazy_attributes(__name__, _LAZY)
__all__ = [
    "FEATURE_KINDS",
    "FeatureConfig",
    "FeatureTable",
    "HandcraftedFeatures",
    "compute_features",
    "handcrafted",
    *_LAZY,
]


def __dir__() -> list[str]:
    return sorted(__all__)
