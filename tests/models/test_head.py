"""The head on frozen embeddings: its shapes, its layers, and that it learns."""

from __future__ import annotations

import pytest
import torch

from earmark.models import registry
from earmark.models.head import EmbeddingHead
from earmark.models.neural import NeuralModel, count_parameters, fold_batch_norms


def test_the_head_is_registered_on_aisfx_embeddings() -> None:
    spec = registry.get("head")
    assert spec.family == "neural" and spec.embedding_input and spec.needs_bins
    assert spec.default_features == {"kind": "aisfx"} and spec.defaults == {
        "hidden": 256,
        "dropout": 0.2,
    }


@pytest.mark.parametrize(("hidden", "linears"), [(0, 1), (16, 2)])
def test_hidden_zero_is_a_linear_classifier(hidden: int, linears: int) -> None:
    net = NeuralModel("head", {"hidden": hidden}, 5, 2, n_bins=32).network.eval()
    assert sum(isinstance(m, torch.nn.Linear) for m in net.modules()) == linears
    with torch.inference_mode():
        assert net(torch.randn(3, 32)).shape == (3, 5)
        assert net(torch.randn(1, 32)).shape == (1, 5)  # a batch of one, as epochs can end


def test_the_head_learns_and_folds_for_inference() -> None:
    torch.manual_seed(0)
    net = EmbeddingHead(3, dim=24, hidden=8, dropout=0.0)
    x = torch.randn(12, 24)
    y = torch.arange(12) % 3
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2
    net.eval()
    with torch.inference_mode():
        torch.testing.assert_close(fold_batch_norms(net)(x), net(x))
    assert count_parameters(net) == 24 * 8 + 8 + 8 * 3 + 3


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="need dim >= 1"):
        EmbeddingHead(3, dim=0)
    with pytest.raises(ValueError, match="dropout"):
        EmbeddingHead(3, dim=8, dropout=1.0)
