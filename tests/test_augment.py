from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from earmark import augment as A
from earmark.errors import ParameterError

SR = 16_000


def wave(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n, 1, SR, generator=g)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


WAVEFORM = [
    A.Shift(SR, max_shift_s=0.1, p=1.0),
    A.Gain(-6.0, 6.0, p=1.0),
    A.GaussianNoise(10.0, 30.0, p=1.0),
    A.TimeStretch(0.8, 1.2, p=1.0),
    A.PitchShift(SR, -2.0, 2.0, p=1.0),
    A.Speed(SR, 0.9, 1.1, p=1.0),
    A.ColoredNoise(SR, 0.0, 30.0, p=1.0),
    A.Equalizer(SR, p=1.0),
    A.BandPass(SR, p=1.0),
    A.Reverb(SR, p=1.0),
    A.Codec(SR, p=1.0),
]


@pytest.mark.parametrize("t", WAVEFORM, ids=lambda t: type(t).__name__)
def test_waveform_transforms_keep_shape_dtype_and_replay(t: A.Transform) -> None:
    x = wave()
    a, b = t(x, generator=gen(3)), t(x, generator=gen(3))
    assert a.shape == x.shape and a.dtype == x.dtype
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, x)
    assert not torch.equal(t(x, generator=gen(4)), a)


def test_probability_zero_is_the_identity() -> None:
    x = wave()
    for t in (A.Shift(SR, p=0.0), A.Gain(p=0.0), A.GaussianNoise(p=0.0), A.SpecAugment(p=0.0)):
        y = x if not isinstance(t, A.SpecAugment) else torch.randn(4, 1, 40, 50)
        torch.testing.assert_close(t(y, generator=gen()), y)
    for cls in (A.Speed, A.ColoredNoise, A.Equalizer, A.BandPass, A.Reverb, A.Codec):
        assert torch.equal(cls(SR, p=0.0)(x, generator=gen()), x), cls.__name__


def test_gain_noise_and_shift_do_what_their_names_say() -> None:
    x = wave()
    params = A.Gain(-6.0, 6.0, p=1.0).randomize_parameters(x, gen())
    y = A.Gain(p=1.0).apply(x, params)
    ratio_db = 20 * torch.log10(y.abs().amax(dim=(1, 2)) / x.abs().amax(dim=(1, 2)))
    torch.testing.assert_close(ratio_db, params["gain_db"], atol=1e-4, rtol=0)
    noisy = A.GaussianNoise(20.0, 20.0, p=1.0)(x, generator=gen())
    snr = 10 * torch.log10(x.pow(2).mean() / (noisy - x).pow(2).mean())
    assert abs(float(snr) - 20.0) < 0.5
    impulse = torch.zeros(1, 1, 100)
    impulse[0, 0, 50] = 1.0
    shift = A.Shift(100, max_shift_s=0.2, p=1.0)
    params = shift.randomize_parameters(impulse, gen(1))
    moved = shift.apply(impulse, params)
    assert int(moved.argmax()) == 50 + int(params["shift"][0])


def test_background_noise_from_a_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "hum.wav", (0.2 * np.sin(np.arange(4000) / 3)).astype(np.float32), SR)
    sf.write(tmp_path / "hiss.flac", (0.1 * rng.standard_normal(3 * SR)).astype(np.float32), SR)
    t = A.BackgroundNoise(tmp_path, SR, 10.0, 10.0, p=1.0)
    x = wave()
    y = t(x, generator=gen())
    snr = 10 * torch.log10(x.pow(2).mean(dim=(1, 2)) / (y - x).pow(2).mean(dim=(1, 2)))
    torch.testing.assert_close(snr, torch.full((4,), 10.0), atol=0.05, rtol=0)
    with pytest.raises(ParameterError, match="no audio files"):
        A.BackgroundNoise(tmp_path / "none", SR)


