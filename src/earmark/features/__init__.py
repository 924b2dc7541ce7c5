"""Features: spectral (torch), hand-crafted (librosa), and the setting that picks between them."""

from earmark.features.frontend import FEATURE_KINDS, FeatureConfig, build_frontend, extract
from earmark.features.handcrafted import HandcraftedFeatures, handcrafted
from earmark.features.spectral import MFCC, STFT, LogMel, logmel, mfcc, stft
from earmark.features.table import FeatureTable, compute_features

__all__ = [
    "FEATURE_KINDS",
    "MFCC",
    "STFT",
    "FeatureConfig",
    "FeatureTable",
    "HandcraftedFeatures",
    "LogMel",
    "build_frontend",
    "compute_features",
    "extract",
    "handcrafted",
    "logmel",
    "mfcc",
    "stft",
]
