"""Audio in: decode, inspect, stream and standardize.

Arrays are float32 with shape ``[channels, samples]`` everywhere, even for mono (one row).

Decoding: soundfile (libsndfile) for WAV, FLAC, OGG/Vorbis, MP3 and the other formats it
knows, because it is exact and seekable; PyAV (ffmpeg) for m4a, aac, opus, webm and the audio
track of video containers (mp4, mkv, mov), which libsndfile cannot open. Resampling: soxr,
the same high-quality resampler librosa uses by default.

Nothing is read whole on trust of a header: samples are read in bounded blocks, and a WAV
header announcing more audio than the file holds is rejected before any decoding.

Decoding has a budget. Before any sample is decoded, the header's sample rate (at most
:data:`MAX_SAMPLE_RATE`), channel count (at most :data:`MAX_CHANNELS`) and length are
checked; :func:`load` also refuses a file whose samples at its own rate would take more than
``max_decoded_bytes`` (:data:`DEFAULT_MAX_DECODED_BYTES`) as float32, and keeps counting while
it decodes, for headers that understate. A file is decoded and resampled block by block (a
streaming soxr resampler), so the memory :func:`load` needs follows the output: its rate and
length, never the file's own rate. A 2.7 MB FLAC holding 590 s at 655,350 Hz (1.5 GB as
float32 at that rate) loads at 16 kHz with 78 MB of peak memory (twice its 38 MB output);
decoded whole before resampling it took 3 GB.
"""

from __future__ import annotations

import math
import numbers
import os
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import soundfile as sf
import soxr

from earmark.config import JsonConfig
from earmark.errors import (
    AudioError,
    CorruptAudioError,
    DecodedSizeError,
    DurationLimitError,
    EarmarkError,
    EmptyFileError,
    FileMissingError,
    InvalidChannelsError,
    InvalidSampleRateError,
    NonFiniteSamplesError,
    NotAudioError,
    ParameterError,
    TruncatedFileError,
    UnsupportedCodecError,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioConfig",
    "AudioInfo",
    "fix_length",
    "info",
    "load",
    "load_clip",
    "normalize",
    "read_through",
    "resample",
    "set_channels",
    "standardize",
    "stream",
]

#: Extensions decoded with PyAV (ffmpeg); everything else goes to soundfile first.
PYAV_EXTENSIONS = frozenset(
    {".m4a", ".aac", ".opus", ".webm", ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".wma", ".3gp"}
)
#: Extensions libsndfile reads.
SOUNDFILE_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf"}
    | {".w64", ".rf64"}
)
#: Every extension earmark treats as audio when it scans a folder.
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | PYAV_EXTENSIONS

