"""The ``aisfx`` embedding network: a 9-layer CNN trained on sound-effect libraries.

aiSFX (Stevens, Hernandez-Olivan... "Cross-dataset training for sound effects", ISMIR 2022;
the ``aisfx`` 0.1.2 wheel on PyPI) embeds about 2.3 s of 44.1 kHz audio into 512 numbers:
96 HTK mel bands of a 2048-point STFT with a 1024-sample hop, compressed as
``log10(1e4 * power + 1)`` and scaled by the training set's maximum, then four blocks of two
3x3 convolutions with batch norm (64, 128, 256, 512 channels; 2x2 max pooling after the first
three), the mean over frequency and the maximum over time. The weights are CC BY 4.0 (the
wheel's LICENSE file): attribution is recorded in every artifact built on them.

Why the network is rebuilt here instead of imported: the package pins ``numpy==1.23`` and
``librosa==0.9.2`` (it is installed with ``pip install --no-deps``), computes its spectrogram
with Essentia (not installable here) or a librosa path that transposes time and frequency, and
its loader calls ``torch.load`` without ``weights_only``, which would run arbitrary pickled
code. earmark only reads the checkpoint's ``embedding_net.*`` tensors with
``torch.load(weights_only=True)`` (the numpy scalar types the file's dataset table holds are
allow-listed by name) after checking the file's SHA-256, and computes the Essentia
spectrogram's recipe in torch (so it runs batched, on the GPU, and exports to ONNX).

Windows: the network's time axis ends in a global maximum, so any window of at least
``MIN_FRAMES`` frames works; shorter windows are padded with silence frames (as the package
pads its 100-frame blocks), and a long window's embedding is close to the maximum of its
blocks' embeddings.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from earmark.errors import EarmarkError

__all__ = [
    "ATTRIBUTION",
    "DIM",
    "LICENSE",
    "PACKAGE",
    "SAMPLE_RATE",
    "WINDOW_SECONDS",
    "AisfxBackbone",
    "AisfxConvMel",
    "AisfxEmbedding",
    "AisfxMel",
    "available",
    "checkpoint_path",
    "load_backbone_state",
]

NAME = "aisfx"
PACKAGE = "aisfx"
VERSION = "0.1.2"
SAMPLE_RATE = 44_100
N_FFT, HOP, N_MELS = 2048, 1024, 96
BLOCK_FRAMES = 100  # the package embeds blocks of 100 frames (2.32 s)
MIN_FRAMES = BLOCK_FRAMES
WINDOW_SECONDS = BLOCK_FRAMES * HOP / SAMPLE_RATE
DIM = 512
SPEC_MAX = 9.457798957824707  # the package's "original" min-max scaling (min 0)
LICENSE = "CC BY 4.0"
ATTRIBUTION = (
    "aiSFX embedding network (ISMIR 2022 cross-dataset sound-effects model), weights from the "
    "aisfx 0.1.2 package, licensed CC BY 4.0"
)
CHECKPOINT_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
INSTALL = f"pip install --no-deps {PACKAGE}=={VERSION}"


def checkpoint_path() -> Path:
    """The checkpoint inside the installed ``aisfx`` package (found without importing it:
    its ``__init__`` imports modules that need its pinned dependencies)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EarmarkError(
            f"the aisfx frontend needs the {PACKAGE} package's weights: {INSTALL} "
            f"(weights {LICENSE})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise EarmarkError(f"{path} is missing: reinstall with {INSTALL}")
    return path


def available() -> bool:
    """Whether the weights are installed (nothing is loaded)."""
    try:
        checkpoint_path()
    except EarmarkError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def load_backbone_state() -> dict[str, Tensor]:
    """The backbone's tensors from the package's checkpoint, keyed as :class:`AisfxBackbone`
    names them, read with ``torch.load(weights_only=True)`` after checking the file's
    SHA-256 (a different file is refused, not trusted)."""
    path = checkpoint_path()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CHECKPOINT_SHA256:
        raise EarmarkError(
            f"{path} is not the aisfx {VERSION} checkpoint (SHA-256 {digest[:12]}...); "
            f"reinstall with {INSTALL}"
        )
    import io

    from numpy._core.multiarray import scalar

    # The checkpoint is (state_dict, {dataset: (np.int64 index, n_classes)}): the numpy
    # scalar reconstructor and dtypes are the only globals it needs (named as numpy 1 did).
    allowed = [
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        type(np.dtype(np.int64)),
    ]
    with torch.serialization.safe_globals(allowed):
        state, _datasets = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


class AisfxMel(nn.Module):
    """Waveforms ``[batch, samples]`` at 44.1 kHz to the network's input, ``[batch, frames,
    96]``: power spectrum of a 2048-point periodic-Hann STFT (centred, zero padded) every 1024
    samples, 96 HTK mel bands with unit-sum triangles (Essentia's ``MelBands`` with
    ``normalize='unit_sum'``, ``type='power'``), ``log10(1e4 * x + 1) / 9.4578``."""

    def __init__(self, min_frames: int = MIN_FRAMES) -> None:
        super().__init__()
        from earmark.features.spectral import mel_filterbank

        fb = mel_filterbank(
            sr=SAMPLE_RATE,
            n_fft=N_FFT,
            n_mels=N_MELS,
            fmin=0.0,
            fmax=SAMPLE_RATE / 2,
            htk=True,
            norm=None,
        ).astype(np.float64)
        fb = fb / np.maximum(fb.sum(axis=1, keepdims=True), 1e-12)
        self.register_buffer("mel_fb", torch.from_numpy(fb.astype(np.float32)))
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True))
        self.min_frames = min_frames

    def forward(self, y: Tensor) -> Tensor:
        spec = torch.stft(
            y.float(),
            N_FFT,
            HOP,
            N_FFT,
            self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # [batch, freq, frames]
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_fb, power)  # [batch, mels, frames]
        x = torch.log10(mel * 1e4 + 1.0) / SPEC_MAX
        x = x.transpose(1, 2)  # [batch, frames, mels]
        short = self.min_frames - x.shape[1]
        if short > 0:  # silence frames (0 after the compression), as the package pads blocks
            x = F.pad(x, (0, 0, 0, short))
        return x

    def onnx_form(self) -> AisfxConvMel:
        """The same computation in plain ONNX operators (``torch.stft`` on complex numbers
        does not export)."""
        return AisfxConvMel(self)


