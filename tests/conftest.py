"""Shared fixtures: every test file and signal is generated here; nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from signals import SR, tone

# typer's error panels wide enough that a message with a long temporary path is never wrapped
# mid-word (the tests look for the message; where it wraps depends on the machine's paths).
# Read by typer when it is first imported: here, before any test module imports the CLI.
os.environ.setdefault("TERMINAL_WIDTH", "400")


def _video_stream(container: av.container.OutputContainer) -> av.VideoStream:
    """A small mpeg4 video stream; streams must all exist before the first packet is muxed."""
    vs = container.add_stream("mpeg4", rate=10)
    vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
    return vs


def _write_black_frames(container: av.container.OutputContainer, vs, seconds: float) -> None:
    for k in range(round(10 * seconds)):
        vf = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        vf.pts = k
        for p in vs.encode(vf):
            container.mux(p)
    for p in vs.encode():
        container.mux(p)


def write_pyav(
    path: Path, y: np.ndarray, sr: int, codec: str, *, fmt: str | None = None, video: bool = False
) -> Path:
    """Encode ``y`` (``[channels, samples]``) with PyAV, optionally beside a video track."""
    layout = "mono" if y.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as c:
        vs = _video_stream(c) if video else None
        s = c.add_stream(codec, rate=sr)
        s.layout = layout
        for i in range(0, y.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(y[:, i : i + 1024]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = sr, i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        if vs is not None:
            _write_black_frames(c, vs, y.shape[1] / sr)
    return path


def write_video_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        _write_black_frames(c, _video_stream(c), 1.0)
    return path


@pytest.fixture(scope="session")
def formats_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of a 440 Hz tone (stereo: 440 left, 660 right) in every supported format."""
    d = tmp_path_factory.mktemp("formats")
    mono = tone()
    stereo = np.stack([tone(440.0), tone(660.0)])
    sf.write(d / "pcm16.wav", mono, SR, subtype="PCM_16")
    sf.write(d / "pcm24.wav", mono, SR, subtype="PCM_24")
    sf.write(d / "pcm32.wav", mono, SR, subtype="PCM_32")
    sf.write(d / "pcm8.wav", mono, SR, subtype="PCM_U8")
    sf.write(d / "float.wav", mono, SR, subtype="FLOAT")
    sf.write(d / "stereo.wav", stereo.T, SR, subtype="PCM_16")
    sf.write(d / "tone.flac", mono, SR)
    sf.write(d / "tone.ogg", mono, SR)
    sf.write(d / "tone.mp3", mono, SR)
    write_pyav(d / "tone.m4a", mono[None], SR, "aac", fmt="mp4")
    write_pyav(d / "video.mp4", stereo, SR, "aac", video=True)
    write_pyav(d / "video.mkv", stereo, SR, "aac", video=True)
    write_pyav(d / "tone.webm", np.stack([tone(440.0, sr=48_000)]), 48_000, "libopus")
    for rate in (8_000, 22_050, 44_100, 96_000, 192_000):
        sf.write(d / f"rate{rate}.wav", tone(440.0, sr=rate), rate, subtype="PCM_16")
    return d


@pytest.fixture(scope="session")
def broken_dir(tmp_path_factory: pytest.TempPathFactory, formats_dir: Path) -> Path:
    """Real broken files, one per error case."""
    d = tmp_path_factory.mktemp("broken")
    wav = (formats_dir / "pcm16.wav").read_bytes()
    (d / "empty.wav").write_bytes(b"")
    (d / "header_only.wav").write_bytes(wav[:44])
    (d / "cut.wav").write_bytes(wav[: len(wav) // 2])
    flac = (formats_dir / "tone.flac").read_bytes()
    (d / "cut.flac").write_bytes(flac[: len(flac) // 2])
    (d / "text.wav").write_text("this is a text file, not audio\n" * 20)
    huge = bytearray(wav[:44] + wav[44:2044])
    struct.pack_into("<I", huge, 4, 0xFFFFFF00)  # RIFF size
    struct.pack_into("<I", huge, 40, 0xFFFFFF00 - 36)  # data chunk: ~4 GB announced
    (d / "claims_4gb.wav").write_bytes(bytes(huge))
    zero_ch = bytearray(wav)
    struct.pack_into("<H", zero_ch, 22, 0)
    (d / "zero_channels.wav").write_bytes(bytes(zero_ch))
    zero_sr = bytearray(wav)
    struct.pack_into("<I", zero_sr, 24, 0)
    (d / "zero_rate.wav").write_bytes(bytes(zero_sr))
    absurd_sr = bytearray(wav)
    struct.pack_into("<I", absurd_sr, 24, 50_000_000)
    (d / "absurd_rate.wav").write_bytes(bytes(absurd_sr))
    nan = tone()
    nan[1234] = np.nan
    nan[5000] = np.inf
    sf.write(d / "nan.wav", nan, SR, subtype="FLOAT")
    write_video_only(d / "no_audio.mp4")
    return d


@pytest.fixture(scope="session")
def espeak() -> str:
    """Path of espeak-ng; `make test` installs it, so its absence is a failure, not a skip."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is missing: run `make setup` (apt-get install espeak-ng)")
    return exe


@pytest.fixture(scope="session")
def demo_digits(tmp_path_factory: pytest.TempPathFactory, espeak: str) -> Path:
    """A small demo data set: 8 voices x 10 digits of real synthetic speech."""
    from earmark.data.demo import make_demo_digits

    root = tmp_path_factory.mktemp("digits")
    make_demo_digits(root, n_voices=8, seed=1)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    """Write ``y`` to ``tmp_path/name`` and return the path."""

    def _write(name: str, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y.T if y.ndim == 2 else y, sr, subtype=subtype)
        return path

    return _write


# -- detection: a trained model and a recording ------------------------------------------------


@pytest.fixture(scope="session")
def detector(demo_digits: Path):  # -> earmark.Classifier
    """A small network trained on all the demo digits (clip length 1 s)."""
    from earmark import data
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier
    from earmark.training import TrainConfig

    cfg = TrainConfig(epochs=25, batch_size=8, device="cpu", seed=0, augment="none")
    clf = Classifier("seed-cnn", audio=AudioConfig(duration=1.0), train=cfg)
    return clf.fit(data.load(demo_digits))


@pytest.fixture(scope="session")
def recording(demo_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of quiet noise with digits at known places (every 2 s, a voice not trained on
    is not needed here: the tests check mechanics, not accuracy)."""
    rng = np.random.default_rng(0)
    sr = 16_000
    y = (0.003 * rng.standard_normal(20 * sr)).astype(np.float32)
    for k, digit in enumerate(["one", "two", "three", "four", "five", "six", "seven", "eight"]):
        clip, _ = sf.read(demo_digits / digit / "v000.wav", dtype="float32")
        start = (1 + 2 * k) * sr
        y[start : start + clip.size] += clip
    path = tmp_path_factory.mktemp("rec") / "field.wav"
    sf.write(path, y, sr, subtype="PCM_16")
    return path