def test_specaugment_masks_bands_and_spans_with_the_mean() -> None:
    s = torch.randn(8, 1, 40, 50)
    y = A.SpecAugment(freq_masks=1, max_freq_width=10, time_masks=1, max_time_width=10, p=1.0)(
        s, generator=gen()
    )
    assert y.shape == s.shape
    changed = y != s
    fill = s.mean(dim=(1, 2, 3))
    for i in range(8):
        if changed[i].any():
            torch.testing.assert_close(y[i][changed[i]], fill[i].expand(int(changed[i].sum())))


def test_mixup_mixes_examples_and_targets_alike() -> None:
    x = torch.randn(6, 1, 40, 50)
    targets = torch.eye(6)
    mixed, soft = A.Mixup(alpha=0.4, p=1.0).mix(x, targets, gen())
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(6))
    assert (soft.max(dim=1).values >= 0.5).all()
    again, _ = A.Mixup(alpha=0.4, p=1.0).mix(x, targets, gen())
    torch.testing.assert_close(mixed, again)


@pytest.mark.parametrize("name", ["none", "default", "strong", "robust"])
def test_presets(name: str) -> None:
    aug = A.preset(name, sample_rate=SR)
    x = wave()
    assert aug.waveform(x, generator=gen()).shape == x.shape
    spec = torch.randn(4, 1, 40, 50)
    assert aug.spectrogram(spec, generator=gen()).shape == spec.shape
    assert (aug.mixup is not None) == (name in ("strong", "robust"))
    A.check_spec(name)
    with pytest.raises(ParameterError, match="unknown augmentation preset"):
        A.preset("wild", sample_rate=SR)


def test_compose_and_one_of() -> None:
    x = wave()
    c = A.Compose([A.Gain(6.0, 6.0, p=1.0), A.Gain(-6.0, -6.0, p=1.0)])
    torch.testing.assert_close(c(x, generator=gen()), x, atol=1e-6, rtol=1e-5)
    one = A.OneOf([A.Gain(6.0, 6.0, p=1.0), A.Gain(-6.0, -6.0, p=1.0)])
    y = one(x, generator=gen(5))
    ratio = float(y.abs().max() / x.abs().max())
    assert ratio == pytest.approx(10 ** (6 / 20), rel=1e-4) or ratio == pytest.approx(
        10 ** (-6 / 20), rel=1e-4
    )
    with pytest.raises(ParameterError, match="min_gain_db must be <= max_gain_db"):
        A.Gain(3.0, -3.0)


def test_full_control_from_a_spec(tmp_path: Path) -> None:
    sf.write(tmp_path / "n.wav", np.zeros(SR, np.float32) + 0.01, SR)
    spec = {
        "waveform": [
            {"name": "Shift", "max_shift_s": 0.05, "p": 1.0},
            {
                "name": "OneOf",
                "p": 1.0,
                "transforms": [{"name": "Gain", "min_gain_db": 3.0, "max_gain_db": 3.0, "p": 1.0}],
            },
            {"name": "BackgroundNoise", "folder": str(tmp_path), "p": 1.0},
        ],
        "spectrogram": [{"name": "SpecAugment", "freq_masks": 1, "p": 1.0}],
        "mixup": {"alpha": 0.3},
    }
    aug = A.from_spec(spec, sample_rate=SR)
    assert len(aug.waveform) == 3 and len(aug.spectrogram) == 1 and aug.mixup.alpha == 0.3
    assert aug.waveform(wave(), generator=gen()).shape == (4, 1, SR)
    A.check_spec(spec)
    # a BackgroundNoise without a folder takes the run's --background folder
    bare = {"waveform": [{"name": "BackgroundNoise", "p": 1.0}]}
    assert A.from_spec(bare, sample_rate=SR, background=tmp_path).waveform.transforms
    with pytest.raises(ParameterError, match="needs a folder"):
        A.from_spec(bare, sample_rate=SR)
    for bad, words in [
        ({"waveform": [{"name": "Flanger"}]}, "unknown transform 'Flanger'"),
        ({"spectrogram": [{"name": "Gain"}]}, "unknown transform 'Gain'"),
        ({"waveform": [{"name": "Gain", "loudness": 3}]}, "bad settings for Gain"),
        ({"echo": []}, "unknown sections"),
        ("wild", "unknown augmentation preset"),
    ]:
        with pytest.raises(ParameterError, match=words):
            A.check_spec(bad)


