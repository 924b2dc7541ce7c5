"""The GPU paths, checked against the CPU: they run wherever a CUDA GPU is present and skip
elsewhere (CI has none; `benchmarks/gpu_check.sh` runs them on a GPU machine).

Features on the GPU equal the CPU's, a bfloat16-autocast training run trains, detection on
the GPU finds the CPU's events, a server of a model on the GPU answers as the CPU one does,
and the aisfx embedding network gives the CPU's embeddings. The data are tones generated
here (no espeak-ng: a GPU machine may lack it)."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from signals import SR, tone

# EARMARK_TEST_DEVICE=cpu runs these tests' code on the CPU against itself (what
# `benchmarks/gpu_check.sh` does with DEVICE=cpu, so the script and the tests are checked
# where there is no GPU); the comparisons only mean something on a GPU.
DEVICE = os.environ.get("EARMARK_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE.startswith("cuda") and not torch.cuda.is_available(), reason="needs a CUDA GPU"
)
PITCHES = {"low": 300.0, "mid": 900.0, "high": 2000.0}


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of 1-s tones in a little noise, 12 clips each, a folder per class."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    for label, pitch in PITCHES.items():
        (root / label).mkdir()
        for k in range(12):
            y = tone(pitch * rng.uniform(0.97, 1.03), 1.0, amp=0.3)
            y = y + 0.02 * rng.standard_normal(y.size).astype(np.float32)
            sf.write(root / label / f"c{k:02d}.wav", y, SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def model(tones: Path):  # -> earmark.Classifier, trained on the CPU
    from earmark import data
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier
    from earmark.training import TrainConfig

    cfg = TrainConfig(epochs=6, batch_size=8, device="cpu", seed=0, augment="none")
    clf = Classifier("seed-cnn", audio=AudioConfig(duration=1.0), train=cfg)
    return clf.fit(data.load(tones))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of quiet noise with a tone of each class every few seconds."""
    rng = np.random.default_rng(1)
    y = 0.003 * rng.standard_normal(20 * SR).astype(np.float32)
    for k in range(6):
        pitch = list(PITCHES.values())[k % 3]
        start = (1 + 3 * k) * SR
        y[start : start + SR // 2] += tone(pitch, 0.5, amp=0.3)
    path = tmp_path_factory.mktemp("scene") / "scene.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    return path


def _signals() -> torch.Tensor:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    chirp = np.sin(2 * np.pi * (200 + 3000 * t) * t).astype(np.float32)
    noise = 0.1 * rng.standard_normal(SR).astype(np.float32)
    return torch.from_numpy(np.stack([chirp, noise, tone(440.0, 1.0, sr=SR)]))[:, None]


@pytest.mark.parametrize("kind", ["stft", "logmel", "mfcc"])
def test_features_on_the_gpu_equal_the_cpus(kind: str) -> None:
    from earmark.features import spectral

    modules = {
        "stft": spectral.STFT(n_fft=512, hop_length=160, power=2.0),
        "logmel": spectral.LogMel(SR, n_fft=512, hop_length=160, n_mels=64),
        "mfcc": spectral.MFCC(SR, n_mfcc=20, deltas=1, n_fft=512, hop_length=160),
    }
    module, y = modules[kind], _signals()
    cpu = module(y)
    gpu = module.to(DEVICE)(y.to(DEVICE)).cpu()
    # dB features to 0.01 dB; a power spectrogram relative to its peak (cuFFT rounds
    # differently from pocketfft)
    scale = float(cpu.abs().max()) if kind == "stft" else 1.0
    assert float((cpu - gpu).abs().max()) / scale < 0.01


def test_bfloat16_autocast_training_trains(tones: Path) -> None:
    from earmark import data
    from earmark.audio import AudioConfig
    from earmark.classifier import Classifier
    from earmark.training import TrainConfig

    cfg = TrainConfig(
        epochs=4, batch_size=8, device=DEVICE, mixed_precision=True, seed=0, augment="none"
    )
    clf = Classifier("cnn", audio=AudioConfig(duration=1.0), train=cfg)
    clf.fit(data.load(tones))
    losses = [h["train_loss"] for h in clf.history_]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]  # it learns, in bfloat16


def test_detection_on_the_gpu_finds_the_cpus_events(model, scene: Path, tmp_path: Path) -> None:
    from earmark.detection import Windowing
    from earmark.detection.events import EventRules
    from earmark.detection.run import detect

    gpu = copy.deepcopy(model).to(DEVICE)
    cpu = copy.deepcopy(model).to("cpu")
    windowing, rules = Windowing(window=1.0, hop=0.5), EventRules(threshold=0.5)
    a = detect(cpu, [scene], tmp_path / "cpu", windowing=windowing, rules=rules)
    b = detect(gpu, [scene], tmp_path / "gpu", windowing=windowing, rules=rules)
    assert len(a.events) >= 3
    assert [(e.label, e.start, e.end) for e in b.events] == [
        (e.label, e.start, e.end) for e in a.events
    ]
    np.testing.assert_allclose([e.score for e in b.events], [e.score for e in a.events], atol=1e-3)


def test_a_server_of_a_gpu_model_answers(model, tones: Path) -> None:
    from fastapi.testclient import TestClient

    from earmark.serve import ServeSettings, create_app

    gpu = copy.deepcopy(model).to(DEVICE)
    client = TestClient(create_app(gpu, ServeSettings(max_upload_bytes=200_000), name="gpu"))
    clip = tones / "mid" / "c03.wav"
    res = client.post("/v1/predict", files={"file": ("c.wav", clip.read_bytes(), "audio/wav")})
    assert res.status_code == 200, res.text
    want = model.predict_file(clip, top_k=3)
    assert res.json()["labels"] == want.labels
    assert res.json()["scores"][0] == pytest.approx(want.scores[0], abs=1e-3)


def test_the_aisfx_frontend_on_the_gpu_equals_the_cpus() -> None:
    from earmark.features import pretrained
    from earmark.features.pretrained import aisfx

    rng = np.random.default_rng(0)
    clips = np.stack(
        [
            tone(220.0 * (k + 1), 1.0, sr=aisfx.SAMPLE_RATE, amp=0.3)
            + 0.01 * rng.standard_normal(aisfx.SAMPLE_RATE).astype(np.float32)
            for k in range(3)
        ]
    ).astype(np.float32)
    cpu = pretrained.load("aisfx", device="cpu")(clips)
    gpu = pretrained.load("aisfx", device=DEVICE)(clips)
    assert gpu.shape == cpu.shape == (3, aisfx.DIM)
    # embeddings of a deep network: equal to float rounding through its layers (cuDNN picks
    # other convolution algorithms than the CPU)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3 * float(np.abs(cpu).max()))
