"""earmark: labelled audio in, a trained, evaluated, portable classifier out."""

from earmark import audio, data, errors, features
from earmark.audio import AudioConfig, info, load, stream
from earmark.errors import EarmarkError
from earmark.features import FeatureConfig

#: ``earmark.datasets.load("data/")`` reads as the design notes spell it; same module as ``data``.
datasets = data

__version__ = "0.1.0"

__all__ = [
    "AudioConfig",
    "EarmarkError",
    "FeatureConfig",
    "__version__",
    "audio",
    "data",
    "datasets",
    "errors",
    "features",
    "info",
    "load",
    "stream",
]
