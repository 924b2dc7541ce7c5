"""A pretrained embedding network as a frozen feature frontend (``features=aisfx``...).

:class:`PretrainedFrontend` is what :func:`earmark.features.frontend.build_frontend` gives
for a pretrained kind: a torch module from waveforms ``[batch, channels, samples]`` (or
``[batch, samples]``) at the frontend's rate to one embedding vector per window,
``[batch, dim]``, whatever the window's length. It is frozen: its parameters never take
gradients and it stays in eval mode whatever ``train()`` is asked (batch norms keep their
pretrained statistics), so the Trainer can apply it per batch like the spectral frontends
while only the network after it learns.

Frontends with a torch runtime (``aisfx``) run as a submodule (so ``.to(device)`` moves
them and :mod:`earmark.onnx_export` can put them in a graph); the others (``birdnet``,
TFLite) run through the registry's embedder on numpy arrays. Either way the windows are
embedded in chunks of :attr:`PretrainedFrontend.chunk` (bounded memory: a window of aisfx
holds about 10 MB of activations).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import earmark.features.pretrained as pretrained
from earmark.errors import ParameterError

__all__ = ["PretrainedFrontend"]

#: Windows per forward pass on the CPU and on a GPU.
CPU_CHUNK, GPU_CHUNK = 32, 256


class PretrainedFrontend(nn.Module):
    """Frontend ``name`` of :mod:`earmark.features.pretrained`, frozen, for audio at its
    ``sample_rate``. Channels are averaged before embedding (the networks take mono)."""

    frozen = True  # the trainer never trains it (and may compute its output once)

    def __init__(self, name: str) -> None:
        super().__init__()
        meta = pretrained.info(name)
        self.name, self.dim, self.sample_rate = name, meta.dim, meta.sample_rate
        self.runtime = meta.runtime
        self.net: nn.Module | None = None
        self._embed = None
        if meta.runtime == "torch":
            self.net = pretrained.torch_module(name)
            self.net.requires_grad_(False)
        else:
            self._embed = pretrained.load(name)
        super().train(False)

    def train(self, mode: bool = True) -> PretrainedFrontend:
        """Stays in eval mode: the pretrained statistics are part of the frontend."""
        return super().train(False)

    @property
    def chunk(self) -> int:
        device = next(iter(self.net.parameters())).device if self.net is not None else None
        return GPU_CHUNK if device is not None and device.type == "cuda" else CPU_CHUNK

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.mean(dim=1)
        if x.ndim != 2:
            raise ParameterError(
                f"expected [batch, samples] or [batch, channels, samples], got {tuple(x.shape)}"
            )
        with torch.no_grad():
            if len(x) == 0:
                return x.new_zeros(0, self.dim)
            return torch.cat([self._run(part) for part in x.split(self.chunk)])

    def _run(self, x: Tensor) -> Tensor:
        if self.net is not None:
            return self.net(x.float()).float()
        out = self._embed(x.detach().float().cpu().numpy())
        return torch.as_tensor(out, dtype=torch.float32, device=x.device)

    def extra_repr(self) -> str:
        return f"{self.name}, dim={self.dim}, sample_rate={self.sample_rate}, frozen"