def test_train_config_checks_its_augmentation() -> None:
    from earmark.training import TrainConfig

    cfg = TrainConfig(augment={"spectrogram": [{"name": "SpecAugment"}]})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ParameterError, match="unknown augmentation preset"):
        TrainConfig(augment="heavy")


# -- recording conditions --------------------------------------------------------------------


def sine(freq: float, seconds: float = 0.5, sr: int = SR) -> torch.Tensor:
    t = torch.arange(round(seconds * sr), dtype=torch.float64) / sr
    return (0.1 * torch.sin(2 * torch.pi * freq * t)).float()[None, None, :]


def level_db(y: torch.Tensor, x: torch.Tensor) -> float:
    """Level change from ``x`` to ``y`` in dB, away from the clip's edges."""
    edge = 800
    return float(
        10 * torch.log10(y[..., edge:-edge].pow(2).mean() / x[..., edge:-edge].pow(2).mean())
    )


def test_band_pass_cuts_outside_the_telephone_band() -> None:
    t = A.BandPass(SR, p=1.0)
    for freq, lo, hi in [(100.0, -99, -20), (1000.0, -3, 0.5), (6000.0, -99, -20)]:
        x = sine(freq)
        assert lo < level_db(t(x, generator=gen()), x) < hi, freq
    # the gain curve is scipy's 4th-order Butterworth high-pass times its low-pass
    from scipy.signal import butter, sosfreqz

    freqs = torch.linspace(0, SR / 2, 200, dtype=torch.float64)
    got = A.butterworth_bandpass_gain(torch.tensor([300.0]), torch.tensor([3400.0]), 4, freqs, SR)
    _, h_hp = sosfreqz(butter(4, 300, "highpass", fs=SR, output="sos"), freqs.numpy(), fs=SR)
    _, h_lp = sosfreqz(butter(4, 3400, "lowpass", fs=SR, output="sos"), freqs.numpy(), fs=SR)
    np.testing.assert_allclose(got[0].numpy(), np.abs(h_hp * h_lp), atol=1e-9)


