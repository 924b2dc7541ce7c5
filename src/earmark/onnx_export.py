"""Export a trained network to ONNX: one graph from waveform to class probabilities.

The graph takes float32 ``[batch, channels, samples]`` at the model's sample rate and returns
``[batch, classes]`` probabilities; the log-mel (or STFT / MFCC) frontend is inside it, built
from operators every ONNX runtime has: the windowed DFT as a strided ``Conv`` (cosine and
sine kernels), squares, a ``MatMul`` by the mel filterbank, ``Log`` and the per-example
``top_db`` floor. A head on ``aisfx`` embeddings carries the whole embedding network
(:class:`AisfxDFT`) and its license record (``frontend``); a TFLite frontend (``birdnet``)
cannot be in a graph, and its models are refused. Batch norms are folded into the
convolutions first. The model's settings (labels, audio and feature settings, clip length,
pooling, metrics) travel inside the file, as the JSON value of the ONNX metadata key
``earmark``, so each exported file is self-contained: two exports into one folder, or an
export into a run directory, never share or overwrite a settings file. The file's SHA-256
travels inside it too (metadata key ``earmark_sha256``, computed over the file with that
value zeroed), so a modified file is refused when loaded.
:class:`earmark.onnx_model.OnnxClassifier` runs it with onnxruntime and no torch.

A network that takes waveforms (``waveform`` features: a fine-tuned pretrained network with
its own spectrogram inside) exports its ``onnx_form()``: the same computation in operators
ONNX has (``torch.stft`` on complex numbers has none).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from earmark.atomic import atomic_write
from earmark.errors import EarmarkError, ParameterError
from earmark.onnx_model import (
    CHECKSUM_KEY,
    EXPORT_VERSION,
    META_KEY,
    ZERO_DIGEST,
    checksum_field,
    read_onnx_meta,
)

__all__ = ["DFTFrontend", "export_onnx", "stamped"]

ONNX_OPSET = 17


class DFTFrontend(nn.Module):
    """The :class:`LogMel` / :class:`STFT` / :class:`MFCC` (without deltas) computation with a
    convolutional DFT instead of ``torch.fft``, so it exports to plain ONNX operators.
    Input ``[batch, channels, samples]``, output ``[batch, channels, bins, frames]``."""

    def __init__(self, frontend: nn.Module) -> None:
        super().__init__()
        from earmark.features.spectral import MFCC, STFT, LogMel

        self.kind = (
            "mfcc"
            if isinstance(frontend, MFCC)
            else ("logmel" if isinstance(frontend, LogMel) else "stft")
        )
        if self.kind not in ("mfcc", "logmel") and not isinstance(frontend, STFT):
            raise ParameterError(f"cannot export a {type(frontend).__name__} frontend")
        spec = frontend.logmel if isinstance(frontend, MFCC) else frontend
        if isinstance(frontend, MFCC) and (frontend.deltas or frontend.lifter):
            raise ParameterError("ONNX export supports MFCCs without deltas or lifter")
        if not spec.center or spec.pad_mode != "constant" or spec.power not in (1.0, 2.0):
            raise ParameterError("ONNX export needs centred frames, constant padding, power 1 or 2")
        n_fft = spec.n_fft
        bins = n_fft // 2 + 1
        self.register_buffer("kernel", _dft_kernel(spec.window, n_fft))  # [2 * bins, 1, n_fft]
        self.n_fft, self.hop, self.bins, self.power = n_fft, spec.hop_length, bins, spec.power
        mel = spec.mel_fb.clone() if self.kind != "stft" else None
        self.register_buffer("mel_fb", mel)
        if mel is not None:
            self.amin, self.ref, self.top_db = spec.amin, spec.ref, spec.top_db
        self.register_buffer("dct", frontend.dct.clone() if self.kind == "mfcc" else None)

    def forward(self, x: Tensor) -> Tensor:
        b, c, n = x.shape
        half = self.n_fft // 2
        y = nn.functional.pad(x.reshape(b * c, 1, n), (half, half))
        z = nn.functional.conv1d(y, self.kernel, stride=self.hop)  # [b*c, 2*bins, frames]
        re, im = z[:, : self.bins], z[:, self.bins :]
        S = re * re + im * im
        if self.power == 1.0:
            S = torch.sqrt(S)
        if self.mel_fb is None:
            return S.reshape(b, c, self.bins, -1)
        mel = torch.matmul(self.mel_fb, S).reshape(b, c, self.mel_fb.shape[0], -1)
        db = 10.0 * torch.log10(torch.clamp(mel, min=self.amin))
        db = db - 10.0 * float(np.log10(max(self.amin, self.ref)))
        if self.top_db is not None:
            peak = db.amax(dim=(1, 2, 3), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        if self.dct is not None:
            return torch.matmul(self.dct, db)
        return db


def _dft_kernel(window: Tensor, n_fft: int) -> Tensor:
    """Cosine and sine kernels ``[2 * bins, 1, n_fft]`` of a windowed DFT (the window
    centred in ``n_fft``), for ``conv1d`` with the hop as stride."""
    window = window.double()
    offset = (n_fft - window.numel()) // 2
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    placed = torch.zeros(n_fft, dtype=torch.float64)
    placed[offset : offset + window.numel()] = window
    angle = 2 * math.pi * k * n / n_fft
    return torch.cat([placed * torch.cos(angle), -placed * torch.sin(angle)]).float()[:, None, :]


class AisfxDFT(nn.Module):
    """The ``aisfx`` frontend (:class:`earmark.features.pretrained.aisfx.AisfxEmbedding`)
    in plain ONNX operators: its mel spectrogram's ``onnx_form()`` (the STFT as a strided
    convolution, the silence padding computed in the graph, so any input length gives what
    torch gives), then the embedding network: waveforms ``[batch, channels, samples]``
    (channels averaged) to ``[batch, 512]``."""

    def __init__(self, frontend: nn.Module) -> None:
        super().__init__()
        from earmark.features.pretrained import aisfx

        net = getattr(frontend, "net", None)
        if not isinstance(net, aisfx.AisfxEmbedding):
            raise ParameterError(f"cannot export a {type(frontend).__name__} frontend")
        self.mel = net.mel.onnx_form()
        self.backbone = net.backbone

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(self.mel(x.mean(dim=1)))


def _export_frontend(features: Any, sr: int) -> nn.Module:
    """The graph form of a model's frontend: :class:`DFTFrontend` for the spectral kinds,
    :class:`AisfxDFT` for ``aisfx``; a frontend that is not torch (``birdnet``: TFLite)
    cannot be part of an ONNX graph and is refused."""
    from earmark.features.frontend import build_frontend

    if features.pretrained:
        from earmark.features.pretrained import info

        meta = info(features.kind)
        if meta.runtime != "torch":
            raise ParameterError(
                f"cannot export a model on {features.kind} features to ONNX: the "
                f"{features.kind} frontend runs on {meta.runtime}, which an ONNX graph cannot "
                "hold (use the model directory instead)"
            )
        return AisfxDFT(build_frontend(features, sr)).eval()
    if features.kind not in ("stft", "logmel", "mfcc"):
        raise ParameterError(f"cannot export {features.kind} features to ONNX")
    return DFTFrontend(build_frontend(features, sr)).eval()


class _Exported(nn.Module):
    """Waveform to probabilities: DFT frontend, network (batch norms folded), softmax (or,
    ``multi_label``, a sigmoid per class)."""

    def __init__(self, frontend: nn.Module, network: nn.Module, multi_label: bool = False) -> None:
        super().__init__()
        self.frontend, self.network = frontend, network
        self.multi_label = multi_label

    def forward(self, waveform: Tensor) -> Tensor:
        logits = self.network(self.frontend(waveform))
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)


def export_onnx(
    model: Any, out: str | Path, *, overwrite: bool = False, frontend: bool = True
) -> Path:
    """Write ``model`` (a trained neural :class:`earmark.Classifier`) to ``out`` (``.onnx``),
    its settings inside the file; return the path. An existing ``out`` is replaced only
    when it is an earlier earmark export and ``overwrite`` is set.

    The graph's inputs: ``waveform`` float32 ``[batch, channels, samples]`` (batch and
    samples dynamic); output ``probabilities`` ``[batch, classes]`` (a multi-label model's:
    per-class sigmoids; ``multi_label`` and any calibrated ``thresholds`` travel in the
    settings).

    ``frontend=False`` (spectral features only) leaves the frontend out: the graph takes
    ``features`` ``[batch, channels, bins, frames]`` (frames dynamic), the spectrograms the
    torch frontend computes, and its settings say ``"input": "features"``. The ONNX runtime
    of ``detect`` scores the frames that overlapping windows share with it
    (:mod:`earmark.runtimes`); it is not a model to load on its own."""
    from earmark.models.neural import fold_batch_norms

    if getattr(model, "family", None) != "neural":
        raise ParameterError("ONNX export is for networks; classical models stay skops files")
    sr = model.audio.sample_rate
    if not frontend and model.features.kind not in ("stft", "logmel", "mfcc"):
        raise ParameterError(
            f"a graph without its frontend takes spectrograms, not {model.features.kind}"
        )
    if model.features.kind == "waveform":  # a network with its own spectrogram inside
        onnx_form = getattr(model.estimator_.network, "onnx_form", None)
        if not callable(onnx_form):
            raise ParameterError("cannot export waveform features to ONNX")
        front, network = nn.Identity(), onnx_form().cpu()
    else:
        front = _export_frontend(model.features, sr)  # refused before anything is written
        network = model.estimator_.network.cpu()
    out = Path(out)
    if out.suffix != ".onnx":
        raise ParameterError(f"{out}: the output name must end in .onnx")
    if out.exists() or out.is_symlink():
        if not out.is_file() or read_onnx_meta(out) is None:
            raise EarmarkError(f"{out} exists and is not an earmark export: not replacing it")
        if not overwrite:
            raise EarmarkError(f"{out} exists: pass overwrite (--overwrite) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    multi = bool(getattr(model, "multi_label_", False))
    n = model.audio.n_samples or sr
    example = torch.zeros(2, model.audio.channels, n)
    name, dynamic = "waveform", {0: "batch", 2: "samples"}
    if not frontend:
        with torch.no_grad():
            example = front(example)
        front, name, dynamic = nn.Identity(), "features", {0: "batch", 3: "frames"}
    wrapper = _Exported(front, fold_batch_norms(network), multi).eval()
    meta = {
        "family": "onnx",
        "model": model.model,
        "classes": model.classes_,
        "audio": model.audio.to_dict(),
        "features": model.features.to_dict(),
        "clip_seconds": model.clip_seconds_,
        "pooling": model.pooling,
        "metrics": model.metrics_,
        "inputs": {name: ["batch", *example.shape[1:-1], dynamic[example.ndim - 1]]},
        "outputs": {"probabilities": ["batch", len(model.classes_)]},
        "export_version": EXPORT_VERSION,
    }
    if not frontend:
        meta["input"] = "features"
    if multi:
        meta["multi_label"] = True
    if getattr(model, "thresholds_", None):
        meta["thresholds"] = dict(model.thresholds_)
    if model.features.pretrained:  # the embedding network is in the graph: its license too
        from earmark.features.pretrained import info

        meta["frontend"] = info(model.features.kind).record()

    def write(tmp: Path) -> None:
        # The TorchScript exporter: it handles this graph with dynamic batch and length and
        # needs no onnxscript; torch 2.9+ calls it legacy (the warnings say so, not a fault).
        import onnx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="Constant folding")
            _export(tmp)
        tmp.write_bytes(stamped(onnx.load(str(tmp)), meta, out))

    def _export(tmp: Path) -> None:
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=[name],
            output_names=["probabilities"],
            dynamic_axes={name: dynamic, "probabilities": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )

    return atomic_write(out, write)


def stamped(proto: Any, meta: dict[str, Any], where: str | Path) -> bytes:
    """The bytes of the ONNX model ``proto`` with earmark's settings ``meta`` inside it
    (metadata key ``earmark``) and its checksum: the file's SHA-256, computed with its own
    value zeroed, then written in place of the zeros (same length), which load recomputes
    the same way before parsing the file. ``where`` names the file in errors."""
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CHECKSUM_KEY, ZERO_DIGEST
    data = proto.SerializeToString()
    blank = checksum_field(ZERO_DIGEST)
    if data.count(blank) != 1:
        raise EarmarkError(f"{where}: cannot place the checksum in the exported graph")
    digest = hashlib.sha256(data).hexdigest()
    return data.replace(blank, checksum_field(digest))
