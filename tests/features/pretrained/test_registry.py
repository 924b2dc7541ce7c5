"""The registry of pretrained frontends and the feature kind built on it: names, settings,
the frozen frontend module, the cache key, and frontends that are not installed."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import torch

from earmark.audio import AudioConfig
from earmark.errors import EarmarkError, ParameterError
from earmark.features import FEATURE_KINDS, FeatureConfig, pretrained
from earmark.features.frontend import build_frontend, extract
from earmark.features.pretrained.frontend import PretrainedFrontend


def test_the_registry_describes_each_frontend() -> None:
    assert pretrained.FRONTENDS == ("aisfx", "birdnet") and pretrained.DEFAULT == "aisfx"
    a = pretrained.info("aisfx")
    assert (a.sample_rate, a.dim, a.license, a.runtime) == (44_100, 512, "CC BY 4.0", "torch")
    assert a.window_seconds == pytest.approx(100 * 1024 / 44_100, abs=1e-3)
    assert "aisfx 0.1.2" in a.attribution and pretrained.aisfx.CHECKPOINT_SHA256 in a.weights
    b = pretrained.info("birdnet")
    assert (b.sample_rate, b.dim, b.runtime) == (48_000, 1024, "tflite")
    assert b.license == "CC BY-NC-SA 4.0"
    assert set(a.record()) == {
        *("name", "sample_rate", "window_seconds", "dim", "license", "attribution"),
        *("runtime", "weights"),
    }
    with pytest.raises(ParameterError, match="unknown pretrained frontend 'vggish'"):
        pretrained.info("vggish")


def test_frontends_are_feature_kinds_with_no_settings_of_their_own() -> None:
    assert {"aisfx", "birdnet"} <= set(FEATURE_KINDS)
    cfg = FeatureConfig(kind="aisfx", n_fft=1024, n_mels=40, hop_length=320)
    assert cfg.pretrained and cfg.to_dict() == {"kind": "aisfx"}
    assert cfg == FeatureConfig(kind="aisfx") == FeatureConfig.from_dict(cfg.to_dict())
    assert cfg.n_bins == 512 and FeatureConfig(kind="birdnet").n_bins == 1024
    assert not FeatureConfig(kind="logmel").pretrained


def test_the_frontend_is_frozen_and_takes_its_own_rate_only() -> None:
    frontend = build_frontend(FeatureConfig(kind="aisfx"), 44_100)
    assert isinstance(frontend, PretrainedFrontend) and frontend.frozen
    assert not any(p.requires_grad for p in frontend.parameters())
    frontend.train()  # stays in eval mode: its batch norms keep the pretrained statistics
    assert not any(m.training for m in frontend.modules())
    x = torch.zeros(2, 1, 22_050, requires_grad=True)
    out = frontend(x)
    assert out.shape == (2, 512) and out.grad_fn is None
    with pytest.raises(ParameterError, match="takes 44100 Hz audio, not 16000 Hz"):
        build_frontend(FeatureConfig(kind="aisfx"), 16_000)


def test_extract_gives_one_vector_per_clip() -> None:
    batch = np.zeros((3, 2, 11_025), dtype=np.float32)
    batch[1, :, ::50] = 0.5
    out = extract(batch, 44_100, FeatureConfig(kind="aisfx"))
    assert out.shape == (3, 512) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)  # silence is silence
    assert not np.allclose(out[0], out[1])


def test_the_cache_key_holds_the_weights_identity(monkeypatch) -> None:
    from earmark.features.table import _settings_key

    audio = AudioConfig(sample_rate=44_100, duration=1.0)
    key = _settings_key(audio, FeatureConfig(kind="aisfx"))
    assert "aisfx" in key and pretrained.aisfx.CHECKPOINT_SHA256 in key
    other = dataclasses.replace(pretrained.info("aisfx"), weights="aisfx 0.2.0 sha256:ff")
    monkeypatch.setitem(pretrained._INFO, "aisfx", lambda: other)
    assert _settings_key(audio, FeatureConfig(kind="aisfx")) != key
    assert _settings_key(audio, FeatureConfig(kind="logmel")) == f"{audio.key()}|" + (
        FeatureConfig(kind="logmel").key()
    )  # the other kinds' keys as before


@pytest.fixture
def no_birdnet(monkeypatch):
    """BirdNET's module (or what it imports) is not installed, whatever this machine has."""
    real = importlib.import_module

    def import_module(name: str, *args, **kwargs):
        if name == pretrained.info("birdnet").module:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", import_module)
    monkeypatch.setattr(pretrained, "_LOADED", {})


def test_a_frontend_not_installed_says_how_to_install_it(no_birdnet) -> None:
    assert not pretrained.available("birdnet") and pretrained.available("aisfx")
    for attempt in (
        lambda: pretrained.load("birdnet"),
        lambda: build_frontend(FeatureConfig(kind="birdnet"), 48_000),
    ):
        with pytest.raises(EarmarkError) as err:
            attempt()
        message = str(err.value)
        assert "\n" not in message and "pip install 'earmark[birdnet]'" in message
        assert "CC BY-NC-SA 4.0" in message
    with pytest.raises(ParameterError, match="runs on tflite, not torch"):
        pretrained.torch_module("birdnet")


def test_a_non_torch_frontend_runs_through_the_registrys_embedder(monkeypatch) -> None:
    """birdnet's path: the frontend module calls the registry's numpy embedder, batched."""
    calls = []

    def embedder(waves: np.ndarray) -> np.ndarray:
        assert waves.dtype == np.float32 and waves.ndim == 2
        calls.append(len(waves))
        return np.repeat(waves.mean(axis=1, keepdims=True), 1024, axis=1)

    monkeypatch.setattr(pretrained, "available", lambda name: True)
    monkeypatch.setitem(pretrained._LOADED, ("birdnet", "cpu"), embedder)
    frontend = build_frontend(FeatureConfig(kind="birdnet"), 48_000)
    x = torch.ones(40, 2, 4_800)
    out = frontend(x)
    assert out.shape == (40, 1024) and calls == [32, 8]  # chunks of CPU_CHUNK windows
    torch.testing.assert_close(out, torch.ones(40, 1024))
