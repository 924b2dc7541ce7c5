"""Lazy attributes for package ``__init__`` modules (PEP 562).

``import earmark`` must stay cheap: torch and scikit-learn take seconds to import, and the
command line, worker processes and ``earmark.audio`` users should pay only for what they use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(
    package: str, names: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps each public name to the
    module (relative to ``package``) defining it; a name mapped to ``""`` is a submodule.

    A lazy name must differ from every submodule's name: importing ``package.x`` binds the
    attribute ``x`` to the module, which would then hide a lazy function called ``x``.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        where = names[name]
        if where == "":
            return importlib.import_module(f"{package}.{name}")
        return getattr(importlib.import_module(f"{package}.{where}"), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
