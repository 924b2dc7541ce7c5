"""Settings as plain data: frozen dataclasses that round-trip through JSON."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Self

from earmark.errors import ParameterError

__all__ = ["JsonConfig"]


class JsonConfig:
    """Mixin for frozen dataclasses of settings: ``to_dict`` / ``from_dict`` / ``key``.

    Tuples become lists in ``to_dict`` (JSON has no tuples); ``from_dict`` refuses unknown
    keys, so a typo in a recipe or a file from a newer version fails loudly.
    """

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ParameterError(f"unknown {cls.__name__} settings: {sorted(unknown)}")
        return cls(**data)

    def key(self) -> str:
        """A stable text key for caches (the settings as sorted JSON)."""
        return json.dumps(self.to_dict(), sort_keys=True)
