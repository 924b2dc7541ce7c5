"""Audio the server can play back and reviews can point at, each known by an opaque id.

Two kinds:

- **corpus files** (the recordings of a similarity index, of a suggestion list): registered
  when the server starts, id ``f`` + the first 16 hex digits of the SHA-256 of the resolved
  path. Their display name is the path relative to the root they were registered under (the
  server's own paths never reach a client).
- **kept uploads**: with a ``keep_dir``, an analysed upload is copied there under its content's
  SHA-256 (the same bytes twice are one recording), id ``u`` + 16 hex digits, so a review
  made on the page can point at audio that outlives the request, and ``earmark reviews
  export`` / ``earmark train --reviews`` can read it again. Kept uploads are found again after a
  restart (the directory is the registry).

:meth:`Recordings.snippet` returns a span as a 16-bit WAV (the file's own sample rate and
channels) for ``GET /v1/audio/{id}``. Ids are the only handle a client has: an id not
registered is a :class:`KeyError` (404), never a path lookup.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from earmark import audio as audio_io
from earmark.atomic import atomic_write
from earmark.errors import ParameterError

__all__ = ["MAX_SNIPPET_SECONDS", "Recordings"]

#: The longest span ``snippet`` returns (s): a page plays events and windows, not hours.
MAX_SNIPPET_SECONDS = 60.0
_ID = re.compile(r"^[fu][0-9a-f]{16}$")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class Recordings:
    """The registry of playable recordings (see the module docstring). Thread-safe."""

    def __init__(self, keep_dir: str | Path | None = None) -> None:
        self.keep_dir = Path(keep_dir) if keep_dir is not None else None
        self._paths: dict[str, Path] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.keep_dir is not None:
            self.keep_dir.mkdir(parents=True, exist_ok=True)
            for p in sorted(self.keep_dir.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    rid = "u" + p.stem[:16]
                    if _ID.match(rid):
                        self._paths[rid] = p
                        self._names[rid] = f"upload-{p.stem[:8]}{p.suffix}"

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, str) and rid in self._paths

    def add_file(self, path: str | Path, root: str | Path | None = None) -> str:
        """Register a corpus file; its id (the same path gives the same id every time)."""
        resolved = Path(path).resolve()
        rid = "f" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
        name = resolved.name
        if root is not None:
            with contextlib.suppress(ValueError):  # outside its root: the bare name
                name = resolved.relative_to(Path(root).resolve()).as_posix()
        with self._lock:
            self._paths[rid] = resolved
            self._names[rid] = name
        return rid

    def keep(self, upload: str | Path, suffix: str = "") -> str | None:
        """Copy an upload into ``keep_dir`` (by content) and return its id; ``None`` when
        this registry keeps no uploads."""
        if self.keep_dir is None:
            return None
        src = Path(upload)
        digest = hashlib.sha256()
        with src.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        hexd = digest.hexdigest()
        suffix = suffix if _SUFFIX.match(suffix or "") else (src.suffix or ".audio")
        if not _SUFFIX.match(suffix):
            suffix = ".audio"
        dest = self.keep_dir / f"{hexd}{suffix.lower()}"
        rid = "u" + hexd[:16]
        with self._lock:
            if rid not in self._paths:
                if not dest.exists():
                    atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))
                self._paths[rid] = dest
                self._names[rid] = f"upload-{hexd[:8]}{dest.suffix}"
        return rid

    def path(self, rid: str) -> Path:
        """The file behind ``rid`` (KeyError when it is not registered)."""
        if not (isinstance(rid, str) and _ID.match(rid)):
            raise KeyError(rid)
        with self._lock:
            return self._paths[rid]

    def name(self, rid: str) -> str:
        """What a client is shown for ``rid``: a corpus file's path under its root, or
        ``upload-<hash>.<ext>``."""
        self.path(rid)
        return self._names[rid]

    def snippet(self, rid: str, start_s: float = 0.0, end_s: float | None = None) -> bytes:
        """The span ``[start_s, end_s)`` of ``rid`` as 16-bit PCM WAV bytes, at the file's
        own rate (at most :data:`MAX_SNIPPET_SECONDS`; ``end_s`` past the end is clipped)."""
        path = self.path(rid)
        meta = audio_io.info(path)
        if not (np.isfinite(start_s) and start_s >= 0):
            raise ParameterError(f"start_s must be a finite number >= 0, got {start_s}")
        stop = meta.duration if end_s is None else min(float(end_s), meta.duration)
        if not np.isfinite(stop) or stop <= start_s:
            raise ParameterError(f"the span [{start_s}, {end_s}) holds no audio of the file")
        if stop - start_s > MAX_SNIPPET_SECONDS:
            raise ParameterError(f"a snippet is at most {MAX_SNIPPET_SECONDS:g} s long")
        y, sr = audio_io.load(path, sr=None, mono=False, offset=start_s, duration=stop - start_s)
        buf = io.BytesIO()
        sf.write(buf, np.asarray(y).T, sr, format="WAV", subtype="PCM_16")
        return buf.getvalue()