class AisfxConvMel(nn.Module):
    """:class:`AisfxMel` with the STFT as a strided convolution by cosine and sine kernels
    (the window folded in) and the silence padding computed in the graph, so that an
    exported model takes any length (the form used by every ONNX export of the network)."""

    def __init__(self, mel: AisfxMel) -> None:
        super().__init__()
        n = torch.arange(N_FFT, dtype=torch.float64)
        k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * n / N_FFT
        window = mel.window.double()
        kernel = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)])
        self.register_buffer("kernel", kernel.float()[:, None, :])  # [2 * bins, 1, n_fft]
        self.register_buffer("mel_fb", mel.mel_fb.clone())
        self.bins, self.min_frames = N_FFT // 2 + 1, mel.min_frames

    def forward(self, y: Tensor) -> Tensor:
        half = N_FFT // 2
        z = F.conv1d(F.pad(y[:, None, :], (half, half)), self.kernel, stride=HOP)
        power = z[:, : self.bins].square() + z[:, self.bins :].square()
        x = torch.log10(torch.matmul(self.mel_fb, power) * 1e4 + 1.0) / SPEC_MAX
        x = x.transpose(1, 2)  # [batch, frames, mels]
        # Silence frames up to min_frames without a branch on the length (the graph's
        # length is dynamic): append min_frames of them, keep max(frames, min_frames).
        # While tracing for export a size is a tensor, so the maximum is in the graph too.
        frames = x.shape[1]
        if isinstance(frames, Tensor):
            keep = torch.clamp(frames, min=self.min_frames)
        else:
            keep = max(frames, self.min_frames)
        silence = x.new_zeros(x.shape[0], self.min_frames, x.shape[2])
        return torch.cat([x, silence], dim=1)[:, :keep]


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor, pool: bool) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, 2) if pool else x


class AisfxBackbone(nn.Module):
    """The embedding network: ``[batch, frames, 96]`` to ``[batch, 512]`` (the package's
    ``EmbeddingNet('max', 3, 1, 64)``; parameter names match its checkpoint)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_block1 = _ConvBlock(1, 64)
        self.conv_block2 = _ConvBlock(64, 128)
        self.conv_block3 = _ConvBlock(128, 256)
        self.conv_block4 = _ConvBlock(256, 512)

    def forward(self, spec: Tensor) -> Tensor:
        x = spec.unsqueeze(1)  # [batch, 1, frames, mels]
        x = self.conv_block1(x, True)
        x = self.conv_block2(x, True)
        x = self.conv_block3(x, True)
        x = self.conv_block4(x, False)
        return x.mean(dim=3).amax(dim=2)

    @classmethod
    def pretrained(cls) -> AisfxBackbone:
        net = cls()
        net.load_state_dict(load_backbone_state())
        return net


class AisfxEmbedding(nn.Module):
    """Waveforms at 44.1 kHz, ``[batch, samples]`` or ``[batch, channels, samples]``
    (channels averaged), to embeddings ``[batch, 512]``: :class:`AisfxMel` then the
    pretrained :class:`AisfxBackbone`, in eval mode (batch norm uses its running
    statistics, so a window's embedding never depends on its batch)."""

    sample_rate = SAMPLE_RATE
    dim = DIM

    def __init__(self, *, pretrained: bool = True) -> None:
        super().__init__()
        self.mel = AisfxMel()
        self.backbone = AisfxBackbone.pretrained() if pretrained else AisfxBackbone()
        self.eval()

    def forward(self, y: Tensor) -> Tensor:
        if y.ndim == 3:
            y = y.mean(dim=1)
        return self.backbone(self.mel(y))