MIN_SAMPLE_RATE = 1_000  # Hz; below this a "sample rate" is a broken header, not audio
#: Hz. The highest PCM rate converters offer (768 kHz: ESS and AKM chips, DXD x2); ultrasonic
#: recorders for bats and rodents record at 250-500 kHz. Above it a rate is a broken header
#: or a bomb, not a recording.
MAX_SAMPLE_RATE = 768_000
#: Channels. Large microphone arrays and 7th-order ambisonics have 64; 256 leaves room for
#: bigger arrays, well under libsndfile's own ceiling (1024). Read blocks shrink with the
#: channel count, so memory stays bounded either way.
MAX_CHANNELS = 256
DEFAULT_MAX_DURATION = 3600.0  # seconds that `load` reads whole; use `stream` for longer
MAX_CLIP_SECONDS = 3600.0  # the longest clip (AudioConfig.duration) a model can be given
#: Bytes of float32 samples at the file's own rate that `load` decodes: 4 GiB is an hour of
#: stereo at 96 kHz (2.8 GB) with room to spare, or ten minutes of 64 channels at 48 kHz.
#: Beyond that the decoding time alone is the problem; `stream` has no such limit.
DEFAULT_MAX_DECODED_BYTES = 4 << 30
_BLOCK_BYTES = 1 << 22  # bytes per read block (float32, all channels): 4 MiB
_MAX_BLOCK_FRAMES = 1 << 18  # frames per read block at most (mono: 1 MiB)
#: float32 bytes at the file's rate (after channel mixing) up to which `load` resamples the
#: whole signal in one soxr call, as before; longer signals are resampled as they are decoded.
_WHOLE_RESAMPLE_BYTES = 1 << 24
_UNKNOWN_FRAMES = 1 << 62  # libsndfile's frame count of a stream of unknown length: 2**63-1
_SEEK_PREROLL = 0.2  # seconds decoded and dropped before an offset in a compressed stream
# libsndfile's frame count for these subtypes is exact; compressed ones may be estimates.
_EXACT_SUBTYPES = ("PCM", "FLOAT", "DOUBLE", "ULAW", "ALAW")


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header without decoding the samples.

    ``frames`` is per channel; ``duration`` is in seconds. For compressed formats both can be
    estimates made by the container.
    """

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str
    codec: str
    backend: Literal["soundfile", "pyav"]


# ---------------------------------------------------------------------------------------------
# Opening and checking a file


def _check_file(path: Path) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileMissingError(path, "no such file") from None
    except OSError as exc:
        raise FileMissingError(path, f"cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileMissingError(path, "not a regular file")
    size = st.st_size
    if size == 0:
        raise EmptyFileError(path, "the file is empty (0 bytes)")
    return size


def _check_rate_and_channels(path: Path, sample_rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InvalidSampleRateError(
            path,
            f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
        )
    if not 0 < channels <= MAX_CHANNELS:
        raise InvalidChannelsError(
            path, f"the header declares {channels} channels (accepted: 1..{MAX_CHANNELS})"
        )


def _block_frames(channels: int) -> int:
    """Frames per read block: ``_BLOCK_BYTES`` of float32 over all channels."""
    return max(1024, min(_MAX_BLOCK_FRAMES, _BLOCK_BYTES // (4 * max(1, channels))))


def _check_budget(
    path: Path, rate: int, channels: int, frames: int, max_decoded_bytes: int | None
) -> None:
    """Refuse, before decoding, a span of ``frames`` whose float32 samples at the file's own
    rate would exceed ``max_decoded_bytes``."""
    if max_decoded_bytes is None:
        return
    need = 4 * channels * frames
    if need > max_decoded_bytes:
        raise DecodedSizeError(
            path,
            f"{frames / rate:.1f} s of {channels} channels at {rate} Hz would decode to "
            f"{_mb(need)} (the limit is {_mb(max_decoded_bytes)}; use earmark.audio.stream, "
            "or raise max_decoded_bytes)",
        )


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


@dataclass(frozen=True)
class _WavLayout:
    """What the RIFF header of a WAV says: format tag, channels, rate (Hz), bits per sample,
    block align, and where the sample data starts and how many bytes it holds (``None``:
    the size field says "unknown")."""

    tag: int
    channels: int
    sample_rate: int
    bits: int
    align: int
    data_offset: int
    data_bytes: int | None


def _check_riff_header(path: Path, size: int) -> _WavLayout | None:
    """Reject a WAV whose header contradicts the file before libsndfile sees it, and return
    its layout (``None`` for a file that is not RIFF/WAVE).

    libsndfile quietly shrinks a data chunk that runs past the end of the file, so a file cut
    in the middle would load as shorter audio, and gives cryptic messages for a zero rate.
    Sizes 0 and 0xFFFFFFFF mean "unknown" (written by streaming encoders) and are accepted:
    reading stops at the real end of the file either way.
    """
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        fmt: tuple[int, int, int, int, int] | None = None  # tag, channels, rate, align, bits
        for _ in range(64):  # a WAV has a handful of chunks; stop scanning junk early
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                break
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt " and csize >= 16:
                body = fh.read(16)
                if len(body) < 16:
                    raise TruncatedFileError(path, "truncated: the WAV file ends inside its header")
                tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body)
                fmt = (tag, channels, rate, align, bits)
                if not 0 < channels <= MAX_CHANNELS:
                    raise InvalidChannelsError(
                        path,
                        f"the WAV header declares {channels} channels "
                        f"(accepted: 1..{MAX_CHANNELS})",
                    )
                if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                    raise InvalidSampleRateError(
                        path,
                        f"the WAV header declares a sample rate of {rate} Hz "
                        f"(accepted: {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)",
                    )
            elif cid == b"data":
                available = size - (pos + 8)
                shape = None if fmt is None else (fmt[1], fmt[2], fmt[3])
                if csize not in (0, 0xFFFFFFFF) and csize > available:
                    claimed = _describe_bytes(csize, shape)
                    held = _describe_bytes(available, shape)
                    raise TruncatedFileError(
                        path,
                        f"truncated: the WAV header announces {claimed} of audio "
                        f"but the file holds only {held}",
                    )
                if available <= 0:
                    raise EmptyFileError(path, "the WAV file has a header but no samples")
                if fmt is None:  # data before fmt: unusual, left to libsndfile
                    return None
                known = csize if csize not in (0, 0xFFFFFFFF) else None
                return _WavLayout(
                    *fmt[:3], bits=fmt[4], align=fmt[3], data_offset=pos + 8, data_bytes=known
                )
            pos += 8 + csize + (csize & 1)
        if fmt is None:
            raise CorruptAudioError(path, "the WAV file has no valid 'fmt ' chunk")
        return None


def _read_pcm16_wav(
    path: Path,
    max_duration: float | None,
    max_decoded_bytes: int | None = None,
    sr: int | None = None,
) -> tuple[np.ndarray, int] | None:
    """A whole plain 16-bit PCM WAV as float32 ``[channels, samples]``, read in one go, or
    ``None`` for any other file (those go through libsndfile / PyAV), and for a long one
    that is to be resampled to ``sr`` (read in blocks, so that memory follows the output).

    Most clip data sets are such files; one read and one conversion cost a fraction of
    libsndfile's per-call overhead, which dominates for short clips. The scale (1 / 32768) is
    libsndfile's, so both paths give identical samples (tested).
    """
    if path.suffix.lower() != ".wav":
        return None
    layout = _check_riff_header(path, _check_file(path))
    if (
        layout is None
        or layout.tag != 1  # WAVE_FORMAT_PCM
        or layout.bits != 16
        or layout.align != 2 * layout.channels
        or layout.data_bytes is None
    ):
        return None
    frames = layout.data_bytes // layout.align
    if frames == 0:
        raise EmptyFileError(path, "the WAV file has a header but no samples")
    if max_duration is not None and frames > round(max_duration * layout.sample_rate):
        raise DurationLimitError(
            path,
            f"{frames / layout.sample_rate:.1f} s of audio is over the limit of "
            f"{max_duration:.1f} s (raise max_duration, or use earmark.audio.stream for long "
            "recordings)",
        )
    _check_budget(path, layout.sample_rate, layout.channels, frames, max_decoded_bytes)
    whole = 4 * layout.channels * frames
    if sr is not None and sr != layout.sample_rate and whole > _WHOLE_RESAMPLE_BYTES:
        return None
    pcm = np.fromfile(path, dtype="<i2", count=frames * layout.channels, offset=layout.data_offset)
    y = np.empty((layout.channels, frames), dtype=np.float32)
    np.multiply(pcm.reshape(frames, layout.channels).T, np.float32(1 / 32768), out=y)
    return y, layout.sample_rate


def _describe_bytes(n: int, fmt: tuple[int, int, int] | None) -> str:
    if fmt is None or fmt[1] == 0 or fmt[2] == 0:
        return f"{n} bytes"
    return f"{n} bytes ({n / fmt[2] / fmt[1]:.2f} s)"


def _soundfile_error(path: Path, exc: Exception) -> AudioError:
    msg = str(exc).split(":", 1)[-1].strip() if ":" in str(exc) else str(exc)
    low = msg.lower()
    if "channel count is zero" in low:
        return InvalidChannelsError(path, "the header declares 0 channels")
    if "sf_info struct incomplete" in low or "sample rate" in low:
        return InvalidSampleRateError(
            path, f"the header's sample rate or layout is invalid ({msg})"
        )
    if "malformed" in low or "lost sync" in low or "unexpected end" in low:
        return CorruptAudioError(path, f"malformed or truncated ({msg})")
    if "not supported" in low or "unsupported" in low:
        return UnsupportedCodecError(path, f"unsupported encoding ({msg})")
    return CorruptAudioError(path, f"cannot decode ({msg})")


def _open_pyav(path: Path) -> tuple[Any, Any]:
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError:
        raise NotAudioError(path, "not an audio or media file (no decoder recognises it)") from None
    except av.error.FFmpegError as exc:
        raise CorruptAudioError(path, f"cannot open: {exc}") from None
    if not container.streams.audio:
        container.close()
        raise UnsupportedCodecError(path, f"the {container.format.name} file has no audio track")
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # no decoder: PyAV then has no codec object either
        codec = getattr(getattr(stream, "codec", None), "name", None) or "of this stream"
        container.close()
        raise UnsupportedCodecError(path, f"no decoder for the audio codec {codec}")
    return container, stream


def _pyav_info(path: Path, container: Any, stream: Any) -> AudioInfo:
    ctx = stream.codec_context
    rate, channels = int(ctx.sample_rate or 0), int(ctx.channels or 0)
    _check_rate_and_channels(path, rate, channels)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    frames = round(duration * rate)
    return AudioInfo(
        str(path), rate, channels, frames, frames / rate, container.format.name, ctx.name, "pyav"
    )


def _probe(path: Path) -> tuple[AudioInfo, sf.SoundFile | None]:
    """Check the file and read its header; for soundfile, also return the open handle so the
    samples are read without opening the file again (the caller closes it)."""
    size = _check_file(path)
    if path.suffix.lower() not in PYAV_EXTENSIONS:
        _check_riff_header(path, size)
        try:
            f = sf.SoundFile(str(path))
        except sf.LibsndfileError as exc:
            if "format not recognised" not in str(exc).lower():
                raise _soundfile_error(path, exc) from None
        else:
            try:
                _check_rate_and_channels(path, f.samplerate, f.channels)
                if f.frames <= 0:
                    raise EmptyFileError(path, "the file has a header but no samples")
            except AudioError:
                f.close()
                raise
            meta = AudioInfo(
                str(path),
                f.samplerate,
                f.channels,
                f.frames,
                f.frames / f.samplerate,
                f.format,
                f.subtype,
                "soundfile",
            )
            return meta, f
    container, stream = _open_pyav(path)
    with container:
        return _pyav_info(path, container, stream), None


def info(path: str | Path) -> AudioInfo:
    """Read a file's header: sample rate (Hz), channels, frames, duration (s), format, codec.

    Raises an :class:`earmark.errors.AudioError` subclass naming the file when it is missing,
    empty, truncated, not audio, or declares an impossible rate or channel count.
    """
    meta, handle = _probe(Path(path))
    if handle is not None:
        handle.close()
    return meta


# ---------------------------------------------------------------------------------------------
# Decoding: one chunk iterator per backend, shared by load() and stream()


#: Integer PCM read as integers and scaled here: the same float32 samples as libsndfile's own
#: conversion (a power-of-two scale: exact, checked in the tests), which is a scalar loop 4x
#: slower than numpy's (an hour of 16-bit audio at 16 kHz: 0.21 s of CPU against 0.05 s).
_INTEGER_READS: dict[str, tuple[str, np.float32]] = {
    "PCM_16": ("int16", np.float32(2.0**-15)),
    "PCM_24": ("int32", np.float32(2.0**-31)),  # libsndfile left-justifies 24 bits in 32
    "PCM_32": ("int32", np.float32(2.0**-31)),
}


def _iter_soundfile(
    meta: AudioInfo, f: sf.SoundFile, start: int, stop: int | None
) -> Iterator[np.ndarray]:
    path = Path(meta.path)
    want = (meta.frames if stop is None else min(stop, meta.frames)) - start
    got = 0
    size = _block_frames(meta.channels)
    integer, scale = _INTEGER_READS.get(f.subtype, ("float32", None))
    try:
        with f:
            if start:
                f.seek(start)
            while stop is None or got < stop - start:
                n = size if stop is None else min(size, stop - start - got)
                block = f.read(n, dtype=integer, always_2d=True)
                got += block.shape[0]
                if block.shape[0]:
                    yield (
                        block.T if scale is None else np.multiply(block.T, scale, dtype=np.float32)
                    )
                if block.shape[0] < n:  # a short read is the end of the file
                    break
    except sf.LibsndfileError as exc:
        err = _soundfile_error(path, exc)
        err.problem = f"decoding failed after {got / meta.sample_rate:.2f} s: {err.problem}"
        err.args = (f"{err.path}: {err.problem}",)
        raise err from None
    exact = meta.codec.upper().startswith(_EXACT_SUBTYPES)
    slack = 0 if exact else max(2048, want // 100)
    if got < want - slack:
        raise TruncatedFileError(
            path,
            f"truncated: decoded {got / meta.sample_rate:.2f} s of the "
            f"{want / meta.sample_rate:.2f} s the header announces",
        )


def _frame_to_float(frame: Any) -> np.ndarray:
    """An av.AudioFrame as float32 ``[channels, samples]`` in [-1, 1]."""
    a = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        a = a.reshape(-1, channels).T
    if a.dtype.kind == "i":
        return a.astype(np.float32) / np.float32(2 ** (8 * a.dtype.itemsize - 1))
    if a.dtype.kind == "u":
        return (a.astype(np.float32) - 128.0) / 128.0
    return a.astype(np.float32, copy=False)


def _iter_pyav(meta: AudioInfo, start: int, stop: int | None) -> Iterator[np.ndarray]:
    path = Path(meta.path)
    container, stream = _open_pyav(path)
    rate = meta.sample_rate
    pos: int | None = None
    with container:
        try:
            if start > 0:
                # Land well before the target: codecs with overlapping frames (AAC, Opus)
                # need a few frames of pre-roll before their output is exact again.
                target = max(0.0, start / rate - _SEEK_PREROLL)
                container.seek(int(target / stream.time_base), stream=stream)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if pos is None:
                        # Position from the first frame's timestamp, then by counting samples:
                        # per-frame timestamps in ms time bases would drift by rounding.
                        pos = 0 if frame.pts is None else round(frame.pts * frame.time_base * rate)
                    a = _frame_to_float(frame)
                    if a.shape[0] != meta.channels or frame.sample_rate != rate:
                        raise CorruptAudioError(
                            path,
                            f"the stream changes from {meta.channels} channels at {rate} Hz "
                            f"to {a.shape[0]} at {frame.sample_rate} Hz after {pos / rate:.2f} s",
                        )
                    lo, hi = pos, pos + a.shape[1]
                    pos = hi
                    if hi <= start:
                        continue
                    a = a[:, max(0, start - lo) : (None if stop is None else max(0, stop - lo))]
                    if a.shape[1]:
                        yield a
                    if stop is not None and pos >= stop:
                        return
        except av.error.FFmpegError as exc:
            done = 0.0 if pos is None else pos / rate
            raise CorruptAudioError(path, f"decoding failed after {done:.2f} s: {exc}") from None


def _chunks(
    path: Path,
    offset: float,
    duration: float | None,
    max_duration: float | None = None,
    max_decoded_bytes: int | None = None,
) -> tuple[AudioInfo, Iterator]:
    """Probe ``path``, check the span asked for (against ``max_duration`` seconds and
    ``max_decoded_bytes``), and return the chunk iterator over it."""
    _check_span(path, offset, duration)
    meta, handle = _probe(path)
    try:
        start = round(offset * meta.sample_rate)
        if meta.frames and start >= meta.frames:
            raise ParameterError(
                f"{path}: offset {offset:.3f} s is at or past the end of the audio "
                f"({meta.duration:.3f} s)"
            )
        span = meta.duration - offset if duration is None else min(duration, meta.duration - offset)
        if max_duration is not None and span > max_duration:
            raise DurationLimitError(
                path,
                f"{span:.1f} s of audio is over the limit of {max_duration:.1f} s "
                "(raise max_duration, or use earmark.audio.stream for long recordings)",
            )
        if meta.frames < _UNKNOWN_FRAMES:  # libsndfile's "unknown length" is checked later
            frames = round(span * meta.sample_rate)
            _check_budget(path, meta.sample_rate, meta.channels, frames, max_decoded_bytes)
    except EarmarkError:
        if handle is not None:
            handle.close()
        raise
    stop = None if duration is None else start + round(duration * meta.sample_rate)
    if handle is not None:
        return meta, _iter_soundfile(meta, handle, start, stop)
    return meta, _iter_pyav(meta, start, stop)


def _check_span(path: Path, offset: float, duration: float | None) -> None:
    if not (math.isfinite(offset) and offset >= 0):
        raise ParameterError(f"{path}: offset must be a finite number >= 0 seconds, got {offset}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ParameterError(
            f"{path}: duration must be a finite number > 0 seconds, got {duration}"
        )


def _downmix(y: np.ndarray) -> np.ndarray:
    return y if y.shape[0] == 1 else y.mean(axis=0, keepdims=True, dtype=np.float32)


def load(
    path: str | Path,
    sr: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    *,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES,
) -> tuple[np.ndarray, int]:
    """Decode a file into float32 ``[channels, samples]`` and its sample rate (Hz).

    Args:
        path: any file soundfile or PyAV can decode (wav, flac, ogg, mp3, m4a, mp4, ...).
        sr: target sample rate in Hz (resampled with soxr); ``None`` keeps the file's rate.
        mono: average the channels into one row.
        offset: start reading this many seconds into the file.
        duration: read at most this many seconds.
        max_duration: refuse to read more than this many seconds (``None``: no limit). Long
            recordings belong to :func:`stream`, which holds one block at a time.
        max_decoded_bytes: refuse a file whose samples (the span read, all its channels) at
            its own rate would take more than this many bytes as float32 (``None``: no
            limit). Checked against the header before decoding, and again while decoding.

    The file is decoded in blocks and, when ``sr`` differs from its rate, resampled as it is
    decoded: the memory needed follows the output (``sr``, channels, length), not the file's
    own rate. Short signals are resampled in one go, long ones with a streaming resampler;
    the two agree to float32 rounding.

    Raises:
        AudioError: a subclass naming the file and what is wrong with it
        (:class:`earmark.errors.DecodedSizeError` over the decoding budget).
    """
    return _decode(
        Path(path),
        sr=sr,
        mix=_downmix if mono else None,
        offset=offset,
        duration=duration,
        max_duration=max_duration,
        max_decoded_bytes=max_decoded_bytes,
    )


def _check_target_rate(sr: int | None) -> None:
    if sr is None:
        return
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)):
        raise ParameterError(f"sr must be a whole number of Hz, got {sr!r}")
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise ParameterError(
            f"sr must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sr}"
        )


def _decode(
    path: Path,
    *,
    sr: int | None,
    mix: Callable[[np.ndarray], np.ndarray] | None,
    offset: float = 0.0,
    duration: float | None = None,
    max_duration: float | None = DEFAULT_MAX_DURATION,
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES,
) -> tuple[np.ndarray, int]:
    """:func:`load` with any channel mapping ``mix`` (``[c, n] -> [c', n]``), applied block
    by block before resampling to ``sr``."""
    _check_target_rate(sr)
    if offset == 0 and duration is None:
        fast = _read_pcm16_wav(path, max_duration, max_decoded_bytes, sr)
        if fast is not None:
            y, rate = fast
            y = mix(y) if mix is not None else y
            return (resample(y, rate, sr), sr) if sr is not None and sr != rate else (y, rate)
    meta, chunks = _chunks(path, offset, duration, max_duration, max_decoded_bytes)
    rate = meta.sample_rate
    limit = None if max_duration is None else round(max_duration * rate)
    if max_decoded_bytes is not None:
        most = max_decoded_bytes // (4 * meta.channels)
        limit = most if limit is None else min(limit, most)
    convert = sr is not None and sr != rate
    check = not _integer_coded(meta)
    parts: list[np.ndarray] = []  # at the output rate (or, until a resampler starts, the file's)
    held = 0  # bytes in parts not yet resampled
    resampler: soxr.ResampleStream | None = None
    total = 0
    for chunk in chunks:
        if check:
            _check_finite(path, chunk, rate, total)
        total += chunk.shape[1]
        if limit is not None and total > limit:  # the header understated the length
            if max_duration is not None and total > round(max_duration * rate):
                raise DurationLimitError(path, f"audio runs past the limit of {max_duration:.1f} s")
            _check_budget(path, rate, meta.channels, total, max_decoded_bytes)
        if mix is not None:
            chunk = mix(chunk)
        if resampler is not None:
            parts.append(_resample_chunk(resampler, chunk))
            continue
        parts.append(chunk)
        held += chunk.nbytes
        if convert and held > _WHOLE_RESAMPLE_BYTES:  # long: resample as it is decoded
            resampler = soxr.ResampleStream(rate, sr, chunk.shape[0], dtype="float32", quality="HQ")
            parts = [_resample_chunk(resampler, p) for p in parts]
    if total == 0:
        raise EmptyFileError(path, "no audio samples could be decoded")
    if resampler is not None:
        channels = parts[0].shape[0]
        parts.append(_resample_chunk(resampler, np.zeros((channels, 0), np.float32), last=True))
    y = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    del parts
    y = np.ascontiguousarray(y, dtype=np.float32)
    if convert and resampler is None:  # short: one soxr call over all of it
        y = resample(y, rate, sr)
    if y.shape[1] == 0:
        raise EmptyFileError(
            path, f"{total} samples at {rate} Hz are too few to give any at {sr} Hz"
        )
    return y, (sr if convert else rate)


def _resample_chunk(
    resampler: soxr.ResampleStream, chunk: np.ndarray, *, last: bool = False
) -> np.ndarray:
    """``[channels, n]`` through a streaming resampler: ``[channels, m]`` float32."""
    out = resampler.resample_chunk(np.ascontiguousarray(chunk.T), last=last)
    return out.reshape(-1, chunk.shape[0]).T


def _integer_coded(meta: AudioInfo) -> bool:
    """Integer PCM (and u-law / A-law) cannot hold NaN or infinity: no need to scan for them."""
    return meta.backend == "soundfile" and meta.codec.upper().startswith(("PCM", "ULAW", "ALAW"))


def _check_finite(path: Path, y: np.ndarray, sr: int, start: int = 0) -> None:
    finite = np.isfinite(y)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=0))
        raise NonFiniteSamplesError(
            path,
            f"{bad.size} samples are NaN or infinite (first at {(start + bad[0]) / sr:.3f} s)",
        )


def stream(
    path: str | Path,
    block_seconds: float,
    *,
    sr: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield consecutive blocks of ``block_seconds`` as float32 ``[channels, samples]``.

    Every block but the last holds exactly ``round(block_seconds * rate)`` samples at the
    output rate ``sr`` (or the file's). Memory stays bounded by the block size however long
    the recording is; resampling is done by a streaming soxr resampler, so blocks join
    seamlessly. An ``offset`` into a Matroska/WebM file is exact to +-1 ms only: those
    containers time-stamp in milliseconds.
    """
    if not (math.isfinite(block_seconds) and block_seconds > 0):
        raise ParameterError(f"block_seconds must be a finite number > 0, got {block_seconds}")
    _check_target_rate(sr)
    path = Path(path)
    meta, chunks = _chunks(path, offset, duration)
    out_rate = sr or meta.sample_rate
    block = max(1, round(block_seconds * out_rate))
    channels = 1 if mono else meta.channels
    resampler = (
        soxr.ResampleStream(meta.sample_rate, out_rate, channels, dtype="float32", quality="HQ")
        if out_rate != meta.sample_rate
        else None
    )
    pending: list[np.ndarray] = []
    held = 0
    done_in = 0
    integer = _integer_coded(meta)

    def take(chunk: np.ndarray) -> Iterator[np.ndarray]:
        nonlocal held, pending
        if chunk.shape[1]:
            pending.append(chunk)
            held += chunk.shape[1]
        while held >= block:
            buf = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
            yield np.ascontiguousarray(buf[:, :block])
            rest = buf[:, block:]
            pending, held = ([rest] if rest.shape[1] else []), rest.shape[1]

    for chunk in chunks:
        chunk = _downmix(chunk) if mono else chunk
        if not integer:
            _check_finite(path, chunk, meta.sample_rate, done_in)
        done_in += chunk.shape[1]
        if resampler is not None:
            chunk = resampler.resample_chunk(np.ascontiguousarray(chunk.T)).T
        yield from take(chunk)
    if resampler is not None:
        yield from take(resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True).T)
    if held:
        yield np.ascontiguousarray(np.concatenate(pending, axis=1))


def read_through(path: str | Path) -> tuple[int, float]:
    """Decode all of ``path`` without keeping it, in bounded blocks: the frames decoded (per
    channel, at the file's rate) and the peak absolute sample. Raises what :func:`load`
    raises for a broken file (truncated, NaN samples, ...), but has no length limit and
    needs one block of memory whatever the file's length, rate or channel count."""
    path = Path(path)
    meta, chunks = _chunks(path, 0.0, None)
    integer = _integer_coded(meta)
    frames, peak = 0, 0.0
    for chunk in chunks:
        if not integer:
            _check_finite(path, chunk, meta.sample_rate, frames)
        frames += chunk.shape[1]
        peak = max(peak, float(np.abs(chunk).max(initial=0.0)))
    if frames == 0:
        raise EmptyFileError(path, "no audio samples could be decoded")
    return frames, peak


# ---------------------------------------------------------------------------------------------
# Standardization


def resample(y: np.ndarray, orig_sr: int, target_sr: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample ``[channels, samples]`` from ``orig_sr`` to ``target_sr`` (Hz) with soxr."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ParameterError(f"sample rates must be > 0 Hz, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return y
    out = soxr.resample(np.ascontiguousarray(y.T), orig_sr, target_sr, quality=quality)
    return np.ascontiguousarray(out.reshape(-1, y.shape[0]).T, dtype=np.float32)


ChannelPolicy = Literal["downmix", "pick", "duplicate"]


def set_channels(
    y: np.ndarray, channels: int, *, policy: ChannelPolicy = "downmix", channel: int = 0
) -> np.ndarray:
    """Return ``y`` (``[c, samples]``) with ``channels`` rows.

    ``downmix`` averages all input channels, ``pick`` keeps input channel ``channel``; either
    result is repeated when more than one output channel is asked for. ``duplicate`` keeps the
    first ``channels`` input channels and repeats them cyclically when there are too few
    (a mono file becomes identical left and right).
    """
    if channels < 1:
        raise ParameterError(f"channels must be >= 1, got {channels}")
    if y.ndim != 2 or y.shape[0] < 1:
        raise ParameterError(f"expected audio shaped [channels, samples], got {y.shape}")
    if policy == "downmix":
        mono = _downmix(y)
    elif policy == "pick":
        if not -y.shape[0] <= channel < y.shape[0]:
            raise ParameterError(f"channel {channel} does not exist in {y.shape[0]}-channel audio")
        mono = y[channel : channel + 1] if channel >= 0 else y[[channel]]
    elif policy == "duplicate":
        if y.shape[0] == channels:
            return y
        return np.ascontiguousarray(y[np.arange(channels) % y.shape[0]])
    else:
        raise ParameterError(f"unknown channel policy {policy!r}; use downmix, pick or duplicate")
    return np.ascontiguousarray(np.repeat(mono, channels, axis=0) if channels > 1 else mono)


CropPolicy = Literal["start", "center", "random"]
PadPolicy = Literal["end", "both"]


def fix_length(
    y: np.ndarray,
    size: int,
    *,
    crop: CropPolicy = "start",
    pad: PadPolicy = "end",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Make ``y`` (``[..., samples]``) exactly ``size`` samples long.

    Longer input is cropped: ``start`` keeps the head (a plain trim), ``center`` the middle,
    ``random`` a window drawn from ``rng`` (required, so crops are repeatable). Shorter input
    is zero-padded at the ``end`` or on ``both`` sides (centred).
    """
    if size < 1:
        raise ParameterError(f"size must be >= 1 samples, got {size}")
    n = y.shape[-1]
    if n > size:
        if crop == "start":
            start = 0
        elif crop == "center":
            start = (n - size) // 2
        elif crop == "random":
            if rng is None:
                raise ParameterError("crop='random' needs an explicit rng (np.random.Generator)")
            start = int(rng.integers(0, n - size + 1))
        else:
            raise ParameterError(f"unknown crop policy {crop!r}; use start, center or random")
        return np.ascontiguousarray(y[..., start : start + size])
    if n < size:
        if pad == "end":
            before = 0
        elif pad == "both":
            before = (size - n) // 2
        else:
            raise ParameterError(f"unknown pad policy {pad!r}; use end or both")
        # zeros + a copy: np.pad's generic machinery costs more than the copy itself
        out = np.zeros((*y.shape[:-1], size), dtype=y.dtype)
        out[..., before : before + n] = y
        return out
    return y


NormalizeMethod = Literal["peak", "rms"]
_DEFAULT_TARGET_DB = {"peak": -1.0, "rms": -20.0}


def normalize(
    y: np.ndarray, *, method: NormalizeMethod = "peak", target_db: float | None = None
) -> np.ndarray:
    """Scale ``y`` so its peak (``peak``, default -1 dBFS) or RMS level (``rms``, a simple
    loudness measure, default -20 dBFS) sits at ``target_db``. Silence is returned unchanged;
    the result is clipped to [-1, 1] only by the caller's choice of target, never here.
    """
    if method not in _DEFAULT_TARGET_DB:
        raise ParameterError(f"unknown normalization {method!r}; use peak or rms")
    target = _DEFAULT_TARGET_DB[method] if target_db is None else target_db
    level = float(np.abs(y).max()) if method == "peak" else float(np.sqrt(np.mean(np.square(y))))
    if level <= 1e-10:
        return y
    return (y * np.float32(10 ** (target / 20) / level)).astype(np.float32)


@dataclass(frozen=True)
class AudioConfig(JsonConfig):
    """How every clip is standardized before features: plain data, round-trips through JSON.

    ``sample_rate`` in Hz; ``duration`` in seconds (``None`` keeps each clip's own length);
    longer clips are cropped by ``crop`` (default the centre, as validation during training
    does), shorter ones padded by ``pad``; ``max_duration`` in seconds is the longest file
    accepted.
    """

    sample_rate: int = 16_000
    channels: int = 1
    channel_policy: ChannelPolicy = "downmix"
    channel: int = 0
    duration: float | None = None
    crop: CropPolicy = "center"
    pad: PadPolicy = "end"
    normalize: NormalizeMethod | None = None
    target_db: float | None = None
    max_duration: float | None = DEFAULT_MAX_DURATION

    def __post_init__(self) -> None:
        rate = self.sample_rate
        if isinstance(rate, float) and rate.is_integer():
            object.__setattr__(self, "sample_rate", rate := int(rate))
        if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
            raise ParameterError(f"sample_rate must be a whole number of Hz, got {rate!r}")
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise ParameterError(
                f"sample_rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, "
                f"got {rate}"
            )
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise ParameterError(f"channels must be 1..{MAX_CHANNELS}, got {self.channels}")
        for name, most in (("duration", MAX_CLIP_SECONDS), ("max_duration", math.inf)):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ParameterError(f"{name} must be a number of seconds, got {value!r}")
            if not (math.isfinite(value) and 0 < value <= most):
                limit = f" and at most {most:g} s" if math.isfinite(most) else ""
                raise ParameterError(
                    f"{name} must be a finite number of seconds > 0{limit}, got {value}"
                )
        db = self.target_db
        if db is not None and not (isinstance(db, numbers.Real) and math.isfinite(db)):
            raise ParameterError(f"target_db must be a finite number, got {db!r}")
        if self.normalize not in (None, *_DEFAULT_TARGET_DB):
            raise ParameterError(f"unknown normalization {self.normalize!r}; use peak or rms")

    @property
    def n_samples(self) -> int | None:
        """Samples per clip after standardization, or ``None`` when lengths vary."""
        return None if self.duration is None else round(self.duration * self.sample_rate)


def standardize(
    y: np.ndarray, sr: int, config: AudioConfig, *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Apply ``config`` to ``y`` (``[channels, samples]`` at ``sr`` Hz): channels, rate, a crop
    to ``duration``, normalization, then padding to ``duration``. ``rng`` is needed only for
    ``crop='random'``."""
    y = set_channels(y, config.channels, policy=config.channel_policy, channel=config.channel)
    y = resample(y, sr, config.sample_rate)
    return _fit(y, config, rng)


def _fit(y: np.ndarray, config: AudioConfig, rng: np.random.Generator | None) -> np.ndarray:
    """The length and level steps of :func:`standardize`, on audio already at the config's
    rate and channels."""
    n = config.n_samples
    if n is not None and y.shape[-1] > n:
        y = fix_length(y, n, crop=config.crop, rng=rng)
    # normalized after cropping and before padding: as each window of a long file is
    # (earmark.preprocess), so a training clip and a window of the same audio agree
    if config.normalize is not None:
        y = normalize(y, method=config.normalize, target_db=config.target_db)
    if n is not None and y.shape[-1] < n:
        y = fix_length(y, n, pad=config.pad)
    return y


def load_clip(
    path: str | Path,
    config: AudioConfig,
    *,
    rng: np.random.Generator | None = None,
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode ``path`` and standardize it with ``config``: float32 ``[channels, samples]``.

    The same as :func:`standardize` of :func:`load`, but the channels are set and the rate
    changed block by block as the file is decoded (see :func:`load`): memory follows the
    config's rate, not the file's. ``max_decoded_bytes`` is :func:`load`'s decoding budget
    (a server may want a smaller one: decoding time follows the file's own rate).

    ``offset`` / ``duration`` (seconds) read one segment of a longer recording, as a clip of
    its own (a window of an annotated recording): soundfile seeks to it, PyAV seeks to a
    little before it, and only the segment is decoded, so memory and the ``max_duration`` /
    budget checks follow the segment, not the recording. A segment that runs past the end of
    the file is zero-padded to ``duration`` (as detection pads its last window); one that
    starts at or after the end raises :class:`AudioError` naming the file and the span."""

    def mix(y: np.ndarray) -> np.ndarray:
        return set_channels(
            y, config.channels, policy=config.channel_policy, channel=config.channel
        )

    segment = offset != 0 or duration is not None
    try:
        y, _ = _decode(
            Path(path),
            sr=config.sample_rate,
            mix=mix,
            offset=offset,
            duration=duration,
            max_duration=config.max_duration,
            max_decoded_bytes=max_decoded_bytes,
        )
    except ParameterError as exc:
        if not segment or "past the end" not in str(exc):
            raise
        end = "" if duration is None else f"-{offset + duration:.3f}"
        raise AudioError(
            path, f"segment {offset:.3f}{end} s starts at or past the end of the audio"
        ) from None
    if duration is not None:
        want = round(duration * config.sample_rate)
        if y.shape[1] < want:  # the segment runs past the end of the file: zeros
            y = np.pad(y, ((0, 0), (0, want - y.shape[1])))
        elif y.shape[1] > want:  # resampling rounding
            y = y[:, :want]
    return _fit(y, config, rng)
