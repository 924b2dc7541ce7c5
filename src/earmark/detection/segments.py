"""Cut detected events out of their recordings for review: one audio file per event."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import soundfile as sf

from earmark import audio as audio_io
from earmark.atomic import atomic_write
from earmark.detection.events import Event
from earmark.errors import AudioError, ParameterError

__all__ = ["cut_segments", "segment_name"]


def segment_name(event: Event, fmt: str = "wav") -> str:
    """``<recording>_<start>-<end>_<label>_<score>.<fmt>``: times in seconds with 3
    decimals, the score with 3, characters unsafe in file names replaced."""
    stem = Path(event.file.replace("\\", "/")).stem
    raw = f"{stem}_{event.start:09.3f}-{event.end:09.3f}_{event.label}_{event.score:.3f}"
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in raw) + f".{fmt}"


def cut_segments(
    events: Iterable[Event],
    out_dir: str | Path,
    *,
    margin: float = 0.5,
    root: str | Path | None = None,
    on_event: Callable[[], None] | None = None,
) -> tuple[list[Path], list[tuple[Event, str]]]:
    """Write each event, ``margin`` seconds wider on both sides (clipped to the recording),
    as a 32-bit float WAV file at the recording's rate and channels into ``out_dir``.

    Relative recording paths in the events are taken from ``root`` (default: as they are).
    Returns the files written and the events whose recording could not be read, with why.
    """
    if margin < 0:
        raise ParameterError(f"margin must be >= 0 seconds, got {margin}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    failed: list[tuple[Event, str]] = []
    for ev in events:
        source = Path(ev.file)
        if root is not None and not source.is_absolute():
            source = Path(root) / source
        try:
            info = audio_io.info(source)
            start = max(0.0, ev.start - margin)
            stop = min(info.duration, ev.end + margin)
            if stop <= start:
                raise ParameterError(f"{source}: the event lies past the end of the recording")
            y, sr = audio_io.load(
                source, mono=False, offset=start, duration=stop - start, max_duration=None
            )
        except (AudioError, ParameterError) as exc:
            failed.append((ev, str(exc)))
            continue
        path = out / segment_name(ev)
        write = lambda tmp, y=y, sr=sr: sf.write(tmp, y.T, sr, format="WAV", subtype="FLOAT")  # noqa: E731
        written.append(atomic_write(path, write))
        if on_event is not None:
            on_event()
    return written, failed
