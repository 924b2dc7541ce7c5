"""Fine-tuning a pretrained embedding network end to end: ``aisfx-finetune``.

The network takes waveforms at 44.1 kHz (``[batch, channels, samples]``, channels averaged)
and is the aisfx embedding network (:mod:`earmark.features.pretrained.aisfx`): its mel
frontend, its 9-layer CNN initialised from the pretrained weights, and a new head over the
512-d embedding (dropout and a linear layer, or an MLP with ``head_hidden`` units).

Transfer learning in two stages, through the one :class:`~earmark.training.Trainer`:

- for the first ``freeze_epochs`` epochs only the head trains: the backbone's parameters take
  no gradients (no backward pass through it, no optimizer updates, no weight decay) and its
  batch norms keep the pretrained statistics (eval mode), so the new head first learns to
  read the pretrained embedding instead of sending random gradients into it;
- then everything trains, the backbone at ``backbone_lr_scale`` x the scheduled learning
  rate (its own AdamW parameter group), so fine-tuning adapts the pretrained features
  without washing them out.

The stage is a pure function of the epoch (:meth:`AisfxFineTune.start_epoch`, called by the
trainer), so an interrupted run resumes to the same weights. A saved model holds all its
weights (backbone included) in its safetensors file: loading it never reads the aisfx
package. :meth:`AisfxFineTune.onnx_form` is the same computation in plain ONNX operators
(the STFT as a convolution), for ``earmark export``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from earmark.errors import ParameterError
from earmark.features.pretrained import aisfx
from earmark.features.pretrained.aisfx import AisfxBackbone, AisfxMel
from earmark.training import ParamGroup

__all__ = ["MIN_FRAMES", "AisfxFineTune"]

#: The fewest spectrogram frames the backbone takes: three 2x2 poolings leave one frame.
MIN_FRAMES = 8


class AisfxFineTune(nn.Module):
    """The aisfx network with a new head, for ``n_classes`` classes.

    Args:
        n_classes: classes of the head.
        in_channels: channels of the input waveforms (averaged: the network is mono).
        head_hidden: units of the head's hidden layer (0: a linear head).
        dropout: dropout probability before each of the head's layers.
        backbone_lr_scale: the backbone's learning rate as a multiple of the head's.
        freeze_epochs: epochs at the start during which the backbone does not train.
        min_frames: frames a shorter spectrogram is padded to with silence (the package
            pads to 100, 2.3 s; fewer keeps short clips cheap).
        pretrained: initialise the backbone from the aisfx package's weights (``False``:
            random weights, as a saved model is built before its own weights are loaded).
    """

    def __init__(
        self,
        n_classes: int,
        in_channels: int = 1,
        *,
        head_hidden: int = 0,
        dropout: float = 0.2,
        backbone_lr_scale: float = 0.1,
        freeze_epochs: int = 2,
        min_frames: int = MIN_FRAMES,
        pretrained: bool = True,
    ) -> None:
        super().__init__()
        if not (math.isfinite(backbone_lr_scale) and backbone_lr_scale >= 0):
            raise ParameterError(f"backbone_lr_scale must be >= 0, got {backbone_lr_scale}")
        if freeze_epochs < 0:
            raise ParameterError(f"freeze_epochs must be >= 0, got {freeze_epochs}")
        if min_frames < MIN_FRAMES:
            raise ParameterError(f"min_frames must be >= {MIN_FRAMES}, got {min_frames}")
        if head_hidden < 0:
            raise ParameterError(f"head_hidden must be >= 0, got {head_hidden}")
        self.in_channels = in_channels
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.freeze_epochs = int(freeze_epochs)
        self.mel = AisfxMel(min_frames)
        self.backbone = AisfxBackbone.pretrained() if pretrained else AisfxBackbone()
        if head_hidden:
            self.head: nn.Module = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(aisfx.DIM, head_hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(head_hidden, n_classes),
            )
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(aisfx.DIM, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[batch, n_classes]`` of waveforms ``[batch, channels, samples]``."""
        if x.ndim == 3:
            x = x.mean(dim=1)
        return self.head(self.backbone(self.mel(x)))

    # -- the training stages (hooks the Trainer calls) -------------------------------------

    def frozen(self, epoch: int) -> bool:
        """Whether the backbone is frozen in ``epoch`` (0-based)."""
        return epoch < self.freeze_epochs

    def start_epoch(self, epoch: int) -> None:
        """Stage ``epoch`` (after ``train()``): while frozen, the backbone's parameters take
        no gradients and its batch norms keep their statistics (eval mode)."""
        frozen = self.frozen(epoch)
        self.backbone.requires_grad_(not frozen)
        if frozen:
            self.backbone.eval()

    def parameter_groups(self) -> list[ParamGroup]:
        """The head at the run's learning rate, the backbone at ``backbone_lr_scale`` x it
        (the head first: its rate is the one the history reports)."""
        return [
            ParamGroup("head", list(self.head.parameters())),
            ParamGroup("backbone", list(self.backbone.parameters()), self.backbone_lr_scale),
        ]

    # -- export ---------------------------------------------------------------------------

    def onnx_form(self) -> nn.Module:
        """This network (its modules shared, not copied) with the mel spectrogram computed by
        plain ONNX operators: ``torch.stft`` on complex numbers does not export."""
        return _Exportable(self.mel.onnx_form(), self.backbone, self.head)


class _Exportable(nn.Module):
    def __init__(self, mel: nn.Module, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.mel, self.backbone, self.head = mel, backbone, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(self.mel(x.mean(dim=1))))
