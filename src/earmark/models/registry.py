"""One registry of model families: every model the toolkit can train, by name.

A :class:`ModelSpec` says what a name builds, which family it belongs to (``classical``:
a scikit-learn estimator over feature vectors; ``neural``: a torch module over spectrograms),
its hyper-parameters (each a :class:`Param`: name, type, default, one-line meaning), and the
feature settings it expects by default (:func:`earmark.settings.check_params` checks a
user's hyper-parameters against them). Neural specs import torch only when ``build`` is
called, so listing or training classical models never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from earmark.errors import ParameterError

__all__ = ["ModelSpec", "Param", "get", "names", "register"]

Family = Literal["classical", "neural"]


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: ``type`` is a type annotation (``float``, ``list[int]``,
    ``Literal["rbf", "linear"]``, ``int | None``...) that values are checked and converted
    against; ``default`` is what the model uses when the user gives nothing; ``help`` says in
    one line what it changes."""

    name: str
    type: Any
    default: Any
    help: str


@dataclass(frozen=True)
class ModelSpec:
    """A trainable model: ``build(**params)`` makes a fresh, unfitted instance.

    ``params`` declares every hyper-parameter a user may set; ``defaults`` (derived from them
    when not given) is what ``build`` receives before the user's values."""

    name: str
    family: Family
    build: Callable[..., Any]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    default_features: dict[str, Any] = field(default_factory=lambda: {"kind": "handcrafted"})
    seeded: bool = False  # build() takes random_state
    needs_bins: bool = False  # build() takes n_mels: the feature bins per frame
    semi_supervised: bool = False  # also learns from unlabelled audio
    params: tuple[Param, ...] = ()

    def __post_init__(self) -> None:
        if self.params and not self.defaults:
            defaults = {p.name: p.default for p in self.params}
            object.__setattr__(self, "defaults", defaults)
        undeclared = set(self.defaults) - {p.name for p in self.params}
        if self.params and undeclared:
            raise ParameterError(f"{self.name}: defaults {sorted(undeclared)} are not declared")

    def param(self, name: str) -> Param | None:
        """The declared hyper-parameter ``name``, or ``None``."""
        return next((p for p in self.params if p.name == name), None)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ParameterError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    # The families register themselves on import; importing here keeps `registry` the one
    # entry point without importing torch for a classical model.
    import earmark.models.learners
    import earmark.models.zoo  # noqa: F401


def get(name: str) -> ModelSpec:
    """The spec registered as ``name``; the error lists the names that exist."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ParameterError(f"unknown model {name!r}; available: {', '.join(names())}")
    return _REGISTRY[name]


def names(family: Family | None = None) -> list[str]:
    """Registered model names, optionally of one family, in registration order."""
    _ensure_loaded()
    return [n for n, s in _REGISTRY.items() if family is None or s.family == family]
