"""earmark: labelled audio in, a trained, evaluated, portable classifier out.

Submodules and names load on first use (``earmark.audio``, ``earmark.Classifier``...), so
``import earmark`` is fast and pulls in torch only when a torch feature is used.
``earmark.load(directory)`` loads a trained model; audio files load with
``earmark.audio.load``.
"""

from earmark._lazy import lazy_attributes

__version__ = "0.1.0"

_NAMES = {
    "audio": "",
    "data": "",
    "errors": "",
    "features": "",
    "report": "",
    "evaluation": "",
    "artifact": "",
    "models": "",
    "AudioConfig": "audio",
    "FeatureConfig": "features",
    "EarmarkError": "errors",
    "Classifier": "classifier",
    "load": "loading",
    "Ensemble": "ensembles",
    "Prediction": "predict",
    "Preprocessing": "preprocess",
    "detect": "api",
    "cross_validate": "api",
    "tune": "api",
    "ensemble": "api",
    "export": "api",
}
_lazy_getattr, __dir__ = lazy_attributes(__name__, _NAMES)
__all__ = ["__version__", "datasets", *_NAMES]


def __getattr__(name: str):
    if name == "datasets":  # the design notes' spelling of earmark.data
        return _lazy_getattr("data")
    return _lazy_getattr(name)
