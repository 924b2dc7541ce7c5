"""A disk cache of numpy arrays keyed by file content and settings.

Keys combine a file's content hash with the settings that produced the array, so a renamed
file hits the cache and an edited one misses it. Entries are ``.npy`` files read with
``allow_pickle=False`` and written to a temporary name then renamed, so a crash never leaves
half an entry; a damaged entry reads as a miss and is recomputed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["ArrayCache", "default_cache_dir", "file_digest", "segment_key"]

_HASH_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """BLAKE2b hex digest (20 bytes) of a file's content."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def segment_key(settings: str, span: tuple[float, float] | None) -> str:
    """The cache key of ``settings`` for a segment ``(offset, duration)`` of a file (a whole
    file, ``None``, keeps ``settings`` as it is): each window of a recording is its own entry.
    Times to the microsecond, so float noise in a window table does not split one entry."""
    if span is None:
        return settings
    return f"{settings}|segment={span[0]:.6f}+{span[1]:.6f}"


def default_cache_dir() -> Path:
    """``$EARMARK_CACHE`` if set, else ``$XDG_CACHE_HOME/earmark`` or ``~/.cache/earmark``
    (read when called, never at import)."""
    if env := os.environ.get("EARMARK_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "earmark"


class ArrayCache:
    """Arrays under ``directory``, one ``.npy`` per (file content, settings) key."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, digest: str, settings: str) -> Path:
        key = hashlib.blake2b(f"{digest}|{settings}".encode(), digest_size=20).hexdigest()
        return self.directory / key[:2] / f"{key}.npy"

    def get(self, digest: str, settings: str) -> np.ndarray | None:
        path = self._path(digest, settings)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, digest: str, settings: str, array: np.ndarray) -> None:
        path = self._path(digest, settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
