from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
from conftest import SR, tone

from earmark import audio
from earmark.errors import ParameterError
from earmark.features.handcrafted import HandcraftedFeatures, handcrafted


def feature(vec: np.ndarray, names: list[str], name: str) -> float:
    return float(vec[names.index(name)])


@pytest.fixture(scope="module")
def feats() -> HandcraftedFeatures:
    return HandcraftedFeatures(sr=SR)


def test_names_match_the_vector_and_are_unique(feats: HandcraftedFeatures) -> None:
    vec = feats(tone())
    assert vec.shape == (len(feats.names),) and len(set(feats.names)) == len(feats.names)
    assert vec.dtype == np.float32 and np.isfinite(vec).all()
    for row in (
        "zcr",
        "rms",
        "energy_entropy",
        "centroid",
        "bandwidth",
        "flatness",
        "rolloff",
        "flux",
        "contrast0",
        "chroma_A",
        "mfcc00",
        "mfcc12_d1",
        "mfcc12_d2",
    ):
        assert f"{row}_mean" in feats.names and f"{row}_p90" in feats.names


def test_real_speech_gives_finite_features(demo_digits: Path, feats: HandcraftedFeatures) -> None:
    vectors = []
    for digit in ("one", "six"):
        y, _ = audio.load(demo_digits / digit / "v001.wav", sr=SR)
        vectors.append(feats(y))
    assert all(np.isfinite(v).all() for v in vectors)
    assert np.abs(vectors[0] - vectors[1]).max() > 0  # different words, different numbers


def test_values_mean_what_their_names_say(feats: HandcraftedFeatures) -> None:
    names = feats.names
    low, high = feats(tone(200.0)), feats(tone(3000.0))
    assert feature(high, names, "zcr_mean") > 5 * feature(low, names, "zcr_mean")
    assert abs(feature(high, names, "centroid_p50") - 3000.0) < 100.0
    assert abs(feature(low, names, "rms_p50") - 0.5 / np.sqrt(2)) < 0.01
    a440 = feats(tone(440.0))
    chroma = [feature(a440, names, f"chroma_{c}_mean") for c in ("C", "D", "E", "G", "A", "B")]
    assert int(np.argmax(chroma)) == 4
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    click = np.zeros(SR, np.float32)
    click[::2000] = 1.0
    assert feature(feats(noise), names, "flatness_mean") > 10 * feature(low, names, "flatness_mean")
    assert feature(feats(click), names, "energy_entropy_p50") < feature(
        feats(noise), names, "energy_entropy_p50"
    )


def test_spectral_rows_agree_with_librosa(feats: HandcraftedFeatures) -> None:
    y = librosa.chirp(fmin=100, fmax=6000, sr=SR, duration=1.0).astype(np.float32)
    frames = feats.frames(y)
    rows = feats.row_names
    ref = librosa.feature.spectral_centroid(y=y, sr=SR, n_fft=512, hop_length=160)[0]
    np.testing.assert_allclose(frames[rows.index("centroid")], ref, rtol=1e-4)
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40)
    np.testing.assert_allclose(frames[rows.index("mfcc03")], mfcc[3], rtol=1e-4, atol=1e-3)


def test_statistics_are_configurable_and_checked() -> None:
    vec, names = handcrafted(tone(), SR, stats=("mean", "p25"))
    assert names[:2] == ["zcr_mean", "zcr_p25"] and vec.shape == (len(names),)
    with pytest.raises(ParameterError, match="unknown statistic"):
        HandcraftedFeatures(stats=("median",))


@pytest.mark.parametrize("n", [1, 100, 600])
def test_very_short_and_silent_clips_still_give_a_vector(
    feats: HandcraftedFeatures, n: int
) -> None:
    for y in (np.zeros(n, np.float32), tone(duration=n / SR)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # short clips are handled, not warned about
            vec = feats(y)
        assert vec.shape == (len(feats.names),) and np.isfinite(vec).all()


def test_low_sample_rates_use_fewer_contrast_bands() -> None:
    assert "contrast6_mean" in HandcraftedFeatures(sr=44_100).names
    names = HandcraftedFeatures(sr=8_000).names
    assert "contrast4_mean" in names and "contrast5_mean" not in names
    vec = HandcraftedFeatures(sr=8_000)(tone(sr=8_000))
    assert np.isfinite(vec).all()
