"""Exceptions raised by earmark.

Everything derives from :class:`EarmarkError`, so ``except EarmarkError`` catches any problem
earmark reports on purpose. Errors about a file carry its path and say what is wrong with it.
"""

from __future__ import annotations

from os import PathLike


class EarmarkError(Exception):
    """Root of every error earmark raises on purpose."""


class ParameterError(EarmarkError, ValueError):
    """A function was called with an invalid argument; the message carries the value."""


class AudioError(EarmarkError):
    """A file could not be used as audio. ``path`` names it; ``problem`` says why."""

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FileMissingError(AudioError):
    """The file does not exist or is not a regular file."""


class EmptyFileError(AudioError):
    """The file holds zero bytes, or a header with no samples."""


class TruncatedFileError(AudioError):
    """The file ends before the audio its header announces (cut short, or a lying header)."""


class NotAudioError(AudioError):
    """The file is not in any audio or media format the decoders know."""


class UnsupportedCodecError(AudioError):
    """The container is known but its codec cannot be decoded, or it has no audio track."""


class CorruptAudioError(AudioError):
    """A recognised format whose content cannot be decoded."""


class InvalidSampleRateError(AudioError):
    """The sample rate is zero or outside the range earmark accepts."""


class InvalidChannelsError(AudioError):
    """The file declares zero channels (or an impossible number)."""


class NonFiniteSamplesError(AudioError):
    """The decoded samples contain NaN or infinity."""


class DurationLimitError(AudioError):
    """The audio is longer than the configured limit."""


class DecodedSizeError(DurationLimitError):
    """Decoded whole at its own sample rate, the file would exceed the decoding budget
    (rate x channels x length in float32 bytes): a decompression bomb, or a recording to
    stream (:func:`earmark.audio.stream`) rather than load. A kind of "too long"."""


class LayoutError(EarmarkError):
    """A data set folder or manifest does not have the expected structure."""


class SplitError(EarmarkError):
    """A split cannot be made as asked (too few groups, leakage, missing column)."""


class Interrupted(EarmarkError):
    """A job was stopped (Ctrl-C) before it finished; nothing final was written. ``resume``
    names what continues it (a run directory), when something can."""

    def __init__(self, message: str, *, resume: str | PathLike[str] | None = None) -> None:
        self.resume = None if resume is None else str(resume)
        super().__init__(message)
