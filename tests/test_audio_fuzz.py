"""Header fuzzing: whatever a WAV or FLAC header says (bytes flipped, fields set to zero, huge
or random values, the file cut anywhere), loading ends in finite float32 samples of the shape
the header promises, or in an earmark AudioError; never another exception, never an
allocation the file's size does not justify.

The examples are derandomized (the same on every run, no example database); set
EARMARK_FUZZ_EXAMPLES to a larger number to search longer.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from earmark import audio
from earmark.errors import AudioError

EXAMPLES = int(os.environ.get("EARMARK_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
#: The most a load of these files (a few kB) may allocate: a header must not make earmark
#: reserve what it announces. (A FLAC frame of constant samples can legitimately stand for
#: 65535 samples in a few bytes, so the bound is not the file size itself.)
MAX_ALLOCATION = 64 * 2**20

SEEDS = ["pcm16.wav", "stereo16.wav", "pcm24.wav", "float.wav", "mono.flac", "stereo.flac"]


@functools.cache
def seed(name: str) -> bytes:
    """A small valid file (0.05 s at 8 kHz of a tone, some noise on a second channel)."""
    rng = np.random.default_rng(0)
    t = np.arange(400) / 8_000
    mono = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([mono, rng.uniform(-0.5, 0.5, 400).astype(np.float32)], axis=1)
    y = stereo if name.startswith("stereo") else mono
    fmt, subtype = {
        "pcm16.wav": ("WAV", "PCM_16"),
        "stereo16.wav": ("WAV", "PCM_16"),
        "pcm24.wav": ("WAV", "PCM_24"),
        "float.wav": ("WAV", "FLOAT"),
        "mono.flac": ("FLAC", "PCM_16"),
        "stereo.flac": ("FLAC", "PCM_16"),
    }[name]
    buf = io.BytesIO()
    sf.write(buf, y, 8_000, format=fmt, subtype=subtype)
    return buf.getvalue()


_DIR = Path(tempfile.mkdtemp(prefix="earmark-fuzz-"))


def load_outcome(data: bytes, suffix: str) -> None:
    """Write ``data`` and load it: samples as promised, or an AudioError."""
    path = _DIR / f"fuzzed{suffix}"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        y, sr = audio.load(path, mono=False, max_duration=None)
    except AudioError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)  # one line naming the file
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MAX_ALLOCATION, f"{peak / 2**20:.0f} MB allocated for {len(data)} bytes"
    assert y.dtype == np.float32 and y.ndim == 2 and y.shape[1] > 0
    assert audio.MIN_SAMPLE_RATE <= sr <= audio.MAX_SAMPLE_RATE
    assert y.shape[0] == audio.info(path).channels
    assert np.isfinite(y).all()
    # the resampling path (what training, predict and serve take) ends the same way
    try:
        z, rate = audio.load(path, sr=16_000, max_duration=None)
    except AudioError as exc:  # e.g. too few samples to give any at 16 kHz
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert rate == 16_000 and z.dtype == np.float32 and z.shape[0] == 1 and z.shape[1] > 0
    assert np.isfinite(z).all()


def header_length(data: bytes) -> int:
    """Bytes before the samples: the RIFF chunks up to 'data', or the FLAC metadata blocks."""
    if data[:4] == b"RIFF":
        return data.index(b"data") + 8
    pos = 4
    while True:  # FLAC metadata blocks: 1 byte flags/type, 3 bytes length
        last, length = data[pos] & 0x80, int.from_bytes(data[pos + 1 : pos + 4], "big")
        pos += 4 + length
        if last:
            return pos


@st.composite
def flipped_headers(draw: st.DrawFn) -> tuple[bytes, str]:
    name = draw(st.sampled_from(SEEDS))
    data = bytearray(seed(name))
    end = header_length(bytes(data))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, end - 1))
        data[at] = draw(st.one_of(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]), st.integers(0, 255)))
    return bytes(data), Path(name).suffix


@given(flipped_headers())
@FUZZ
def test_flipped_header_bytes(case: tuple[bytes, str]) -> None:
    load_outcome(*case)


@given(name=st.sampled_from(SEEDS), cut=st.one_of(st.integers(0, 100), st.integers(0, 2**16)))
@example(name="pcm16.wav", cut=30)  # inside the 'fmt ' chunk: raised struct.error
@FUZZ
def test_truncated_anywhere(name: str, cut: int) -> None:
    whole = seed(name)
    load_outcome(whole[: cut % len(whole)], Path(name).suffix)


EXTREMES = st.sampled_from([0, 1, 2, 255, 256, 257, 1023, 65535])
U32 = st.one_of(
    st.sampled_from([0, 1, 999, 1000, 768_000, 768_001, 2**31, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)


@given(
    tag=st.one_of(st.sampled_from([1, 3, 6, 7, 0xFFFE, 0]), st.integers(0, 65535)),
    channels=st.one_of(EXTREMES, st.integers(0, 65535)),
    rate=U32,
    align=st.one_of(EXTREMES, st.integers(0, 65535)),
    bits=st.one_of(st.sampled_from([0, 8, 16, 24, 32, 64, 65535]), st.integers(0, 65535)),
    data_size=st.one_of(U32, st.just(800)),
    riff_size=U32,
    payload=st.integers(0, 3000),
)
@FUZZ
def test_random_wav_header_fields(
    tag: int,
    channels: int,
    rate: int,
    align: int,
    bits: int,
    data_size: int,
    riff_size: int,
    payload: int,
) -> None:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * max(align, 1) % 2**32, align, bits)
    samples = seed("pcm16.wav")[44:][:payload]
    head = b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
    head += b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_size)
    load_outcome(head + samples, ".wav")


@given(
    name=st.sampled_from(["mono.flac", "stereo.flac"]),
    min_block=st.integers(0, 2**16 - 1),
    max_block=st.one_of(st.sampled_from([0, 16, 4096, 65535]), st.integers(0, 2**16 - 1)),
    rate=st.one_of(st.sampled_from([0, 1, 8_000, 655_350, 2**20 - 1]), st.integers(0, 2**20 - 1)),
    channels=st.integers(1, 8),
    bits=st.one_of(st.sampled_from([4, 8, 16, 24, 32]), st.integers(1, 32)),
    total=st.one_of(st.sampled_from([0, 1, 400, 2**36 - 1]), st.integers(0, 2**36 - 1)),
)
# found by this test: one sample at 655350 Hz resampled to 16 kHz is none (it raised ValueError)
@example("mono.flac", 0, 0, 655_350, 1, 8, 1)
@FUZZ
def test_random_flac_streaminfo_fields(
    name: str, min_block: int, max_block: int, rate: int, channels: int, bits: int, total: int
) -> None:
    data = bytearray(seed(name))
    info = 8  # 'fLaC', then the STREAMINFO block header; its body is 34 bytes
    struct.pack_into(">HH", data, info, min_block, max_block)
    packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total
    data[info + 10 : info + 18] = packed.to_bytes(8, "big")
    load_outcome(bytes(data), ".flac")


@pytest.mark.parametrize("name", SEEDS)
def test_the_seeds_load(name: str) -> None:
    """The unmutated files load (so the properties above start from valid files)."""
    path = _DIR / f"seed-{name}"
    path.write_bytes(seed(name))
    y, sr = audio.load(path, mono=False)
    assert sr == 8_000 and y.shape == (2 if name.startswith("stereo") else 1, 400)
