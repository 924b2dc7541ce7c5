"""Settings of the semi-supervised GAN's adversarial game (no torch import: the model
registry lists them as ``sgan``'s defaults). The networks and the training objective are in
the package :mod:`earmark.models.sgan`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from earmark.errors import ParameterError

__all__ = ["GAN_DEFAULTS", "GanSettings"]


@dataclass(frozen=True)
class GanSettings:
    """The adversarial game's settings; a model's other params build the discriminator."""

    noise_dim: int = 64
    gen_width: int = 32
    unsupervised_weight: float = 1.0
    real_label: float = 0.9  # one-sided label smoothing of the real target
    g_lr_ratio: float = 1.0
    # weight of the class entropy of unlabelled clips, minimized (the conditional-entropy
    # term of Dai et al. 2017, "Good Semi-supervised Learning that Requires a Bad GAN")
    entropy_weight: float = 0.0
    # epochs over which the unsupervised weight ramps up from ~0 (exp(-5 (1 - t)^2), as in
    # Laine & Aila 2017), so the classifier first learns from the labels
    rampup_epochs: int = 40
    adversarial: bool = True
    sample_every: int = 5  # epochs between sample grids (0: never)
    collapse_ratio: float = 0.2  # generated/real diversity below this flags mode collapse

    def __post_init__(self) -> None:
        if not 0.5 < self.real_label <= 1.0:
            raise ParameterError(f"sgan: real_label must be in (0.5, 1], got {self.real_label}")
        if self.entropy_weight < 0:
            raise ParameterError(f"sgan: entropy_weight must be >= 0, got {self.entropy_weight}")
        if self.rampup_epochs < 0:
            raise ParameterError(f"sgan: rampup_epochs must be >= 0, got {self.rampup_epochs}")
        if self.noise_dim < 1 or self.gen_width < 4:
            raise ParameterError("sgan: noise_dim >= 1 and gen_width >= 4 needed")

    @classmethod
    def split(cls, params: dict[str, Any]) -> tuple[GanSettings, dict[str, Any]]:
        """(the GAN settings, the discriminator's own params) from a model's params."""
        gan = {k: params[k] for k in GAN_DEFAULTS if k in params}
        rest = {k: v for k, v in params.items() if k not in GAN_DEFAULTS}
        return cls(**gan), rest

    def unsupervised_scale(self, epoch: int) -> float:
        """The factor (0..1] on ``unsupervised_weight`` in ``epoch`` (0-based)."""
        if self.rampup_epochs <= 0:
            return 1.0
        t = min(1.0, (epoch + 1) / self.rampup_epochs)
        return math.exp(-5.0 * (1.0 - t) ** 2)


# Chosen on a validation part of the training split, never the test split. rampup_epochs,
# 10% labels, 60 epochs, seeds 0 and 1, gain over the supervised network on held-out
# training voices: 20 epochs +1.7, 40 epochs +2.5 points (no ramp-up: -5 on seed 0).
GAN_DEFAULTS: dict[str, Any] = dataclasses.asdict(GanSettings())
