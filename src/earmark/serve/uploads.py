"""Uploads streamed to a temporary file as they arrive, never held whole in memory.

A raw audio body, or the ``file`` field of a multipart form (parsed as it streams, other
fields dropped), is written chunk by chunk to a file with a generated name (only a known
audio extension is kept, for the decoder). The file goes to memory-backed space
(``/dev/shm``) while it has room, so uploads that live for milliseconds never reach a disk;
when it fills (``ENOSPC``, or too little room for the declared size) the upload moves to the
system's temporary folder; when nothing can take it the request gets 503, never 500. The
file is removed if anything fails on the way.

Messages about an upload never name the server's files: :func:`scrub` replaces the temporary
path in a decoder's message by "the upload".
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from earmark import audio as audio_io

__all__ = ["CONTENT_TYPES", "Spool", "UploadProblem", "receive_upload", "scrub", "spool_dirs"]

log = logging.getLogger("earmark.serve")

PREFIX = "earmark-upload-"
FLUSH_BYTES = 256 * 1024  # written to the file (in a worker thread) this much at a time
MEMORY_RESERVE = 1 / 8  # of the memory-backed space left free for others (a size is known)

CONTENT_TYPES = {  # raw-body content types -> the extension the decoder is told
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/flac": ".flac",
    "audio/x-flac": ".flac", "audio/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
    "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac", "audio/webm": ".webm",
    "video/mp4": ".mp4", "video/webm": ".webm", "application/octet-stream": "",
}  # fmt: skip

_TEMP_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s'\"\\/]*)*[\\/]?" + PREFIX + r"[\w.-]*")


@dataclass(eq=False)
class UploadProblem(Exception):
    """The upload cannot be taken: answered with ``status`` and ``detail``."""

    status: int
    detail: str
    retry_after: int | None = None


def memory_dir() -> str | None:
    """``/dev/shm`` when it is a writable folder (Linux tmpfs), else ``None``."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def spool_dirs(upload_dir: str | None) -> list[str]:
    """Where uploads go, in order of preference: ``upload_dir`` alone when given, else
    memory-backed space (when the system has it) and then the system's temporary folder."""
    if upload_dir is not None:
        return [upload_dir]
    memory = memory_dir()
    disk = tempfile.gettempdir()
    return [memory, disk] if memory is not None and memory != disk else [disk]


def suffix_of(filename: str | None, content_type: str | None) -> str:
    """The temporary file's extension: a known audio extension of the upload's name, else
    one for its content type; never anything else from the client."""
    ext = Path(filename or "").suffix.lower()
    if ext in audio_io.AUDIO_EXTENSIONS:
        return ext
    return CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower(), "")


def scrub(text: str, path: str | os.PathLike[str] | None = None) -> str:
    """``text`` with the upload's temporary path (and any other upload file named in it)
    replaced by "the upload": error messages must not show the server's folders."""
    if path is not None:
        text = text.replace(str(path), "the upload").replace(Path(path).name, "the upload")
    return _TEMP_PATH.sub("the upload", text)


