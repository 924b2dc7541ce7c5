from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from signals import SR, tone

from earmark import audio, errors


def peak_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sr)[spectrum.argmax()])


# -- decoding every format -------------------------------------------------------------------

LOSSLESS = ["pcm16.wav", "pcm24.wav", "pcm32.wav", "float.wav", "tone.flac"]
ALL_MONO = [*LOSSLESS, "pcm8.wav", "tone.ogg", "tone.mp3", "tone.m4a", "tone.webm"]


@pytest.mark.parametrize("name", ALL_MONO)
def test_load_every_format_gives_float32_channels_by_samples(formats_dir: Path, name: str) -> None:
    y, sr = audio.load(formats_dir / name)
    assert y.dtype == np.float32 and y.ndim == 2 and y.shape[0] == 1
    assert abs(y.shape[1] / sr - 1.0) < 0.1  # codecs may add priming/padding samples
    assert abs(peak_hz(y[0], sr) - 440.0) < 3.0
    assert 0.3 < np.abs(y).max() < 0.7


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_formats_round_trip_the_samples(formats_dir: Path, name: str) -> None:
    y, sr = audio.load(formats_dir / name)
    assert sr == SR and y.shape == (1, SR)
    tol = 1e-6 if "float" in name else 2.0**-14
    np.testing.assert_allclose(y[0], tone(), atol=tol)


def test_8_bit_pcm_is_scaled_to_unit_range(formats_dir: Path) -> None:
    y, _ = audio.load(formats_dir / "pcm8.wav")
    np.testing.assert_allclose(y[0], tone(), atol=2.0**-6)


@pytest.mark.parametrize("name", ["stereo.wav", "video.mp4", "video.mkv"])
def test_stereo_and_video_tracks_keep_channels_or_downmix(formats_dir: Path, name: str) -> None:
    y, sr = audio.load(formats_dir / name, mono=False)
    assert y.shape[0] == 2
    start = y.shape[1] // 4  # skip codec priming at the start
    seg = slice(start, start + sr // 2)
    assert abs(peak_hz(y[0, seg], sr) - 440.0) < 5 and abs(peak_hz(y[1, seg], sr) - 660.0) < 5
    mono, _ = audio.load(formats_dir / name)
    np.testing.assert_allclose(mono[0], y.mean(axis=0), atol=1e-6)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 96_000, 192_000])
def test_odd_and_high_rates_load_and_resample(formats_dir: Path, rate: int) -> None:
    y, sr = audio.load(formats_dir / f"rate{rate}.wav")
    assert sr == rate and y.shape == (1, rate)
    z, sr2 = audio.load(formats_dir / f"rate{rate}.wav", sr=16_000)
    assert sr2 == 16_000 and z.shape == (1, 16_000)
    assert abs(peak_hz(z[0], sr2) - 440.0) < 2.0


@pytest.mark.parametrize("name", ["pcm16.wav", "tone.flac", "video.mp4", "tone.webm"])
def test_offset_and_duration_select_the_right_span(formats_dir: Path, name: str) -> None:
    full, sr = audio.load(formats_dir / name)
    part, _ = audio.load(formats_dir / name, offset=0.25, duration=0.5)
    assert abs(part.shape[1] - sr // 2) <= 1
    start = round(0.25 * sr)
    # Matroska/WebM time stamps are in milliseconds: a seek there is exact to +-1 ms, and an
    # Opus decoder restarted mid-stream converges to, but does not repeat, the same samples.
    ms_stamps = name.endswith((".webm", ".mkv"))
    slack = round(0.0011 * sr) if ms_stamps else 0
    best = min(
        np.abs(full[0, start + d : start + d + part.shape[1]] - part[0]).max()
        for d in range(-slack, slack + 1)
    )
    assert best < (2e-3 if ms_stamps else 1e-4)


def test_offset_past_the_end_is_a_parameter_error(formats_dir: Path) -> None:
    with pytest.raises(errors.ParameterError, match="past the end"):
        audio.load(formats_dir / "pcm16.wav", offset=5.0)


@pytest.mark.parametrize(
    ("name", "codec", "backend"),
    [
        ("pcm24.wav", "PCM_24", "soundfile"),
        ("tone.flac", "PCM_16", "soundfile"),
        ("tone.mp3", "MPEG_LAYER_III", "soundfile"),
        ("video.mp4", "aac", "pyav"),
    ],
)
def test_info_reads_the_header(formats_dir: Path, name: str, codec: str, backend: str) -> None:
    i = audio.info(formats_dir / name)
    assert (i.sample_rate, i.codec, i.backend) == (SR, codec, backend)
    assert abs(i.duration - 1.0) < 0.1 and i.frames > 0 and i.channels in (1, 2)


# -- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pcm16.wav", "tone.flac", "video.mkv"])
def test_stream_blocks_concatenate_to_load(formats_dir: Path, name: str) -> None:
    full, sr = audio.load(formats_dir / name)
    blocks = list(audio.stream(formats_dir / name, 0.3))
    block = round(0.3 * sr)
    assert all(b.shape == (1, block) for b in blocks[:-1]) and 0 < blocks[-1].shape[1] <= block
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), full)


