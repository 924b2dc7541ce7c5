from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from earmark import audio
from earmark.errors import ParameterError
from earmark.features import spectral
from earmark.features.frontend import FeatureConfig, build_frontend, extract

SR = 16_000


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    clicks = np.zeros(SR, np.float32)
    clicks[::1600] = 0.9
    return {
        "chirp": librosa.chirp(fmin=60, fmax=7500, sr=SR, duration=1.0).astype(np.float32),
        "noise": (0.1 * rng.standard_normal(SR)).astype(np.float32),
        "tone+noise": (0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(SR)).astype(
            np.float32
        ),
        "clicks": clicks,
    }


SIGNALS = _signals()
PARAMS = [
    dict(n_fft=2048),
    dict(n_fft=512, hop_length=160, win_length=400, n_mels=64, fmin=20.0, fmax=7600.0),
    dict(n_fft=1024, hop_length=256, n_mels=40, htk=True),
    dict(n_fft=256, hop_length=128, n_mels=32, window="hamming", center=False),
    dict(n_fft=512, hop_length=100, win_length=301, n_mels=48, pad_mode="reflect"),
]


@pytest.fixture(scope="module")
def speech(demo_digits: Path) -> np.ndarray:
    y, _ = audio.load(demo_digits / "seven" / "v000.wav", sr=SR)
    return y[0]


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize("kw", PARAMS, ids=lambda kw: f"nfft{kw['n_fft']}")
def test_logmel_matches_librosa_within_0_01_db(name: str, kw: dict) -> None:
    y = SIGNALS[name]
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, **kw), top_db=80.0)
    got = spectral.logmel(torch.from_numpy(y), SR, **kw).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 0.01


@pytest.mark.parametrize("name", list(SIGNALS))
@pytest.mark.parametrize("kw", PARAMS, ids=lambda kw: f"nfft{kw['n_fft']}")
def test_mfcc_matches_librosa_within_1e_3_relative(name: str, kw: dict) -> None:
    y = SIGNALS[name]
    ref = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, **kw)
    got = spectral.mfcc(torch.from_numpy(y), SR, n_mfcc=20, **kw).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-3


def test_real_speech_matches_librosa(speech: np.ndarray) -> None:
    kw = dict(n_fft=512, hop_length=160, win_length=400, n_mels=64)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=speech, sr=SR, **kw))
    assert np.abs(spectral.logmel(torch.from_numpy(speech), SR, **kw).numpy() - ref).max() < 0.01
    m = librosa.feature.mfcc(y=speech, sr=SR, n_mfcc=13, lifter=22, **kw)
    got = spectral.mfcc(torch.from_numpy(speech), SR, n_mfcc=13, lifter=22, **kw).numpy()
    assert np.abs(got - m).max() / np.abs(m).max() < 1e-3


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("frames", [9, 10, 57])
def test_delta_matches_librosa(order: int, frames: int) -> None:
    x = np.random.default_rng(frames).standard_normal((13, frames)).astype(np.float32)
    ref = librosa.feature.delta(x, order=order)
    np.testing.assert_allclose(
        spectral.delta(torch.from_numpy(x), order=order).numpy(), ref, atol=1e-5
    )


def test_delta_on_very_short_input_shrinks_the_window() -> None:
    x = torch.arange(5.0).repeat(3, 1)
    np.testing.assert_allclose(spectral.delta(x).numpy(), 1.0, atol=1e-6)  # a ramp's slope
    assert spectral.delta(torch.ones(2, 2)).abs().max() == 0


def test_mfcc_with_deltas_stacks_them() -> None:
    y = torch.from_numpy(SIGNALS["chirp"])
    out = spectral.mfcc(y, SR, n_mfcc=13, deltas=2, n_fft=512, hop_length=160)
    base = librosa.feature.mfcc(y=SIGNALS["chirp"], sr=SR, n_mfcc=13, n_fft=512, hop_length=160)
    assert out.shape == (39, base.shape[1])
    d2 = librosa.feature.delta(base, order=2)
    assert np.abs(out[26:].numpy() - d2).max() / np.abs(d2).max() < 1e-3


def test_stft_matches_librosa() -> None:
    y = SIGNALS["tone+noise"]
    ref = librosa.stft(y, n_fft=512, hop_length=128)
    got = spectral.stft(torch.from_numpy(y), n_fft=512, hop_length=128).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-3 * np.abs(ref).max())
    power = spectral.stft(torch.from_numpy(y), n_fft=512, hop_length=128, power=2.0).numpy()
    np.testing.assert_allclose(
        power, np.abs(ref) ** 2, rtol=1e-3, atol=1e-6 * np.abs(ref).max() ** 2
    )


def test_filterbank_and_mel_scale_match_librosa() -> None:
    for htk in (False, True):
        f = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0])
        np.testing.assert_allclose(spectral.hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk))
        m = spectral.hz_to_mel(f, htk=htk)
        np.testing.assert_allclose(spectral.mel_to_hz(m, htk=htk), f, rtol=1e-9, atol=1e-9)
        for norm in ("slaney", None):
            ours = spectral.mel_filterbank(
                sr=22_050, n_fft=1024, n_mels=80, fmin=30.0, fmax=9000.0, htk=htk, norm=norm
            )
            ref = librosa.filters.mel(
                sr=22_050, n_fft=1024, n_mels=80, fmin=30.0, fmax=9000.0, htk=htk, norm=norm
            )
            np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)