class Spool:
    """One upload's temporary file, written as the upload arrives (blocking writes: call
    :meth:`write` from a worker thread). ``dirs`` are tried in order; a write that fails
    (``ENOSPC`` above all) moves what was written to the next one. ``expected``: the size
    the client announced, when it did: memory-backed space too full to hold it (keeping
    :data:`MEMORY_RESERVE` free) is skipped from the start."""

    def __init__(self, dirs: Sequence[str], suffix: str, expected: int | None = None) -> None:
        self.dirs = list(dirs)
        self.suffix = suffix
        self.size = 0
        self.path: Path | None = None
        self._fd: int | None = None
        self._level = 0
        if expected is not None and len(self.dirs) > 1 and not _has_room(self.dirs[0], expected):
            self._level = 1

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; :class:`UploadProblem` (503) when no folder can take it."""
        view = memoryview(data)
        while view.nbytes:
            if self._fd is None:
                self._open()
            try:
                n = os.write(self._fd, view)  # type: ignore[arg-type]
            except OSError as exc:
                self._move_on(exc)
                continue
            self.size += n
            view = view[n:]

    def close(self) -> Path:
        """Finish the file; its path."""
        if self._fd is None:
            self._open()
        os.close(self._fd)  # type: ignore[arg-type]
        self._fd = None
        return self.path  # type: ignore[return-value]

    def discard(self) -> None:
        """Close and remove the file (whatever state it is in)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path is not None:
            _unlink(self.path)
            self.path = None

    def _open(self) -> None:
        """A new file in the current folder, or the next one that can make it."""
        while True:
            try:
                fd, name = tempfile.mkstemp(
                    prefix=PREFIX, suffix=self.suffix, dir=self.dirs[self._level]
                )
            except OSError as exc:
                self._next_level(exc)
                continue
            self._fd, self.path = fd, Path(name)
            return

    def _next_level(self, exc: OSError) -> None:
        where = self.dirs[self._level]
        self._level += 1
        if self._level >= len(self.dirs):
            log.warning("upload refused after %d bytes: no room in %s (%s)", self.size, where, exc)
            raise UploadProblem(
                503, "no room to store the upload right now; try again later", retry_after=5
            )
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.warning("upload moved from %s to %s: %s", where, self.dirs[self._level], exc)

    def _move_on(self, exc: OSError) -> None:
        """A write failed: go on in the next folder, with what was written so far."""
        old_path, old_fd = self.path, self._fd
        self._fd, self.path = None, None
        try:
            while True:
                self._next_level(exc)
                self._open()
                try:
                    if self.size:
                        with open(old_path, "rb") as src:  # type: ignore[arg-type]
                            while block := src.read(1024 * 1024):
                                _write_all(self._fd, block)  # type: ignore[arg-type]
                    return
                except OSError as again:  # this folder is full too
                    self.discard()
                    exc = again
        finally:
            if old_fd is not None:
                os.close(old_fd)
            if old_path is not None:
                _unlink(old_path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view.nbytes:
        view = view[os.write(fd, view) :]


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - nothing else to do
        log.warning("could not remove an upload's temporary file: %s", exc)


def _has_room(folder: str, size: int) -> bool:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return True  # unknown: try it (a failed write moves on)
    free = st.f_bavail * st.f_frsize
    return size <= free - MEMORY_RESERVE * st.f_blocks * st.f_frsize


class _Sink:
    """Buffers a body's chunks and writes them to a :class:`Spool`. An upload that stays
    under :data:`FLUSH_BYTES` (a clip: the usual case) is written by the event loop itself,
    as one small write to memory or the page cache, without a thread hop; bigger ones are
    written in a worker thread, :data:`FLUSH_BYTES` at a time (a write that fills a folder
    then copies what came before, which must not stall the loop)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.buffer = bytearray()

    async def feed(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.buffer:
            data, self.buffer = self.buffer, bytearray()
            if self.spool.size + len(data) <= FLUSH_BYTES:
                self.spool.write(data)
            else:
                await run_in_threadpool(self.spool.write, data)

    async def close(self) -> Path:
        """Write what is left; the file's path."""
        await self.flush()
        return self.spool.close()


class _FormFile:
    """python-multipart callbacks that keep the data of the multipart field ``file`` (the
    first one with a file name) and drop every other field."""

    def __init__(self) -> None:
        self.found = False  # the file part's headers were seen
        self.ended = False  # ... and its end
        self.filename: str | None = None
        self.content_type: str | None = None
        self.chunks: list[bytes] = []
        self._in_file = False
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _part_begin(self) -> None:
        self._headers, self._in_file = {}, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.strip().lower()] = self._value.strip()
        self._name, self._value = b"", b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if self.found or options.get(b"name") != b"file" or b"filename" not in options:
            return
        self.found = self._in_file = True
        self.filename = options[b"filename"].decode("utf-8", "replace")
        self.content_type = self._headers.get(b"content-type", b"").decode("latin-1")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.chunks.append(bytes(data[start:end]))

    def _part_end(self) -> None:
        if self._in_file:
            self.ended, self._in_file = True, False


async def receive_upload(request: Any, dirs: Sequence[str]) -> Path:
    """Stream the request's audio (a raw ``audio/*`` / ``video/*`` body, or the multipart
    field ``file``) to a temporary file in ``dirs`` (see :class:`Spool`) and return its
    path; the caller removes it. Raises :class:`UploadProblem` (400, 415, 503); what the
    body's reading raises (a client disconnect, the body guard's limits) goes through, the
    file removed."""
    content_type = request.headers.get("content-type", "")
    length = request.headers.get("content-length", "")
    expected = int(length) if length.isdigit() else None
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await _receive_form(request, dirs, content_type, expected)
    if kind not in CONTENT_TYPES:
        raise UploadProblem(
            415,
            f"unsupported content type {content_type!r}: send audio/* or video/* as the "
            "body, or a multipart upload",
        )
    spool = Spool(dirs, suffix_of(None, content_type), expected)
    sink = _Sink(spool)
    try:
        async for chunk in request.stream():
            await sink.feed(chunk)
        await sink.flush()
        if spool.size == 0:
            raise UploadProblem(400, "the upload is empty")
        return await sink.close()
    except BaseException:
        spool.discard()
        raise


async def _receive_form(
    request: Any, dirs: Sequence[str], content_type: str, expected: int | None
) -> Path:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadProblem(400, "a multipart upload needs a boundary in its content type")
    form = _FormFile()
    try:
        parser = MultipartParser(boundary, form.callbacks())
    except (FormParserError, ValueError) as exc:
        raise UploadProblem(400, f"invalid multipart upload: {exc}") from None
    spool: Spool | None = None
    sink: _Sink | None = None
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except FormParserError:
                raise UploadProblem(400, "invalid multipart upload") from None
            if form.found and spool is None:
                spool = Spool(dirs, suffix_of(form.filename, form.content_type), expected)
                sink = _Sink(spool)
            if sink is not None:
                for data in form.chunks:
                    await sink.feed(data)
            form.chunks.clear()
        if spool is None or sink is None:
            raise UploadProblem(400, "send the audio as the multipart field 'file'")
        if not form.ended:
            raise UploadProblem(400, "the multipart upload ended before its file did")
        await sink.flush()
        if spool.size == 0:
            raise UploadProblem(400, "the upload is empty")
        return await sink.close()
    except BaseException:
        if spool is not None:
            spool.discard()
        raise
