"""A trained network as a scorer of feature arrays (what ``Classifier`` holds for neural
models), and the helpers to describe a network: parameters and multiply-adds."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from earmark.models import registry

__all__ = ["NeuralModel", "count_macs", "count_parameters", "fold_batch_norms"]


class NeuralModel:
    """Network ``name`` with ``params`` for ``n_classes`` classes, scoring features
    ``[n, channels, n_bins, frames]`` (or waveforms, for a network that takes them) in
    batches on ``device``. ``pretrained=False`` builds a network on pretrained weights
    without reading them (its own weights are loaded next, or its size is all that counts).
    ``multi_label``: the outputs are per-class sigmoids, not a softmax over the classes."""

    def __init__(
        self,
        name: str,
        params: dict[str, Any],
        n_classes: int,
        in_channels: int,
        *,
        n_bins: int = 40,
        device: str | torch.device = "cpu",
        pretrained: bool = True,
        multi_label: bool = False,
    ) -> None:
        spec = registry.get(name)
        params = {**spec.defaults, **params}
        if spec.needs_bins:
            params.setdefault("n_mels", n_bins)
        if spec.pretrained:
            params["pretrained"] = pretrained
        self.network: nn.Module = spec.build(n_classes, in_channels=in_channels, **params)
        self.device = torch.device(device)
        self.multi_label = multi_label
        self._fused: tuple[tuple, nn.Module] | None = None

    def inference_network(self) -> nn.Module:
        """The network in eval mode on ``device`` with every batch norm that directly follows
        a convolution folded into it (same outputs to float rounding, one pass less per
        block). Cached, and rebuilt when the weights change (torch bumps a tensor's version
        on every in-place write, ``load_state_dict`` included)."""
        net = self.network.to(self.device).eval()
        stamp = tuple(t._version for t in itertools.chain(net.parameters(), net.buffers()))
        stamp += (str(self.device),)
        if self._fused is None or self._fused[0] != stamp:
            self._fused = (stamp, fold_batch_norms(net))
        return self._fused[1]

    def predict_proba(self, X: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Softmax probabilities ``[n, classes]`` (multi-label: per-class sigmoids),
        ``batch_size`` examples at a time (the activations of a batch bound the memory:
        ~100 MB for ``cnn`` at 256)."""
        net = self.inference_network()
        activate = torch.sigmoid if self.multi_label else lambda z: torch.softmax(z, dim=-1)
        out = []
        with torch.inference_mode():
            for start in range(0, len(X), batch_size):
                x = torch.as_tensor(X[start : start + batch_size], dtype=torch.float32)
                out.append(activate(net(x.to(self.device))).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fold_batch_norms(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` where each ``BatchNorm`` that follows a ``Conv`` in an
    ``nn.Sequential`` is folded into the convolution's weights and bias (and replaced by an
    identity), and weight parametrizations (spectral or weight norm) are replaced by the
    weights they compute. The original is left untouched."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(network).eval()
    # Spectral / weight norm: swap in plain layers holding the weights they compute.
    # (torch's remove_parametrizations cannot be used on a deep copy: it edits the
    # parametrized class, which the copy shares with the original.)
    for name, m in list(fused.named_modules()):
        if parametrize.is_parametrized(m) and isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            parent, _, attr = name.rpartition(".")
            setattr(fused.get_submodule(parent), attr, _plain_layer(m))
    for seq in [m for m in fused.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            conv, norm = seq._modules[a], seq._modules[b]
            if (
                isinstance(conv, (nn.Conv1d, nn.Conv2d))
                and isinstance(norm, (nn.BatchNorm1d, nn.BatchNorm2d))
                and norm.track_running_stats
                and norm.num_features == conv.out_channels
            ):
                seq._modules[a] = fuse_conv_bn_eval(conv, norm)
                seq._modules[b] = nn.Identity()
    return fused


def _plain_layer(m: nn.Linear | nn.Conv1d | nn.Conv2d) -> nn.Module:
    """An unparametrized copy of a parametrized linear or convolution layer."""
    if isinstance(m, nn.Linear):
        plain: nn.Module = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    else:
        conv = nn.Conv2d if isinstance(m, nn.Conv2d) else nn.Conv1d
        plain = conv(
            m.in_channels,
            m.out_channels,
            m.kernel_size,
            stride=m.stride,
            padding=m.padding,
            dilation=m.dilation,
            groups=m.groups,
            bias=m.bias is not None,
            padding_mode=m.padding_mode,
        )
    with torch.no_grad():
        plain.weight.copy_(m.weight)
        if m.bias is not None:
            plain.bias.copy_(m.bias)
    return plain.to(m.weight.device).eval()


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of one forward pass on ``example`` (conv, linear and recurrent layers;
    element-wise work such as activations and norms is not counted)."""
    total = 0

    def conv(m: nn.Conv1d | nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        k = int(np.prod(m.kernel_size)) * (m.in_channels // m.groups)
        total += out.numel() * k

    def linear(m: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    def recurrent(m: nn.RNNBase, inp: Any, _out: Any) -> None:
        nonlocal total
        x = inp[0]
        steps = x.shape[1] * x.shape[0] if m.batch_first else x.shape[0] * x.shape[1]
        gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
        dirs = 2 if m.bidirectional else 1
        size = m.input_size
        for _ in range(m.num_layers):
            total += steps * dirs * gates * m.hidden_size * (size + m.hidden_size)
            size = m.hidden_size * dirs

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        elif isinstance(m, nn.RNNBase):
            hooks.append(m.register_forward_hook(recurrent))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        model(example)
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total // example.shape[0]
