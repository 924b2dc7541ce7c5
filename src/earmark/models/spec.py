"""What a trainable model is: a :class:`ModelSpec` with its :class:`Param` list, and the
table the model families register themselves in (:func:`register`).

:mod:`earmark.models.registry` is where models are looked up; this module only holds the
definitions, so the families (``learners``, ``zoo``) and the registry import it and not
each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from earmark.errors import ParameterError

__all__ = ["REGISTERED", "Family", "ModelSpec", "Param", "register"]

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
    when not given) is what ``build`` receives before the user's values. A network built on
    pretrained weights (``pretrained``) reads them only when ``build`` is told to: a saved
    model loads its own weights. ``sample_rate`` and ``feature_kinds`` are what such a network
    needs (the :class:`~earmark.Classifier` uses that rate, and refuses other features);
    ``train_defaults`` are its :class:`~earmark.training.TrainConfig` defaults (a large
    pretrained network trains for fewer epochs, in smaller batches, than the zoo's).

    ``embedding_input``: a network over embedding vectors ``[batch, dim]`` of a pretrained
    frontend (``features`` must be one; ``build`` takes ``n_mels`` = dim) rather than over
    spectrograms."""

    name: str
    family: Family
    build: Callable[..., Any]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    default_features: dict[str, Any] = field(default_factory=lambda: {"kind": "handcrafted"})
    seeded: bool = False  # build() takes random_state
    needs_bins: bool = False  # build() takes n_mels: the feature bins per frame
    semi_supervised: bool = False  # also learns from unlabelled audio
    pretrained: bool = False  # build() takes pretrained (False: no pretrained weights read)
    sample_rate: int | None = None  # the only rate the model takes audio at (None: any)
    feature_kinds: tuple[str, ...] = ()  # the feature kinds it takes (empty: any)
    train_defaults: dict[str, Any] = field(default_factory=dict)  # over TrainConfig's
    params: tuple[Param, ...] = ()
    embedding_input: bool = False

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


#: Every registered model by name, in registration order.
REGISTERED: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry; a name can be registered once."""
    if spec.name in REGISTERED:
        raise ParameterError(f"model {spec.name!r} is already registered")
    REGISTERED[spec.name] = spec
    return spec
