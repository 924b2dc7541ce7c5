"""Write files atomically: to a temporary name in the same folder, then renamed into place, so
a crash or a kill never leaves a half-written file under the real name; and hold a folder for
one job at a time (:func:`folder_lock`).

The temporary file is made by :mod:`tempfile`, which creates it readable by its owner only
(0600); before the rename it gets the mode a plain ``open(path, "w")`` would have given it
(0666 less the umask), so what earmark writes is as readable as the rest of the user's files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from earmark.errors import EarmarkError

__all__ = ["atomic_text", "atomic_write", "default_mode", "folder_lock"]


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask sets it, for every thread)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(*, directory: bool = False) -> int:
    """The mode a new file (0666) or folder (0777) gets under the current umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path`` (same extension, so
    writers that pick a format from it still work), then rename it to ``path`` with the
    umask's default mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


@contextlib.contextmanager
def folder_lock(folder: str | Path, name: str, busy: str) -> Iterator[None]:
    """Hold the lock file ``name`` in ``folder`` (created) for the block, so two jobs never
    write into one folder at once: a second one raises :class:`EarmarkError` ``"{folder}:
    {busy}"`` at once instead of mixing its files with the first's. The lock is the kernel's
    (``flock``): it goes with the process, even one that is killed, so a stale lock file
    never blocks anything. Not on POSIX: no lock (one job at a time is the user's to keep)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EarmarkError(f"{folder}: {busy}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
