"""The semi-supervised GAN's losses (Salimans et al. 2016; Dai et al. 2017).

The discriminator has K outputs, one per real class. Its softmax gives the class;
``D(x) = Z / (Z + 1)`` with ``Z = sum(exp(logits))`` is the probability that ``x`` is real,
so the real-vs-fake loss is a binary cross-entropy on ``logsumexp(logits)`` and needs no extra
output. The generator learns by feature matching."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from earmark.models.sgan.nets import Discriminator, Generator
from earmark.models.sgan_config import GanSettings
from earmark.training import soft_cross_entropy

__all__ = ["class_entropy", "discriminator_loss", "feature_matching_loss", "real_fake_loss"]


def real_fake_loss(lse_real: Tensor, lse_fake: Tensor, *, real_label: float = 1.0) -> Tensor:
    """The discriminator's real-vs-fake loss from ``logsumexp(logits)`` of real and of
    generated inputs: ``-log D(real)`` (its target smoothed to ``real_label``, one-sided) plus
    ``-log(1 - D(fake))``, with ``D = sigmoid(logsumexp)``."""
    # -log D(x) = softplus(-lse); -log(1 - D(x)) = softplus(lse)
    real = (real_label * F.softplus(-lse_real) + (1 - real_label) * F.softplus(lse_real)).mean()
    return real + F.softplus(lse_fake).mean()


def class_entropy(logits: Tensor) -> Tensor:
    """Mean entropy of the class distributions ``softmax(logits)``: minimized on unlabelled
    clips, it asks for confident classes there (the conditional-entropy term of Dai et al.
    2017, "Good Semi-supervised Learning that Requires a Bad GAN")."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1).mean()


def discriminator_loss(
    model: Discriminator,
    generator: Generator | None,
    feats: Tensor,
    targets: Tensor,
    real: Tensor | None,
    z: Tensor | None,
    *,
    settings: GanSettings,
    weight: Tensor | None = None,
    scale: float = 1.0,
) -> tuple[Tensor, dict[str, Any]]:
    """The discriminator's loss: cross-entropy of labelled log-mel ``feats`` against soft
    ``targets`` (``weight``: per class), plus, when ``real`` (unlabelled log-mel) and ``z``
    (noise) are given, ``scale`` x ``unsupervised_weight`` x the unsupervised loss: the
    :func:`real_fake_loss` of ``real`` against ``G(z)`` plus ``entropy_weight`` x the
    :func:`class_entropy` of ``real``. Returns the loss and its parts (floats, and
    ``h_real``: the detached features of ``real`` for feature matching)."""
    sup = soft_cross_entropy(model(feats), targets, weight)
    parts: dict[str, Any] = {"sup_loss": float(sup.detach())}
    if real is None or z is None or generator is None:
        return sup, parts
    with torch.no_grad():
        fake = generator(z)
    h_real = model.features(real)
    logits_real = model.head(h_real).float()
    lse_real = torch.logsumexp(logits_real, dim=-1)
    lse_fake = torch.logsumexp(model(fake).float(), dim=-1)
    unsup = real_fake_loss(lse_real, lse_fake, real_label=settings.real_label)
    if settings.entropy_weight:
        entropy = class_entropy(logits_real)
        unsup = unsup + settings.entropy_weight * entropy
        parts["entropy"] = float(entropy.detach())
    parts |= {
        "unsup_loss": float(unsup.detach()),
        "d_real": float(torch.sigmoid(lse_real.detach()).mean()),
        "d_fake": float(torch.sigmoid(lse_fake.detach()).mean()),
        "h_real": h_real.detach(),
    }
    return sup + scale * settings.unsupervised_weight * unsup, parts


def feature_matching_loss(
    model: Discriminator, generator: Generator, h_real: Tensor, z: Tensor
) -> Tensor:
    """The generator's loss: squared distance between the mean discriminator features of
    real audio (``h_real``, detached) and of generated patches ``G(z)``."""
    h_fake = model.features(generator(z)).float()
    return (h_fake.mean(0) - h_real.float().mean(0)).pow(2).mean()
