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

__all__ = ["ModelSpec", "Param", "check_features", "get", "names", "register"]


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


def check_features(model: str, kind: str) -> None:
    """Whether model ``model`` can take features of ``kind``: a network over embedding
    vectors needs a pretrained frontend's, one that declares its ``feature_kinds`` takes only
    those, one over spectrograms cannot take embeddings (classical learners take any
    vector). Raises :class:`ParameterError` saying what fits."""
    from earmark.features.pretrained import FRONTENDS, is_frontend

    spec = get(model)
    if spec.family != "neural":
        return
    if spec.embedding_input and not is_frontend(kind):
        raise ParameterError(
            f"{model} takes pretrained embeddings: use features {' or '.join(FRONTENDS)}, "
            f"not {kind}"
        )
    if spec.feature_kinds and kind not in spec.feature_kinds:
        raise ParameterError(
            f"{model} takes {' or '.join(spec.feature_kinds)} features, not {kind}"
        )
    if is_frontend(kind) and not spec.embedding_input:
        heads = [n for n in names("neural") if get(n).embedding_input]
        raise ParameterError(
            f"{model} takes spectrograms; {kind} features are one embedding vector per clip: "
            f"use {' or '.join(heads)}, or a classical learner"
        )