def test_stream_resamples_seamlessly(formats_dir: Path) -> None:
    ref, _ = audio.load(formats_dir / "rate44100.wav", sr=16_000)
    got = np.concatenate(list(audio.stream(formats_dir / "rate44100.wav", 0.1, sr=16_000)), axis=1)
    assert abs(got.shape[1] - ref.shape[1]) <= 1
    n = min(got.shape[1], ref.shape[1])
    # The streaming and one-shot resamplers agree away from the edges.
    np.testing.assert_allclose(got[0, 200 : n - 200], ref[0, 200 : n - 200], atol=1e-3)


def _stream_peak_bytes(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    n = sum(b.shape[1] for b in audio.stream(path, 1.0, sr=16_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return n, peak


@pytest.mark.slow
def test_stream_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    sr, peaks = 8_000, {}
    for minutes in (1, 10):
        path = tmp_path / f"long{minutes}.flac"
        with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
            for _ in range(minutes):
                f.write(tone(300.0, 60.0, sr, amp=0.1))
        n, peaks[minutes] = _stream_peak_bytes(path)
        assert abs(n - minutes * 60 * 16_000) <= 16
    ten_minutes_float32 = 10 * 60 * 16_000 * 4
    assert peaks[10] < 1.2 * peaks[1] + 1_000_000, peaks
    assert peaks[10] < ten_minutes_float32 / 4, peaks


# -- errors ----------------------------------------------------------------------------------

BROKEN = [
    ("empty.wav", errors.EmptyFileError, "empty"),
    ("header_only.wav", errors.TruncatedFileError, "truncated"),
    ("cut.wav", errors.TruncatedFileError, "holds only"),
    ("cut.flac", errors.CorruptAudioError, "truncated"),
    ("text.wav", errors.NotAudioError, "not an audio"),
    ("claims_4gb.wav", errors.TruncatedFileError, "4294967004 bytes"),
    ("zero_channels.wav", errors.InvalidChannelsError, "0 channels"),
    ("zero_rate.wav", errors.InvalidSampleRateError, "0 Hz"),
    ("absurd_rate.wav", errors.InvalidSampleRateError, "50000000 Hz"),
    ("nan.wav", errors.NonFiniteSamplesError, "NaN or infinite"),
    ("no_audio.mp4", errors.UnsupportedCodecError, "no audio track"),
]


@pytest.mark.parametrize(("name", "kind", "words"), BROKEN)
def test_broken_files_raise_a_clear_error_naming_the_file(
    broken_dir: Path, name: str, kind: type, words: str
) -> None:
    with pytest.raises(kind) as exc:
        audio.load(broken_dir / name)
    assert isinstance(exc.value, errors.AudioError) and isinstance(exc.value, errors.EarmarkError)
    assert name in str(exc.value) and words in str(exc.value)


def test_a_lying_header_never_allocates_what_it_claims(broken_dir: Path) -> None:
    tracemalloc.start()
    with pytest.raises(errors.TruncatedFileError):
        audio.load(broken_dir / "claims_4gb.wav", max_duration=None)
    assert tracemalloc.get_traced_memory()[1] < 10_000_000
    tracemalloc.stop()


def test_unknown_size_wav_header_reads_the_samples_present(
    tmp_path: Path, formats_dir: Path
) -> None:
    wav = bytearray((formats_dir / "pcm16.wav").read_bytes())
    wav[40:44] = b"\xff\xff\xff\xff"  # streaming writers leave the size unknown
    (tmp_path / "stream.wav").write_bytes(bytes(wav))
    y, _ = audio.load(tmp_path / "stream.wav")
    assert y.shape == (1, SR)


def test_plain_pcm16_wav_fast_path_matches_libsndfile(
    write_wav, rng: np.random.Generator, tmp_path: Path
) -> None:
    stereo = np.clip(rng.normal(0, 0.4, (2, 4001)), -1, 1).astype(np.float32)
    stereo[:, :4] = [[-1.0, 1.0, 0.0, -0.5], [1.0, -1.0, 0.25, 0.0]]  # full scale both ways
    path = write_wav("s.wav", stereo)
    # a LIST chunk after the data must not be read as samples
    raw = bytearray(path.read_bytes())
    extra = b"LIST" + (4).to_bytes(4, "little") + b"INFO"
    raw[4:8] = (len(raw) - 8 + len(extra)).to_bytes(4, "little")
    (tmp_path / "tagged.wav").write_bytes(bytes(raw) + extra)
    for name in ("s.wav", "tagged.wav"):
        ref, sr = sf.read(tmp_path / name, dtype="float32", always_2d=True)
        assert audio._read_pcm16_wav(tmp_path / name, None) is not None  # the fast path
        y, rate = audio.load(tmp_path / name, mono=False)
        assert rate == sr and y.dtype == np.float32
        np.testing.assert_array_equal(y, ref.T)
        mono, _ = audio.load(tmp_path / name)
        np.testing.assert_allclose(mono[0], ref.mean(axis=1), atol=1e-7)
    with pytest.raises(errors.DurationLimitError, match=r"s\.wav"):
        audio.load(path, max_duration=0.1)
    # other layouts go through libsndfile
    assert audio._read_pcm16_wav(write_wav("f.wav", stereo, subtype="FLOAT"), None) is None
    assert audio._read_pcm16_wav(write_wav("p24.wav", stereo, subtype="PCM_24"), None) is None


@pytest.mark.parametrize(
    ("name", "subtype"),
    [
        ("a.wav", "PCM_16"),
        ("a.wav", "PCM_24"),
        ("a.wav", "PCM_32"),
        ("a.flac", "PCM_16"),
        ("a.flac", "PCM_24"),
        ("a.wav", "FLOAT"),
    ],
)
def test_integer_pcm_read_as_integers_gives_libsndfiles_floats(
    name: str, subtype: str, rng: np.random.Generator, tmp_path: Path
) -> None:
    """Integer PCM is read as integers and scaled by numpy (4x faster than libsndfile's
    conversion): bit for bit the floats libsndfile gives, streamed or loaded with an
    offset, full scale included."""
    y = np.clip(rng.normal(0, 0.4, (3001, 2)), -1, 1)
    y[:3] = [[-1.0, 1.0], [1.0, -1.0], [0.0, -0.5]]
    path = tmp_path / name
    sf.write(path, y, SR, subtype=subtype)
    ref, _ = sf.read(path, dtype="float32", always_2d=True)
    got = np.concatenate(list(audio.stream(path, 0.05, mono=False)), axis=1)
    np.testing.assert_array_equal(got, ref.T)
    part, _ = audio.load(path, mono=False, offset=0.01, duration=0.1)
    np.testing.assert_array_equal(part, ref.T[:, int(0.01 * SR) : int(0.11 * SR)])


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(errors.FileMissingError, match="no such file"):
        audio.load(tmp_path / "nope.wav")
    with pytest.raises(errors.FileMissingError, match="not a regular file"):
        audio.info(tmp_path)


def test_duration_over_the_limit_is_refused(formats_dir: Path) -> None:
    with pytest.raises(errors.DurationLimitError, match=r"over the limit of 0\.5 s"):
        audio.load(formats_dir / "pcm16.wav", max_duration=0.5)
    y, _ = audio.load(formats_dir / "pcm16.wav", duration=0.4, max_duration=0.5)
    assert y.shape[1] == round(0.4 * SR)


# -- standardization -------------------------------------------------------------------------


def test_resample_keeps_pitch_and_length() -> None:
    y = tone(1000.0, 1.0, 44_100)[None]
    z = audio.resample(y, 44_100, 16_000)
    assert z.shape == (1, 16_000) and z.dtype == np.float32
    assert abs(peak_hz(z[0], 16_000) - 1000.0) < 2


def test_channel_policies() -> None:
    stereo = np.stack([np.ones(4, np.float32), np.zeros(4, np.float32)])
    np.testing.assert_array_equal(audio.set_channels(stereo, 1), np.full((1, 4), 0.5))
    np.testing.assert_array_equal(audio.set_channels(stereo, 1, policy="pick", channel=1), 0)
    mono = np.arange(4, dtype=np.float32)[None]
    assert audio.set_channels(mono, 2, policy="duplicate").shape == (2, 4)
    np.testing.assert_array_equal(audio.set_channels(mono, 2, policy="duplicate")[1], mono[0])
    assert audio.set_channels(stereo, 2, policy="duplicate") is stereo
    with pytest.raises(errors.ParameterError, match="channel 3 does not exist"):
        audio.set_channels(stereo, 1, policy="pick", channel=3)
    with pytest.raises(errors.ParameterError, match="unknown channel policy"):
        audio.set_channels(stereo, 1, policy="blend")  # type: ignore[arg-type]


def test_length_policies(rng: np.random.Generator) -> None:
    y = np.arange(10, dtype=np.float32)[None]
    np.testing.assert_array_equal(audio.fix_length(y, 4), [[0, 1, 2, 3]])
    np.testing.assert_array_equal(audio.fix_length(y, 4, crop="center"), [[3, 4, 5, 6]])
    np.testing.assert_array_equal(audio.fix_length(y, 14)[0, 10:], 0)
    np.testing.assert_array_equal(audio.fix_length(y, 14, pad="both")[0, :2], 0)
    assert (
        audio.fix_length(y, 14, pad="both")[0, 2] == 0
        and audio.fix_length(y, 14, pad="both")[0, 3] == 1
    )
    a = audio.fix_length(y, 4, crop="random", rng=np.random.default_rng(7))
    b = audio.fix_length(y, 4, crop="random", rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    starts = {int(audio.fix_length(y, 4, crop="random", rng=rng)[0, 0]) for _ in range(50)}
    assert len(starts) > 3 and starts <= set(range(7))
    with pytest.raises(errors.ParameterError, match="explicit rng"):
        audio.fix_length(y, 4, crop="random")


def test_normalization() -> None:
    y = tone(amp=0.1)[None]
    np.testing.assert_allclose(np.abs(audio.normalize(y)).max(), 10 ** (-1 / 20), rtol=1e-5)
    rms = audio.normalize(y, method="rms", target_db=-20.0)
    np.testing.assert_allclose(np.sqrt(np.mean(rms**2)), 0.1, rtol=1e-4)
    silence = np.zeros((1, 100), np.float32)
    np.testing.assert_array_equal(audio.normalize(silence), silence)


def test_audio_config_round_trips_and_standardizes(formats_dir: Path) -> None:
    cfg = audio.AudioConfig(sample_rate=8_000, duration=0.5, normalize="peak", crop="center")
    assert audio.AudioConfig.from_dict(cfg.to_dict()) == cfg
    y = audio.load_clip(formats_dir / "stereo.wav", cfg)
    assert y.shape == (1, 4_000) and abs(np.abs(y).max() - 10 ** (-1 / 20)) < 1e-4
    two = audio.load_clip(formats_dir / "pcm16.wav", audio.AudioConfig(channels=2, duration=2.0))
    assert two.shape == (2, 32_000) and np.all(two[:, SR:] == 0)
    with pytest.raises(errors.ParameterError, match="unknown AudioConfig settings"):
        audio.AudioConfig.from_dict({"sample_rate": 16_000, "colour": "red"})


# -- decoding with a budget ------------------------------------------------------------------


def _patched_wav(src: Path, dst: Path, offset: int, fmt: str, value: int) -> Path:
    raw = bytearray(src.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "kind", "words"),
    [
        (22, "<H", 300, errors.InvalidChannelsError, "300 channels (accepted: 1..256)"),
        (22, "<H", 65535, errors.InvalidChannelsError, "65535 channels"),
        (24, "<I", 800_000, errors.InvalidSampleRateError, "800000 Hz"),
        (24, "<I", 999, errors.InvalidSampleRateError, "999 Hz"),
    ],
)
def test_header_rate_and_channels_are_checked_before_decoding(
    formats_dir: Path, tmp_path: Path, offset: int, fmt: str, value: int, kind: type, words: str
) -> None:
    bad = _patched_wav(formats_dir / "pcm16.wav", tmp_path / "bad.wav", offset, fmt, value)
    for call in (audio.load, audio.info, lambda p: list(audio.stream(p, 1.0))):
        with pytest.raises(kind) as exc:
            call(bad)
        assert str(exc.value).startswith(f"{bad}: ") and words in str(exc.value)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("fmt", ["AIFF", "CAF", "W64"])
def test_a_header_with_too_many_channels_is_refused_in_every_container(
    tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"array.{fmt.lower()}"
    sf.write(path, np.zeros((100, 300), np.float32), 8_000, format=fmt, subtype="PCM_16")
    with pytest.raises(errors.InvalidChannelsError, match=r"300 channels \(accepted: 1\.\.256\)"):
        audio.load(path)
    sf.write(path, np.zeros((100, 256), np.float32), 8_000, format=fmt, subtype="PCM_16")
    assert audio.load(path, mono=False)[0].shape == (256, 100)  # the limit itself is fine


@pytest.mark.parametrize("name", ["pcm16.wav", "pcm24.wav", "tone.flac", "tone.m4a", "stereo.wav"])
def test_a_file_over_the_decoding_budget_is_refused_before_decoding(
    formats_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = formats_dir / name
    need = 4 * audio.info(path).channels * audio.info(path).frames  # float32 at its own rate

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file over the budget")

    monkeypatch.setattr(audio, "_iter_soundfile", no_decoding)
    monkeypatch.setattr(audio, "_iter_pyav", no_decoding)
    monkeypatch.setattr(np, "fromfile", no_decoding)
    with pytest.raises(errors.DecodedSizeError) as exc:
        audio.load(path, sr=8_000, max_decoded_bytes=need // 2)
    assert isinstance(exc.value, errors.DurationLimitError)  # a kind of "too long"
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and "would decode to" in message and "\n" not in message
    # every whole-file reader has the budget: clips for training, Preprocessing.read for
    # predict and serve
    from earmark.features.config import FeatureConfig
    from earmark.preprocess import Preprocessing

    with pytest.raises(errors.DecodedSizeError):
        audio.load_clip(path, audio.AudioConfig(), max_decoded_bytes=need // 2)
    with pytest.raises(errors.DecodedSizeError, match="would decode to"):
        prep = Preprocessing(audio.AudioConfig(), FeatureConfig(), 1.0)
        prep.read(path, max_decoded_bytes=need // 2)
    with pytest.raises(errors.DecodedSizeError):
        audio._decode(path, sr=None, mix=None, max_decoded_bytes=need // 2)


@pytest.mark.parametrize("name", ["tone.flac", "tone.m4a"])
def test_the_budget_holds_while_decoding_when_the_header_understates(
    formats_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    probe = audio._probe

    def understating(path):  # a header that announces a tenth of the samples
        meta, handle = probe(path)
        return dataclasses.replace(meta, frames=meta.frames // 10), handle

    monkeypatch.setattr(audio, "_probe", understating)
    with pytest.raises(errors.DecodedSizeError, match=name):
        audio.load(formats_dir / name, max_decoded_bytes=4 * SR // 2)


def _long_tone(path: Path, sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * (440 + 110 * c) * t) for c in range(channels)])
    sf.write(path, y.T.astype(np.float32), sr, subtype="FLOAT")
    return y.astype(np.float32)


@pytest.mark.parametrize(("channels", "mono"), [(1, True), (2, False), (2, True)])
def test_block_resampling_equals_whole_file_resampling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channels: int, mono: bool
) -> None:
    import soxr

    y = _long_tone(tmp_path / "long.wav", 44_100, 3.0, channels)
    ref = y.mean(axis=0, keepdims=True) if mono else y
    want = soxr.resample(ref.T, 44_100, 16_000, quality="HQ").reshape(-1, ref.shape[0]).T
    whole, sr = audio.load(tmp_path / "long.wav", sr=16_000, mono=mono)
    monkeypatch.setattr(audio, "_WHOLE_RESAMPLE_BYTES", 20_000)  # blocks of this file: streamed
    monkeypatch.setattr(audio, "_MAX_BLOCK_FRAMES", 5_000)
    streamed, sr2 = audio.load(tmp_path / "long.wav", sr=16_000, mono=mono)
    assert sr == sr2 == 16_000 and whole.dtype == streamed.dtype == np.float32
    np.testing.assert_array_equal(whole, want.astype(np.float32))  # short: one soxr call
    assert streamed.shape == whole.shape, (streamed.shape, whole.shape)
    assert np.abs(streamed - whole).max() < 1e-5
    # the clip reader (training, predict, serve) takes the same path
    keep = {"channels": 1} if mono else {"channels": 2, "channel_policy": "duplicate"}
    cfg = audio.AudioConfig(sample_rate=16_000, **keep)
    np.testing.assert_array_equal(audio.load_clip(tmp_path / "long.wav", cfg), streamed)


_PEAK_RSS = """
import resource, sys
from earmark import audio
from earmark.audio import AudioConfig
from earmark.preprocess import Preprocessing
from earmark.features.config import FeatureConfig
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[2] == "load":
    y, sr = audio.load(sys.argv[1], sr=16_000)
else:
    prep = Preprocessing(AudioConfig(sample_rate=16_000), FeatureConfig(), 1.0)
    y = prep.read(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before // 1024, after // 1024, y.shape[1])
"""


def _flac_bomb(path: Path, seconds: int, sr: int = 655_350) -> Path:
    """``seconds`` of silence with a short chirp every second at the highest rate FLAC stores:
    kilobytes a second compressed, 2.6 MB a second decoded at its own rate."""
    second = np.zeros(sr, np.float32)
    t = np.arange(sr // 100) / sr
    second[: t.size] = 0.1 * np.sin(2 * np.pi * 1000 * t)
    with sf.SoundFile(path, "w", sr, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds):
            f.write(second)
    return path


def _peak_mb(path: Path, how: str) -> tuple[int, int]:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path), how],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    before, after, n = map(int, out)
    return after - before, n


def test_a_flac_bomb_loads_in_memory_that_follows_the_output_rate(tmp_path: Path) -> None:
    seconds = 40
    bomb = _flac_bomb(tmp_path / "bomb.flac", seconds)
    own_rate_mb = seconds * 655_350 * 4 / 2**20  # 100 MB float32 at its own rate
    assert bomb.stat().st_size < 1 * 2**20
    for how in ("load", "read"):  # audio.load, and Preprocessing.read (predict, serve)
        grew, n = _peak_mb(bomb, how)
        assert abs(n - seconds * 16_000) <= 1
        # whole-file decoding needs the file at its own rate at least twice (parts + joined)
        assert grew < own_rate_mb / 2, (how, grew)


def test_a_stream_without_a_decoder_is_an_unsupported_codec_not_a_crash(tmp_path: Path) -> None:
    """A WAV whose format code no decoder knows (0x0101), handed to PyAV as .m4a: PyAV gives a
    stream with no codec at all; naming the codec must not raise AttributeError (found by
    the server's upload fuzzing)."""
    wav = tmp_path / "clip.wav"
    sf.write(wav, tone(duration=0.1), SR, subtype="PCM_16")
    data = bytearray(wav.read_bytes())
    data[21] = 1
    odd = tmp_path / "odd.m4a"
    odd.write_bytes(bytes(data))
    with pytest.raises(errors.AudioError, match=r"odd\.m4a"):
        audio.load(odd)
