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


@pytest.mark.parametrize("name", ["none", "default", "strong"])
def test_presets(name: str) -> None:
    aug = A.preset(name, sample_rate=SR)
    x = wave()
    assert aug.waveform(x, generator=gen()).shape == x.shape
    spec = torch.randn(4, 1, 40, 50)
    assert aug.spectrogram(spec, generator=gen()).shape == spec.shape
    assert (aug.mixup is not None) == (name == "strong")
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
        ({"waveform": [{"name": "Reverb"}]}, "unknown transform 'Reverb'"),
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
