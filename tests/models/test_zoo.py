"""Every network of the zoo: learns, takes any length, round-trips through safetensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from earmark.models import registry
from earmark.models.neural import NeuralModel, count_macs, count_parameters

# The spectrogram networks (aisfx-finetune takes waveforms: tests/models/test_finetune.py;
# the head takes embedding vectors: tests/models/test_head.py)
NETWORKS = [
    n
    for n in registry.names("neural")
    if not registry.get(n).feature_kinds and not registry.get(n).embedding_input
]


def test_the_zoo_is_registered() -> None:
    assert {"seed-cnn", "cnn"} <= set(NETWORKS)
    for name in NETWORKS:
        assert registry.get(name).default_features["kind"] == "logmel"
    for name in set(registry.names("neural")) - set(NETWORKS):
        spec = registry.get(name)
        assert spec.default_features["kind"] in spec.feature_kinds
    assert "head" in registry.names("neural") and "head" not in NETWORKS


@pytest.mark.parametrize("name", NETWORKS)
def test_one_training_step_reduces_the_loss(name: str) -> None:
    torch.manual_seed(0)
    net = NeuralModel(name, {}, 3, 1).network.train()
    x = torch.randn(8, 1, 40, 51)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("frames", [8, 51, 500])
def test_forward_shapes_for_short_and_long_inputs(name: str, frames: int) -> None:
    net = NeuralModel(name, {}, 7, 2).network.eval()
    with torch.inference_mode():
        assert net(torch.randn(3, 2, 40, frames)).shape == (3, 7)


@pytest.mark.parametrize("name", NETWORKS)
def test_save_load_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    a = NeuralModel(name, {}, 5, 1)
    a.network.train()
    a.network(torch.randn(4, 1, 40, 51))  # move batch-norm statistics off their defaults
    save_file({k: v.contiguous() for k, v in a.network.state_dict().items()}, tmp_path / "w.st")
    b = NeuralModel(name, {}, 5, 1)
    b.network.load_state_dict(load_file(tmp_path / "w.st"))
    x = torch.randn(2, 1, 40, 51).numpy()
    torch.testing.assert_close(
        torch.from_numpy(a.predict_proba(x)), torch.from_numpy(b.predict_proba(x))
    )


@pytest.mark.parametrize("name", NETWORKS)
def test_size_figures(name: str) -> None:
    net = NeuralModel(name, {}, 10, 1).network
    assert 1_000 < count_parameters(net) < 5_000_000
    assert count_macs(net, torch.randn(2, 1, 40, 51)) > count_parameters(net)


@pytest.mark.parametrize("name", NETWORKS)
def test_networks_follow_the_number_of_feature_bins(name: str) -> None:
    net = NeuralModel(name, {}, 4, 1, n_bins=24).network.eval()
    with torch.inference_mode():
        assert net(torch.randn(2, 1, 24, 30)).shape == (2, 4)


@pytest.mark.parametrize("pool", [(2, 2), (2, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("shape", [(3, 4, 40, 51), (2, 8, 7, 5), (1, 1, 1, 1)])
def test_max_pool_equals_torch_ceil_mode_pooling(pool: tuple[int, int], shape: tuple) -> None:
    from earmark.models.cnn import MaxPool

    x = torch.randn(shape)
    ref = torch.nn.functional.max_pool2d(x, pool, ceil_mode=True)
    with torch.inference_mode():
        assert torch.equal(MaxPool(pool)(x), ref)  # the strided maxima
    assert torch.equal(MaxPool(pool)(x.requires_grad_()), ref)  # training: torch's pooling


@pytest.mark.parametrize("name", registry.names("neural"))
def test_declared_hyper_parameters_are_exactly_the_networks_own(name: str) -> None:
    import inspect

    spec = registry.get(name)
    net = NeuralModel(name, dict(spec.defaults), 3, 1).network  # every declared name is taken
    own = set(inspect.signature(type(net).__init__).parameters)
    own -= {"self", "n_classes", "in_channels", "n_mels", "dim", "pretrained"}  # input sizes
    assert own <= {p.name for p in spec.params}  # and none of the network's is undeclared
    with pytest.raises(TypeError):
        NeuralModel(name, {"not_a_parameter": 1}, 3, 1)
