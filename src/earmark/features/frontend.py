"""From a :class:`FeatureConfig` to features: :func:`build_frontend` turns it into a torch
module (for the network kinds and the pretrained embedding frontends) and :func:`extract`
computes features for a batch of standardized clips, whatever the kind.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from earmark.errors import ParameterError
from earmark.features.config import FEATURE_KINDS, FeatureConfig
from earmark.features.spectral import MFCC, STFT, LogMel

__all__ = ["FEATURE_KINDS", "FeatureConfig", "build_frontend", "extract"]


def build_frontend(config: FeatureConfig, sr: int) -> nn.Module:
    """The torch module computing ``config``'s features from ``[..., samples]`` at ``sr`` Hz.

    ``waveform`` gives ``nn.Identity``; ``handcrafted`` has no torch form (use :func:`extract`).
    A pretrained kind gives its frozen network
    (:class:`~earmark.features.pretrained.frontend.PretrainedFrontend`, ``[batch, dim]``),
    which takes audio at its own rate only: ``sr`` must be that rate (audio settings made
    for these features take it, see :class:`earmark.Classifier`).
    """
    if config.pretrained:
        from earmark.features.pretrained import info
        from earmark.features.pretrained.frontend import PretrainedFrontend

        rate = info(config.kind).sample_rate
        if sr != rate:
            raise ParameterError(
                f"the {config.kind} frontend takes {rate} Hz audio, not {sr} Hz "
                f"(set the sample rate to {rate})"
            )
        return PretrainedFrontend(config.kind)
    common = dict(n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length)
    if config.kind == "waveform":
        return nn.Identity()
    if config.kind == "stft":
        return STFT(power=2.0, **common)
    mel = dict(n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, top_db=config.top_db)
    if config.kind == "logmel":
        return LogMel(sr, **common, **mel)
    if config.kind == "mfcc":
        return MFCC(sr, n_mfcc=config.n_mfcc, deltas=config.deltas, **common, **mel)
    raise ParameterError("handcrafted features are computed with numpy/librosa, not a torch module")


def extract(
    batch: np.ndarray | torch.Tensor,
    sr: int,
    config: FeatureConfig,
    *,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Features of standardized clips ``[batch, channels, samples]`` at ``sr`` Hz.

    Returns float32 ``[batch, channels, freq, frames]`` for stft / logmel / mfcc,
    ``[batch, channels, samples]`` for waveform, ``[batch, n_features]`` for handcrafted
    and ``[batch, dim]`` for a pretrained frontend (channels averaged first).
    """
    if config.kind == "handcrafted":
        x = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
        if x.ndim != 3:
            raise ParameterError(f"expected [batch, channels, samples], got shape {x.shape}")
        feats = config.handcrafted(sr)
        return np.stack([feats(clip) for clip in x]) if len(x) else np.zeros((0, len(feats.names)))
    x = torch.as_tensor(batch, dtype=torch.float32)
    if x.ndim != 3:
        raise ParameterError(f"expected [batch, channels, samples], got shape {tuple(x.shape)}")
    frontend = build_frontend(config, sr).to(device)
    with torch.inference_mode():
        return frontend(x.to(device)).float().cpu().numpy()
