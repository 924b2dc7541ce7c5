"""One registry of model families: every model the toolkit can train, by name.

A :class:`ModelSpec` says what a name builds, which family it belongs to (``classical``:
a scikit-learn estimator over feature vectors; ``neural``: a torch module over spectrograms),
its hyper-parameters (each a :class:`Param`: name, type, default, one-line meaning), and the
feature settings it expects by default (:func:`earmark.checks.check_params` checks a
user's hyper-parameters against them). Neural specs import torch only when ``build`` is
called, so listing or training classical models never loads it.
"""

from __future__ import annotations

from earmark.errors import ParameterError
from earmark.models.spec import REGISTERED, Family, ModelSpec, Param, register

__all__ = ["ModelSpec", "Param", "get", "names", "register"]


def _ensure_loaded() -> None:
    # The families register themselves on import; importing here keeps `registry` the one
    # entry point without importing torch for a classical model.
    import earmark.models.learners
    import earmark.models.zoo  # noqa: F401


def get(name: str) -> ModelSpec:
    """The spec registered as ``name``; the error lists the names that exist."""
    _ensure_loaded()
    if name not in REGISTERED:
        raise ParameterError(f"unknown model {name!r}; available: {', '.join(names())}")
    return REGISTERED[name]


def names(family: Family | None = None) -> list[str]:
    """Registered model names, optionally of one family, in registration order."""
    _ensure_loaded()
    return [n for n, s in REGISTERED.items() if family is None or s.family == family]
