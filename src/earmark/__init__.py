"""earmark: labelled audio in, a trained, evaluated, portable classifier out."""

from earmark import audio, errors
from earmark.audio import AudioConfig, info, load, stream
from earmark.errors import EarmarkError

__version__ = "0.1.0"

__all__ = [
    "AudioConfig",
    "EarmarkError",
    "__version__",
    "audio",
    "errors",
    "info",
    "load",
    "stream",
]