def test_equalizer_bands_have_the_drawn_gain() -> None:
    nyquist = torch.tensor([0.0, SR / 2], dtype=torch.float64)

    def gain_db(kind: int, f0: float, g: float, q: float, freqs: torch.Tensor) -> np.ndarray:
        args = (torch.tensor([[v]]) for v in (kind, f0, g, q))
        return 20 * np.log10(A.biquad_gain(*args, freqs, SR)[0].numpy())

    # a peak has its gain at its centre and none far from it; shelves at DC or Nyquist
    peak = gain_db(0, 1000.0, 9.0, 2.0, torch.tensor([1000.0, 20.0, 7900.0]))
    np.testing.assert_allclose(peak, [9.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(gain_db(1, 300.0, -8.0, 1.0, nyquist), [-8.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(gain_db(2, 3000.0, 6.0, 1.0, nyquist), [0.0, 6.0], atol=1e-6)
    # applied: a tone at a peaking band's centre changes by the band's gain
    eq = A.Equalizer(SR, bands=1, p=1.0)
    x = sine(1000.0)
    params = eq.randomize_parameters(x, gen())
    params.update(
        kind=torch.tensor([[0]]),
        freq_hz=torch.tensor([[1000.0]]),
        gain_db=torch.tensor([[-7.5]]),
        q=torch.tensor([[1.5]]),
    )
    assert level_db(eq.apply(x, params), x) == pytest.approx(-7.5, abs=0.2)


def schroeder_rt60(h: np.ndarray, sr: int) -> float:
    """RT60 from the slope of the backward-integrated energy between -5 and -25 dB (T20)."""
    edc = np.cumsum(h[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(edc_db <= -5), np.argmax(edc_db <= -25)
    slope = np.polyfit(np.arange(i5, i25) / sr, edc_db[i5:i25], 1)[0]
    return -60.0 / slope


def test_reverb_decays_with_the_drawn_rt60_and_stays_aligned() -> None:
    sr = 8000
    click = torch.zeros(3, 1, sr)
    click[:, 0, 200] = 1.0
    for rt60 in (0.25, 0.6):
        t = A.Reverb(sr, rt60, rt60, min_drr_db=6.0, max_drr_db=6.0, p=1.0)
        y = t(click, generator=gen())
        assert y.shape == click.shape and y.dtype == click.dtype
        torch.testing.assert_close(y.pow(2).mean(dim=-1), click.pow(2).mean(dim=-1))  # level
        for i in range(3):
            h = y[i, 0].numpy()
            assert int(np.argmax(np.abs(h))) == 200  # the direct sound stays where it was
            assert np.abs(h[:200]).max() < 1e-6  # nothing before it (FFT round-off)
            tail = h[201:]
            assert schroeder_rt60(tail, sr) == pytest.approx(rt60, rel=0.15)
            direct, rest = h[200] ** 2, (tail**2).sum()
            assert 10 * np.log10(direct / rest) == pytest.approx(6.0, abs=0.01)
    # on running audio the output correlates best with the input at lag 0
    x = wave(2)
    y = A.Reverb(SR, 0.3, 0.8, p=1.0)(x, generator=gen(2))
    for i in range(2):
        assert lag_of(y[i, 0].numpy(), x[i, 0].numpy()) == 0


def lag_of(y: np.ndarray, x: np.ndarray) -> int:
    """Samples by which ``y`` lags ``x`` (the cross-correlation's peak)."""
    n = len(x)
    cc = np.fft.irfft(np.fft.rfft(y, 2 * n) * np.conj(np.fft.rfft(x, 2 * n)), 2 * n)
    lag = int(np.argmax(cc))
    return lag - 2 * n if lag > n else lag


def voice_like(seconds: float = 0.5) -> torch.Tensor:
    """A gliding 200 Hz harmonic tone up to 7.8 kHz plus a little noise."""
    t = np.arange(round(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(200 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 36)) * 0.1
    y += 0.01 * np.random.default_rng(0).standard_normal(len(t))
    return torch.from_numpy(y.astype(np.float32))[None, None, :]


def band_db(y: torch.Tensor, x: torch.Tensor, lo: float, hi: float) -> float:
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    sel = (f >= lo) & (f < hi)
    power = [np.abs(np.fft.rfft(v[0, 0].numpy()))[sel] ** 2 for v in (y, x)]
    return float(10 * np.log10(power[0].sum() / power[1].sum()))


@pytest.mark.parametrize("codec", ["mp3", "opus"])
def test_codec_round_trip_is_aligned_lossy_and_band_limited(codec: str) -> None:
    x = voice_like()
    t = A.Codec(SR, codecs=[codec], min_kbps=8, max_kbps=8, p=1.0)
    y = t(x, generator=gen())
    assert y.shape == x.shape and y.dtype == x.dtype
    assert abs(lag_of(y[0, 0].numpy(), x[0, 0].numpy())) <= 2
    err_db = 10 * torch.log10((y - x).pow(2).mean() / x.pow(2).mean())
    assert -20 < float(err_db) < -3  # lossy, but still the same sound
    assert band_db(y, x, 6000, 8000) < -15  # 8 kbit/s leaves no room for the top band
    assert abs(band_db(y, x, 100, 1000)) < 3
    # a loud clip is not clipped by the codec, a silent one stays silent
    loud = torch.cat([x * 20, torch.zeros_like(x)])
    out = t(loud, generator=gen())
    assert float(out[0].abs().max()) > 1.5 and torch.equal(out[1], loud[1])
    # the delay removed is measured for this setting, at any clip rate
    assert A.codec_delay(codec, 44_100, 8) == pytest.approx(
        A.codec_delay(codec, SR, 8) * 44_100 / SR, abs=3
    )


def test_codec_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import av

    monkeypatch.setattr(sf, "available_formats", lambda: {"WAV": "WAV"})
    with pytest.raises(ParameterError, match="Codec mp3 needs soundfile"):
        A.Codec(SR, codecs=["mp3"])
    monkeypatch.setattr(av, "codecs_available", set())
    with pytest.raises(ParameterError, match="no libopus"):
        A.Codec(SR, codecs=["opus"])


def dominant_hz(y: torch.Tensor, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y[0, 0].numpy() * np.hanning(y.shape[-1]), 8 * y.shape[-1]))
    return float(np.argmax(spectrum) * sr / (8 * y.shape[-1]))


def test_speed_moves_pitch_and_duration_together() -> None:
    x = sine(1000.0, seconds=1.0)
    x[..., SR // 2 :] = 0.0  # half a second of tone, then silence
    for factor in (0.9, 1.08):
        y = A.Speed(SR, factor, factor, p=1.0)(x, generator=gen())
        assert y.shape == x.shape
        assert dominant_hz(y) == pytest.approx(1000.0 * factor, abs=2.0)
        sounding = int((y[0, 0].abs() > 0.02).nonzero().max()) + 1
        assert sounding / SR == pytest.approx(0.5 / factor, abs=0.003)


def octave_slope_db(noise: np.ndarray, sr: int) -> float:
    """Mean change of the noise's power density per octave, 125 Hz to 4 kHz."""
    f = np.fft.rfftfreq(len(noise), 1 / sr)
    psd = np.abs(np.fft.rfft(noise)) ** 2
    edges = 125.0 * 2.0 ** np.arange(6)
    density = [psd[(f >= a) & (f < 2 * a)].mean() for a in edges[:-1]]
    return float(np.polyfit(np.arange(len(density)), 10 * np.log10(density), 1)[0])


@pytest.mark.parametrize(("color", "slope"), [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_colored_noise_has_its_snr_and_slope(color: str, slope: float) -> None:
    x = sine(440.0, seconds=1.0).repeat(4, 1, 1)
    t = A.ColoredNoise(SR, 0.0, 30.0, colors=[color], p=1.0)
    params = t.randomize_parameters(x, gen())
    noise = t.apply(x, params) - x
    snr = 10 * torch.log10(x.pow(2).mean(dim=(1, 2)) / noise.pow(2).mean(dim=(1, 2)))
    torch.testing.assert_close(snr, params["snr_db"], atol=0.5, rtol=0)
    slopes = [octave_slope_db(n[0].numpy(), SR) for n in noise]
    assert np.mean(slopes) == pytest.approx(slope, abs=0.5)


def test_robust_preset_mixes_conditions_and_keeps_clean_examples(tmp_path: Path) -> None:
    sf.write(tmp_path / "cafe.wav", (0.1 * np.random.default_rng(1).standard_normal(SR)), SR)
    aug = A.preset("robust", sample_rate=SR, background=tmp_path)
    names = {type(t).__name__ for t in aug.waveform.transforms}
    inner = {
        type(t).__name__
        for o in aug.waveform.transforms
        if isinstance(o, A.OneOf)
        for t in o.transforms
    }
    assert {"Reverb", "ColoredNoise", "BackgroundNoise", "Codec"} <= names
    assert {"Equalizer", "BandPass", "Speed", "PitchShift"} <= inner
    assert all(0.1 <= t.p <= 0.5 for t in aug.waveform.transforms if isinstance(t, A.Transform))
    x = wave(16)
    y = aug.waveform(x, generator=gen())
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert A.preset("robust", sample_rate=8000).waveform(
        wave(2)[..., :8000], generator=gen()
    ).shape == (2, 1, 8000)


def test_new_transforms_by_name_in_a_recipe() -> None:
    spec = {
        "waveform": [
            {"name": "Speed", "min_factor": 0.95, "max_factor": 1.05, "p": 0.5},
            {"name": "Reverb", "min_rt60_s": 0.2, "max_rt60_s": 0.5, "p": 0.3},
            {"name": "ColoredNoise", "colors": ["pink"], "min_snr_db": 5, "max_snr_db": 20},
            {
                "name": "OneOf",
                "transforms": [
                    {"name": "Equalizer", "bands": 2, "max_gain_db": 6},
                    {"name": "BandPass", "min_low_hz": 250, "max_high_hz": 3400},
                ],
            },
            {"name": "Codec", "codecs": ["opus"], "min_kbps": 12, "max_kbps": 24, "p": 0.1},
        ]
    }
    A.check_spec(spec)
    aug = A.from_spec(spec, sample_rate=SR)
    assert [type(t).__name__ for t in aug.waveform.transforms] == [
        "Speed",
        "Reverb",
        "ColoredNoise",
        "OneOf",
        "Codec",
    ]
    assert aug.waveform(wave(), generator=gen()).shape == (4, 1, SR)
    from earmark.training import TrainConfig

    cfg = TrainConfig(augment=spec)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig(augment="robust").augment == "robust"


@pytest.mark.parametrize(
    ("transform", "words"),
    [
        ({"name": "Speed", "min_factor": 1.2, "max_factor": 0.8}, "min_factor must be <="),
        ({"name": "Speed", "min_factor": 0.0}, "min_factor must be > 0"),
        ({"name": "Reverb", "min_rt60_s": 2.0}, "min_rt60_s must be <="),
        ({"name": "Reverb", "min_rt60_s": -0.1}, "min_rt60_s > 0"),
        ({"name": "ColoredNoise", "colors": ["blue"]}, "unknown noise colors"),
        ({"name": "ColoredNoise", "min_snr_db": 40}, "min_snr_db must be <="),
        ({"name": "Equalizer", "min_gain_db": 3, "max_gain_db": -3}, "min_gain_db must be <="),
        ({"name": "Equalizer", "bands": 0}, "bands must be"),
        ({"name": "BandPass", "max_high_hz": 9000}, "below the Nyquist"),
        ({"name": "BandPass", "min_high_hz": 300}, "max_low_hz < min_high_hz"),
        ({"name": "Codec", "codecs": ["flac"]}, "unknown codecs"),
        ({"name": "Codec", "min_kbps": 4}, "within 8-64"),
        ({"name": "Codec", "min_kbps": 40, "max_kbps": 16}, "min_kbps must be <="),
        ({"name": "Reverb", "room": "hall"}, "bad settings for Reverb"),
    ],
)
def test_bad_settings_are_one_line_errors(transform: dict, words: str) -> None:
    with pytest.raises(ParameterError, match=words):
        A.check_spec({"waveform": [transform]})


def test_a_run_with_the_robust_preset_trains_and_replays() -> None:
    from earmark.features import FeatureConfig, build_frontend
    from earmark.models.neural import NeuralModel
    from earmark.training import TrainConfig, Trainer, WaveBank

    sr = 8000
    rng = np.random.default_rng(0)
    t = np.arange(sr // 2) / sr
    waves = [
        (
            0.3 * np.sin(2 * np.pi * (300.0, 1200.0)[i % 2] * t)
            + 0.02 * rng.standard_normal(t.size)
        ).astype(np.float32)[None, :]
        for i in range(24)
    ]
    labels = torch.tensor([i % 2 for i in range(24)])
    features = FeatureConfig(kind="logmel", n_fft=256, win_length=200, hop_length=100, n_mels=24)

    def fit() -> tuple[dict, list]:
        torch.manual_seed(0)
        net = NeuralModel("seed-cnn", {}, 2, 1).network
        config = TrainConfig(epochs=2, batch_size=12, augment="robust", device="cpu", seed=0)
        result = Trainer(config).fit(
            net,
            build_frontend(features, sr),
            WaveBank(waves),
            labels,
            None,
            None,
            n_classes=2,
            n_samples=sr // 2,
            sample_rate=sr,
        )
        return result.best_state, result.history

    (state, history), (again, _) = fit(), fit()
    assert len(history) == 2 and all(np.isfinite(r["train_loss"]) for r in history)
    for name, value in state.items():
        torch.testing.assert_close(again[name], value, rtol=0, atol=0)
