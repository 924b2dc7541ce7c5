"""The aisfx embedding network: offline, documented shapes, the package's own network and
spectrogram recipe, a checkpoint that is not the release refused, a missing package named."""

from __future__ import annotations

import importlib.util
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from signals import tone

from earmark.errors import EarmarkError
from earmark.features import pretrained
from earmark.features.pretrained import aisfx

SR = aisfx.SAMPLE_RATE


def _clips(n: int, seconds: float, seed: int = 0) -> np.ndarray:
    """``n`` distinct clips at 44.1 kHz: a tone of its own pitch in a little noise."""
    rng = np.random.default_rng(seed)
    out = [
        tone(220.0 * (k + 1), seconds, sr=SR, amp=0.3)
        + 0.01 * rng.standard_normal(round(seconds * SR)).astype(np.float32)
        for k in range(n)
    ]
    return np.stack(out).astype(np.float32)


@pytest.fixture
def fresh_weights():
    """The checkpoint is read again (the state is cached per process)."""
    aisfx.load_backbone_state.cache_clear()
    yield
    aisfx.load_backbone_state.cache_clear()


@pytest.fixture(scope="module")
def network() -> aisfx.AisfxEmbedding:
    return aisfx.AisfxEmbedding()


def test_loads_and_embeds_with_the_network_disabled(monkeypatch, fresh_weights) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(pretrained, "_LOADED", {})
    embed = pretrained.load("aisfx")
    out = embed(_clips(1, 0.5))
    assert out.shape == (1, aisfx.DIM) and np.isfinite(out).all()


def test_shapes_and_dtype(network: aisfx.AisfxEmbedding) -> None:
    x = torch.from_numpy(_clips(2, 0.4))  # shorter than the network's 100 frames: padded
    with torch.inference_mode():
        mono = network(x)
        stereo = network(torch.stack([x, x], dim=1))  # [n, channels, samples]: averaged
        long = network(torch.from_numpy(_clips(1, 2.5)))  # longer than one block
    assert mono.shape == (2, 512) and mono.dtype == torch.float32
    assert long.shape == (1, 512)
    torch.testing.assert_close(stereo, mono)
    embed = pretrained.load("aisfx")  # the registry's numpy embedder
    out = embed(x.numpy())
    assert out.shape == (2, 512) and out.dtype == np.float32
    np.testing.assert_allclose(out, mono.numpy(), atol=1e-5)
    assert not np.allclose(out[0], out[1])  # different clips, different vectors


def test_batched_equals_one_by_one(network: aisfx.AisfxEmbedding) -> None:
    x = torch.from_numpy(_clips(3, 0.5, seed=1))
    with torch.inference_mode():
        batched = network(x)
        alone = torch.cat([network(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)


def _package_module(name: str):
    """A module of the installed aisfx package, loaded from its file alone (the package's
    ``__init__`` imports modules that need its pinned dependencies)."""
    root = Path(next(iter(importlib.util.find_spec("aisfx").submodule_search_locations)))
    spec = importlib.util.spec_from_file_location(f"_aisfx_{name}", root / "models" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_equals_the_packages_own_network(network: aisfx.AisfxEmbedding) -> None:
    cnn2d = _package_module("cnn2d")
    theirs = cnn2d.EmbeddingNet("max", 3, 1, 64)
    theirs.load_state_dict(aisfx.load_backbone_state())
    theirs.eval()
    with torch.inference_mode():
        spec = network.mel(torch.from_numpy(_clips(2, 1.0, seed=2)))  # [batch, frames, 96]
        ours = network.backbone(spec)
        reference = theirs(spec)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_the_mel_recipe_matches_librosa() -> None:
    import librosa

    y = _clips(1, 1.0, seed=3)[0]
    power = librosa.feature.melspectrogram(
        y=y.astype(np.float64),
        sr=SR,
        n_fft=aisfx.N_FFT,
        hop_length=aisfx.HOP,
        n_mels=aisfx.N_MELS,
        htk=True,
        norm=1.0,
        power=2,
        pad_mode="constant",
        fmin=0.0,
        fmax=SR / 2,
    )
    expected = np.log10(1e4 * power + 1) / aisfx.SPEC_MAX  # [mels, frames]
    with torch.inference_mode():
        ours = aisfx.AisfxMel(min_frames=0)(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == expected.T.shape
    np.testing.assert_allclose(ours, expected.T, atol=2e-5, rtol=1e-4)


def test_a_checkpoint_that_is_not_the_release_is_refused(
    tmp_path: Path, monkeypatch, fresh_weights
) -> None:
    package = tmp_path / "aisfx"
    (package / "models").mkdir(parents=True)
    tampered = package / "models" / "checkpoint.pth"
    shutil.copyfile(aisfx.checkpoint_path(), tampered)
    with tampered.open("r+b") as fh:  # one byte changed in the middle of the weights
        fh.seek(tampered.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(aisfx, "checkpoint_path", lambda: tampered)
    with pytest.raises(EarmarkError) as err:
        aisfx.AisfxEmbedding()
    message = str(err.value)
    assert "\n" not in message and str(tampered) in message
    assert "not the aisfx 0.1.2 checkpoint" in message and aisfx.INSTALL in message


def test_a_missing_package_names_its_install_command(monkeypatch) -> None:
    find_spec = importlib.util.find_spec

    def without_aisfx(name: str, *args, **kwargs):
        return None if name == "aisfx" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_aisfx)
    monkeypatch.setattr(pretrained, "_LOADED", {})
    assert not pretrained.available("aisfx") and not aisfx.available()
    for attempt in (lambda: pretrained.load("aisfx"), lambda: pretrained.torch_module("aisfx")):
        with pytest.raises(EarmarkError) as err:
            attempt()
        message = str(err.value)
        assert "\n" not in message
        assert "pip install --no-deps aisfx==0.1.2" in message and "CC BY 4.0" in message