def test_batch_equals_items_one_by_one() -> None:
    items = np.stack([SIGNALS[k] for k in ("chirp", "noise", "clicks")])
    batch = torch.from_numpy(np.stack([items, items[::-1]], axis=1))  # [3, 2, samples]
    out = spectral.logmel(batch, SR, n_fft=512, hop_length=160, n_mels=64)
    assert out.shape[:3] == (3, 2, 64)
    for b in range(3):
        # top_db is taken jointly over an item's channels, as librosa does for [ch, samples].
        ref = librosa.power_to_db(
            librosa.feature.melspectrogram(
                y=batch[b].numpy(), sr=SR, n_fft=512, hop_length=160, n_mels=64
            ),
            top_db=80.0,
        )
        assert np.abs(out[b].numpy() - ref).max() < 0.01


def test_modules_equal_functions_and_carry_buffers() -> None:
    y = torch.from_numpy(np.stack([SIGNALS["chirp"], SIGNALS["noise"]]))[:, None]
    kw = dict(n_fft=512, hop_length=160, n_mels=64)
    lm = spectral.LogMel(SR, **kw)
    torch.testing.assert_close(lm(y), spectral.logmel(y, SR, **kw))
    assert set(lm.state_dict()) == {"window", "mel_fb"}
    mf = spectral.MFCC(SR, n_mfcc=20, deltas=1, **kw)
    torch.testing.assert_close(mf(y), spectral.mfcc(y, SR, n_mfcc=20, deltas=1, **kw))
    st = spectral.STFT(n_fft=512, hop_length=160, power=1.0)
    torch.testing.assert_close(st(y), spectral.stft(y, n_fft=512, hop_length=160, power=1.0))


def test_double_precision_input_stays_double() -> None:
    y = torch.from_numpy(SIGNALS["chirp"].astype(np.float64))
    assert spectral.logmel(y, SR, n_fft=512).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_agrees_with_cpu() -> None:
    y = torch.from_numpy(np.stack([SIGNALS["chirp"], SIGNALS["noise"]]))[:, None]
    lm = spectral.LogMel(SR, n_fft=512, hop_length=160, n_mels=64)
    cpu = lm(y)
    gpu = lm.to("cuda")(y.to("cuda")).cpu()
    assert (cpu - gpu).abs().max() < 0.01


def test_bad_inputs_raise_parameter_errors() -> None:
    with pytest.raises(ParameterError, match="too short"):
        spectral.stft(torch.zeros(100), n_fft=512, center=False)
    with pytest.raises(ParameterError, match="floating-point"):
        spectral.logmel(torch.zeros(1000, dtype=torch.int16), SR)
    with pytest.raises(ParameterError, match="fmax"):
        spectral.mel_filterbank(sr=SR, n_fft=512, fmax=9000.0)
    with pytest.raises(ParameterError, match="n_mfcc"):
        spectral.dct_matrix(50, 40)


@pytest.mark.parametrize("kind", ["waveform", "stft", "logmel", "mfcc", "handcrafted"])
def test_feature_config_extracts_every_kind(kind: str) -> None:
    cfg = FeatureConfig(kind=kind, deltas=1)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    batch = np.stack([SIGNALS["chirp"], SIGNALS["noise"]])[:, None]
    out = extract(batch, SR, cfg)
    expected = {
        "waveform": (2, 1, SR),
        "stft": (2, 1, 257, 101),
        "logmel": (2, 1, 64, 101),
        "mfcc": (2, 1, 40, 101),
        "handcrafted": (2, len(cfg.handcrafted(SR).names)),
    }[kind]
    assert out.shape == expected and np.isfinite(out).all()
    if kind != "handcrafted":
        assert isinstance(build_frontend(cfg, SR), torch.nn.Module)


def test_framed_windows_share_frames_and_equal_the_clip_frontend() -> None:
    from earmark.features.spectral import MFCC, STFT, LogMel, framed

    torch.manual_seed(0)
    sr, n, half = 16_000, 16_000, 512
    y = torch.randn(1, 5 * sr) * 0.1
    common = dict(n_fft=1024, win_length=640, hop_length=320)
    starts = [half + k * 8_000 for k in range(6)]
    for frontend in (
        LogMel(sr, n_mels=40, **common),
        MFCC(sr, n_mels=40, deltas=1, **common),
        STFT(**common),
    ):
        got = framed(frontend, y, starts, n)
        ref = frontend(torch.stack([y[:, s : s + n] for s in starts]))
        assert got.shape == ref.shape
        # frames away from the window edges (and from the delta filter's reach) are identical
        torch.testing.assert_close(got[..., 5:-5], ref[..., 5:-5], rtol=1e-5, atol=1e-4)
    # a window with zeros around it is exactly the clip with its centre padding
    frontend = LogMel(sr, n_mels=40, **common)
    z = torch.zeros(1, n + 2 * half)
    z[:, half : half + n] = y[:, :n]
    torch.testing.assert_close(framed(frontend, z, [half], n), frontend(y[None, :, :n]))
    with pytest.raises(ParameterError, match="multiples of the hop"):
        framed(frontend, y, [half, half + 100], n)
    with pytest.raises(ParameterError, match="context"):
        framed(frontend, y, [0], n)
