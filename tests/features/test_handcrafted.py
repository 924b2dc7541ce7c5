from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from signals import SR, tone

from earmark import audio
from earmark.errors import ParameterError
from earmark.features.config import FeatureConfig
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


# -- an independent computation: numpy / scipy by hand, no librosa, no earmark ---------------


def _framed(y: np.ndarray, n_fft: int, hop: int, mode: str = "constant") -> np.ndarray:
    """Centred frames ``[frames, n_fft]`` of ``y`` padded by ``n_fft // 2`` on each side."""
    padded = np.pad(y.astype(np.float64), n_fft // 2, mode=mode)
    n = 1 + (padded.size - n_fft) // hop
    return padded[np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]]


def _magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| ``[1 + n_fft // 2, frames]`` with a periodic Hann window."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    return np.abs(np.fft.rfft(_framed(y, n_fft, hop) * window, axis=1)).T


def _slaney_mel(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney's mel filters (Auditory Toolbox): mel scale linear to 1 kHz, logarithmic above;
    triangles between mel-spaced edges from 0 Hz to sr / 2, each of unit area."""
    step = np.log(6.4) / 27.0

    def mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        return np.where(f < 1000, 3 * f / 200, 15 + np.log(np.maximum(f, 1e-9) / 1000) / step)

    def hz(m: np.ndarray) -> np.ndarray:
        return np.where(m < 15, 200 * m / 3, 1000 * np.exp(step * (m - 15)))

    edges = hz(np.linspace(mel(0.0), mel(sr / 2), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    rising = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.maximum(0, np.minimum(rising, falling)) * (2 / (edges[2:] - edges[:-2]))[:, None]


def _rows_by_hand(y: np.ndarray, sr: int, n_fft: int, hop: int, n_mfcc: int, n_mels: int):
    from scipy.fft import dct
    from scipy.signal import savgol_filter

    S = _magnitude(y, n_fft, hop)
    freqs = np.arange(S.shape[0])[:, None] * sr / n_fft
    share = S / S.sum(axis=0)
    centroid = (freqs * share).sum(axis=0)
    cum = np.cumsum(S, axis=0)
    power = np.maximum(S**2, 1e-10)
    frames = _framed(y, n_fft, hop)
    edge = _framed(y, n_fft, hop, "edge")
    positive = np.where(np.abs(edge) <= 1e-10, 0.0, edge) >= 0
    blocks = frames[:, : (n_fft // 10) * 10].reshape(frames.shape[0], 10, -1)
    p = (blocks**2).sum(axis=2)
    p = p / (p.sum(axis=1, keepdims=True) + 1e-10)
    norm = S / (S.sum(axis=0) + 1e-10)
    db = 10 * np.log10(np.maximum(_slaney_mel(sr, n_fft, n_mels) @ S**2, 1e-10))
    mfcc = dct(np.maximum(db, db.max() - 80.0), type=2, norm="ortho", axis=0)[:n_mfcc]
    rows = {
        "zcr": (positive[:, 1:] != positive[:, :-1]).sum(axis=1) / n_fft,
        "rms": np.sqrt((frames**2).mean(axis=1)),
        "energy_entropy": -(p * np.log2(p + 1e-10)).sum(axis=1),
        "centroid": centroid,
        "bandwidth": np.sqrt((share * (freqs - centroid) ** 2).sum(axis=0)),
        "flatness": np.exp(np.log(power).mean(axis=0)) / power.mean(axis=0),
        "rolloff": np.array([freqs[np.argmax(c >= 0.85 * c[-1]), 0] for c in cum.T]),
        "flux": np.concatenate([[0.0], (np.diff(norm, axis=1) ** 2).sum(axis=0)]),
    }
    for i in range(n_mfcc):
        rows[f"mfcc{i:02d}"] = mfcc[i]
    d1 = savgol_filter(mfcc, 9, polyorder=1, deriv=1, axis=1, mode="interp")
    d2 = savgol_filter(mfcc, 9, polyorder=2, deriv=2, axis=1, mode="interp")
    for i in range(n_mfcc):
        rows[f"mfcc{i:02d}_d1"], rows[f"mfcc{i:02d}_d2"] = d1[i], d2[i]
    return rows


TOLERANCE = {"rolloff": {"atol": SR / 512 + 1e-6}, "zcr": {"atol": 0}, "flatness": {"rtol": 1e-3}}


@pytest.mark.parametrize(
    ("given", "n_mfcc", "n_mels"),
    [({}, 13, 40), ({"n_mfcc": 20, "n_mels": 64}, 20, 64), ({"n_mels": 80}, 13, 80)],
)
def test_frame_rows_agree_with_a_computation_by_hand(given: dict, n_mfcc: int, n_mels: int) -> None:
    feats = FeatureConfig(kind="handcrafted", **given).handcrafted(SR)
    assert (feats.n_mfcc, feats.n_mels) == (n_mfcc, n_mels)  # given values are honoured
    rng = np.random.default_rng(3)
    t = np.arange(SR) / SR
    y = 0.1 * rng.standard_normal(SR) + 0.3 * np.sin(2 * np.pi * (300 + 2000 * t) * t)
    y = (y * np.hanning(SR) ** 0.2).astype(np.float32)  # a fade in and out: frames differ
    frames, rows = feats.frames(y), feats.row_names
    assert sum(r.startswith("mfcc") for r in rows) == 3 * n_mfcc
    want = _rows_by_hand(y, SR, 512, 160, n_mfcc, n_mels)
    assert frames.shape == (len(rows), want["zcr"].size)
    for name, row in want.items():
        tol = TOLERANCE.get(name, {"rtol": 1e-4, "atol": 1e-3 if "mfcc" in name else 1e-6})
        np.testing.assert_allclose(frames[rows.index(name)], row, **tol, err_msg=name)
    vec = feats.summarize(frames)  # the statistics over frames, by hand too
    for name in ("centroid", "mfcc03", f"mfcc{n_mfcc - 1:02d}_d1"):
        row = frames[rows.index(name)]
        stats = [row.mean(), row.std(), row.min(), row.max(), *np.percentile(row, [10, 50, 90])]
        got = [feature(vec, feats.names, f"{name}_{s}") for s in feats.stats]
        np.testing.assert_allclose(got, stats, rtol=1e-6, atol=1e-6, err_msg=name)


def test_two_tones_give_the_figures_known_in_closed_form(feats: HandcraftedFeatures) -> None:
    # 1 kHz and 3 kHz, each a whole number of periods in a 512-sample frame (FFT bins 32 and
    # 96): with a Hann window each lights three bins, weighted 1/2, 1, 1/2 by its amplitude.
    t = np.arange(SR) / SR
    a1, a2 = 0.6, 0.2
    y = (a1 * np.sin(2 * np.pi * 1000 * t) + a2 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    frames, rows = feats.frames(y), feats.row_names
    inner = slice(4, -4)  # frames wholly inside the clip
    centroid = (a1 * 1000 + a2 * 3000) / (a1 + a2)  # magnitude-weighted, not power-weighted
    np.testing.assert_allclose(frames[rows.index("centroid"), inner], centroid, rtol=1e-5)
    bin_hz, lobe = SR / 512, np.array([0.5, 1.0, 0.5])
    spread = sum(
        a * (lobe * ((f + bin_hz * np.array([-1, 0, 1]) - centroid) ** 2)).sum()
        for a, f in ((a1, 1000), (a2, 3000))
    ) / (2 * (a1 + a2))
    np.testing.assert_allclose(frames[rows.index("bandwidth"), inner], np.sqrt(spread), rtol=1e-5)
    rms = np.sqrt((a1**2 + a2**2) / 2)
    np.testing.assert_allclose(frames[rows.index("rms"), inner], rms, rtol=1e-5)
    # sin x (1.2 - 0.8 sin^2 x) has the zeros of sin x: two per millisecond, 1/8 per sample
    np.testing.assert_allclose(frames[rows.index("zcr"), inner], 1 / 8, atol=1.5 / 512)
    # the 1 kHz lobe holds 3/4 of the magnitude, up to the bin below 3 kHz 13/16: 85% is
    # reached at the 3 kHz bin
    np.testing.assert_allclose(frames[rows.index("rolloff"), inner], 3000.0)
    # steady tones: the energy is spread evenly over the 10 blocks of a frame, no flux
    np.testing.assert_allclose(frames[rows.index("energy_entropy"), inner], np.log2(10), atol=0.01)
    np.testing.assert_allclose(frames[rows.index("flux"), inner], 0, atol=1e-9)


def test_hand_crafted_settings_are_honoured_or_refused() -> None:
    default = FeatureConfig(kind="handcrafted")
    assert (default.n_mfcc, default.n_mels) == (13, 40)  # the vector models were trained on
    assert default.handcrafted(SR).names == HandcraftedFeatures(sr=SR).names
    assert (FeatureConfig().n_mfcc, FeatureConfig().n_mels) == (20, 64)  # spectral kinds
    feats = FeatureConfig(kind="handcrafted", n_mfcc=20, n_mels=64).handcrafted(SR)
    assert (feats.n_mfcc, feats.n_mels) == (20, 64)
    assert "mfcc19_d2_p90" in feats.names and len(feats(tone())) == len(feats.names)
    with pytest.raises(ParameterError, match="n_mfcc=30 is more than n_mels=24"):
        FeatureConfig(kind="handcrafted", n_mfcc=30, n_mels=24).handcrafted(SR)
    with pytest.raises(ParameterError, match="n_mels=128 is too many for n_fft=256"):
        FeatureConfig(kind="handcrafted", n_fft=256, win_length=256, n_mels=128).handcrafted(SR)
    with pytest.raises(ParameterError, match="n_mfcc >= 1"):
        HandcraftedFeatures(n_mfcc=0)


def test_records_written_before_the_settings_were_honoured_give_the_same_vectors() -> None:
    # earmark.json of a hand-crafted model trained before: every key, n_mels 64 and n_mfcc 20
    # recorded, 13 MFCCs from 40 mel bands computed.
    old = {
        "kind": "handcrafted", "n_fft": 512, "win_length": 400, "hop_length": 160,
        "n_mels": 64, "fmin": 0.0, "fmax": None, "top_db": 80.0, "n_mfcc": 20, "deltas": 0,
        "stats": ["mean", "std", "min", "max", "p10", "p50", "p90"],
    }  # fmt: skip
    then = HandcraftedFeatures(sr=SR, n_fft=512, hop_length=160, n_mfcc=13, n_mels=40)
    cfg = FeatureConfig.from_dict(old)
    assert (cfg.n_mfcc, cfg.n_mels) == (13, 40)
    np.testing.assert_array_equal(cfg.handcrafted(SR)(tone()), then(tone()))
    assert FeatureConfig.from_dict({**old, "n_mels": 32}).n_mels == 32  # under the cap: kept
    # what is written now says what is computed, and reads back as written
    record = cfg.to_dict()
    assert record["handcrafted_version"] == 2 and FeatureConfig.from_dict(record) == cfg
    wide = FeatureConfig(kind="handcrafted", n_mfcc=20, n_mels=64)
    assert FeatureConfig.from_dict(wide.to_dict()) == wide
    assert FeatureConfig.from_dict({"kind": "handcrafted", "n_mfcc": 20}).n_mfcc == 20
    assert FeatureConfig(**{**old, "handcrafted_version": 1}) == cfg
    from earmark.settings import check_section  # how a run's settings.json is read back

    assert check_section(FeatureConfig, wide.to_dict(), prefix="features") == wide
    assert "handcrafted_version" not in FeatureConfig().to_dict()  # other kinds: unchanged
    with pytest.raises(ParameterError, match="handcrafted_version must be 1 or 2, got 3"):
        FeatureConfig.from_dict({**record, "handcrafted_version": 3})


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
