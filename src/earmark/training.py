"""The Trainer for neural networks: epochs, schedule, early stopping, checkpoints, resume.

One loop for every training objective: an :class:`Objective` (:class:`SupervisedObjective`,
single-label cross-entropy, by default; :class:`MultiLabelObjective`, binary cross-entropy
on sigmoid outputs, for multi-hot targets; the semi-supervised GAN in
:mod:`earmark.models.sgan.objective`) says what the loss is and which optimizers it needs;
the :class:`Trainer` owns the data path, the learning-rate schedule, autocast, gradient
clipping, the optimizer steps, early stopping and checkpoints.

Input path: every clip is decoded and standardized once into a :class:`WaveBank` (one tensor
in memory); each batch is cropped from it, augmented on the waveform, turned into log-mel by
the torch frontend on the training device, augmented on the spectrogram, optionally mixed up,
and fed to the network. No epoch after the first decodes audio again.

A frozen frontend (a pretrained embedding network: ``frozen = True``) runs without gradients
and in eval mode. Spectrogram augmentation does not apply to its embedding vectors (a
preset's is left out; one asked for by name is refused). When nothing changes a clip from one
epoch to the next (no waveform augmentation, no clip longer than the crop, the supervised
objective), each clip is embedded once before the first epoch (:class:`EmbeddingBank`) and
the epochs train on the stored vectors: seconds instead of a network pass per clip per epoch.

Repeatability: all randomness of epoch ``e`` comes from generators seeded with
``(seed, e)``, and a checkpoint (weights, optimizer states, the objective's state, history,
early-stopping state; safetensors + JSON, written atomically) is saved after every epoch, so
``resume`` continues exactly where an interrupted run stopped and ends with the same weights
on the CPU. Ctrl-C stops after the current batch and keeps the last checkpoint and the best
weights. Autocast is bfloat16, which needs no gradient scaling.

Several processes (``Trainer(nproc=N)``, or torchrun's): the same loop, behind the small
seam of :class:`earmark.ddp.Group` (a process alone is ``Group()``, on which every call is
the identity): each process takes its share of every batch from the shared epoch order, DDP
averages the gradients, rank 0 validates, decides for all and writes the checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from earmark.config import JsonConfig
from earmark.errors import EarmarkError, ParameterError

if TYPE_CHECKING:
    from earmark.ddp import Group

__all__ = [
    "CHECKPOINT_SCHEMA_VERSION",
    "Batch",
    "EmbeddingBank",
    "FitContext",
    "MultiLabelObjective",
    "Objective",
    "OptimizerSpec",
    "ParamGroup",
    "SupervisedObjective",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WaveBank",
    "augmented_features",
    "focal_loss",
    "load_optimizer",
    "optimizer_tensors",
    "parameter_groups",
    "predict_bank",
    "read_meta_checkpoint",
    "resolve_device",
    "soft_cross_entropy",
]


#: The version of a checkpoint's ``earmark.json`` this earmark writes (and the newest it reads).
CHECKPOINT_SCHEMA_VERSION = 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without one fails."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' asked for, but no CUDA GPU is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise ParameterError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Training settings. ``lr`` is the peak learning rate; ``patience`` epochs without a
    better validation ``monitor`` value stop training (0: never stop early); ``map`` (mean
    average precision) is reported by multi-label runs only.

    ``loss``: ``auto`` is cross-entropy on softmax outputs for single-label data and binary
    cross-entropy on sigmoid outputs for multi-label data; ``focal`` down-weights the
    examples the network already gets right by ``(1 - p_t) ** focal_gamma`` (Lin et al.
    2017), on either. ``class_weights``: single-label, the cross-entropy's class weights
    (inverse frequency); multi-label, binary cross-entropy's ``pos_weight`` per class
    (negatives / positives)."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup: float = 0.1  # fraction of all steps spent warming up (onecycle)
    patience: int = 10
    monitor: Literal["accuracy", "f1_macro", "map", "loss"] = "loss"
    keep: Literal["best", "last"] = "best"  # weights returned: best by the monitor, or last
    class_weights: bool = False
    balanced_sampling: bool = False
    grad_clip: float | None = 5.0
    label_smoothing: float = 0.0
    loss: Literal["auto", "focal"] = "auto"
    focal_gamma: float = 2.0
    mixed_precision: bool = True  # bfloat16 autocast on CUDA; ignored on the CPU
    device: str = "auto"
    augment: str | dict[str, Any] = "default"  # a preset name or a full spec (augment.from_spec)
    background: str | None = None  # folder of noise files for the strong and robust presets
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError(
                f"need epochs >= 1 and batch_size >= 1, got {self.epochs}, {self.batch_size}"
            )
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ParameterError(f"unknown schedule {self.schedule!r}")
        if self.monitor not in ("accuracy", "f1_macro", "map", "loss"):
            raise ParameterError(f"unknown monitor {self.monitor!r}")
        if self.loss not in ("auto", "focal"):
            raise ParameterError(f"loss must be auto or focal, got {self.loss!r}")
        if not 0 <= self.focal_gamma <= 10:
            raise ParameterError(f"focal_gamma must be in [0, 10], got {self.focal_gamma}")
        if self.keep not in ("best", "last"):
            raise ParameterError(f"keep must be best or last, got {self.keep!r}")
        from earmark.augment import check_spec

        check_spec(self.augment)

    def lr_factor(self, step: int, total: int) -> float:
        """Learning-rate multiplier at ``step`` of ``total`` (a pure function: resumable)."""
        if self.schedule == "constant" or total <= 1:
            return 1.0
        t = step / (total - 1)
        if self.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        if t < self.warmup:
            return 0.04 + 0.96 * t / self.warmup
        return 0.5 * (1 + math.cos(math.pi * (t - self.warmup) / (1 - self.warmup))) + 1e-3


class WaveBank:
    """Standardized waveforms of a data set in one padded tensor ``[n, channels, max_len]``
    with their true lengths, cropped per batch without copying the whole set."""

    def __init__(self, waves: list[np.ndarray], *, pad: str = "end") -> None:
        if not waves:
            raise EarmarkError("no audio to train on")
        if pad not in ("end", "both"):
            raise ParameterError(f"pad must be end or both, got {pad!r}")
        self.pad = pad  # where clips shorter than the crop sit: as AudioConfig.pad
        channels = waves[0].shape[0]
        self.lengths = torch.tensor([w.shape[1] for w in waves])
        self.data = torch.zeros(len(waves), channels, int(self.lengths.max()))
        for i, w in enumerate(waves):
            self.data[i, :, : w.shape[1]] = torch.from_numpy(w)

    @classmethod
    def from_manifest(
        cls,
        manifest: Any,
        audio: Any,
        classes: list[str],
        *,
        cache_dir: str | Path | None = None,
        workers: int = 4,
        on_file: Callable[[], None] | None = None,
    ) -> tuple[WaveBank | None, Tensor, list[tuple[str, str]]]:
        """Decode and standardize every file of ``manifest`` once, in threads, through an
        :class:`earmark.data.AudioDataset` (``audio`` with its length untouched; waveforms
        cached under ``cache_dir`` by file content). Returns the bank (``None`` if nothing
        could be read), the class ids of its clips, and the unreadable files with their
        errors. Class ids are a long tensor ``[n]``; a multi-label manifest's multi-hot
        targets a float tensor ``[n, classes]``."""
        from earmark.data.dataset import AudioDataset
        from earmark.errors import AudioError

        base = dataclasses.replace(audio, duration=None)
        dataset = AudioDataset(
            manifest, base, classes=classes, cache_dir=cache_dir, memory_cache=False
        )

        def one(i: int) -> tuple[np.ndarray | None, str | None]:
            try:
                return dataset.waveform(i), None
            except AudioError as exc:
                return None, str(exc)
            finally:
                if on_file is not None:
                    on_file()

        with ThreadPoolExecutor(max_workers=workers) as pool:
            decoded = list(pool.map(one, range(len(dataset))))
        kept = [i for i, (y, _) in enumerate(decoded) if y is not None]
        skipped = [(dataset.paths[i], e) for i, (_, e) in enumerate(decoded) if e is not None]
        bank = cls([decoded[i][0] for i in kept], pad=audio.pad) if kept else None
        targets = dataset.targets[kept]
        dtype = torch.float32 if targets.ndim == 2 else torch.long
        return bank, torch.as_tensor(targets, dtype=dtype), skipped

    @classmethod
    def concat(cls, banks: list[WaveBank]) -> WaveBank:
        """One bank holding the clips of ``banks`` in order (same channels and padding)."""
        out = cls.__new__(cls)
        out.pad = banks[0].pad
        length = max(b.data.shape[-1] for b in banks)
        out.data = torch.cat(
            [torch.nn.functional.pad(b.data, (0, length - b.data.shape[-1])) for b in banks]
        )
        out.lengths = torch.cat([b.lengths for b in banks])
        return out

    def __len__(self) -> int:
        return self.data.shape[0]

    def batch(
        self, idx: Tensor, n_samples: int, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Clips ``idx`` as ``[len(idx), channels, n_samples]``: a random window of longer
        clips when ``generator`` is given (training), else the centre; shorter clips are
        zero-padded at the end, or on both sides (centred) when the bank's ``pad`` is
        ``both``, as :func:`earmark.audio.fix_length` does at prediction time."""
        lengths = self.lengths[idx]
        spare = (lengths - n_samples).clamp_min(0)
        if generator is not None:
            start = (torch.rand(len(idx), generator=generator) * (spare + 1)).long()
        else:
            start = spare // 2
        if self.pad == "both" and bool((lengths < n_samples).any()):
            out = torch.zeros(len(idx), self.data.shape[1], n_samples)
            for k, (i, s, m) in enumerate(
                zip(idx.tolist(), start.tolist(), lengths.tolist(), strict=True)
            ):
                if m >= n_samples:
                    out[k] = self.data[i, :, s : s + n_samples]
                else:
                    at = (n_samples - m) // 2
                    out[k, :, at : at + m] = self.data[i, :, :m]
            return out
        if self.data.shape[-1] < n_samples:
            padded = torch.nn.functional.pad(self.data[idx], (0, n_samples - self.data.shape[-1]))
            return padded
        if int(spare.max()) == 0:
            return self.data[idx, :, :n_samples]
        out = torch.empty(len(idx), self.data.shape[1], n_samples)
        for k, (i, s) in enumerate(zip(idx.tolist(), start.tolist(), strict=True)):
            out[k] = self.data[i, :, s : s + n_samples]
        return out


class EmbeddingBank:
    """The output of a frozen frontend for every clip of a :class:`WaveBank`, computed once
    (centre crops of ``n_samples``, as :meth:`WaveBank.batch` cuts without a generator),
    standing in for the bank when nothing else varies between epochs."""

    def __init__(
        self, bank: WaveBank, frontend: nn.Module, n_samples: int, device: torch.device
    ) -> None:
        out = []
        with torch.no_grad():  # (not inference mode: the vectors feed training)
            for start in range(0, len(bank), 64):
                idx = torch.arange(start, min(start + 64, len(bank)))
                out.append(frontend(bank.batch(idx, n_samples).to(device)).float().cpu())
        self.data = torch.cat(out)
        self.lengths = bank.lengths

    def __len__(self) -> int:
        return self.data.shape[0]

    def batch(
        self, idx: Tensor, n_samples: int, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """The stored vectors of clips ``idx``. With ``generator`` it draws what
        :meth:`WaveBank.batch` draws for its crops (one number per clip, unused: no clip is
        longer than the crop), so a run's random stream is the same either way."""
        if generator is not None:
            torch.rand(len(idx), generator=generator)
        return self.data[idx]


def _frozen(frontend: nn.Module) -> bool:
    return bool(getattr(frontend, "frozen", False))


def _augmentation(cfg: TrainConfig, sample_rate: int, frontend: nn.Module) -> Any:
    """The run's augmentation pipeline; a frozen frontend is set to eval mode without
    gradients, and gets :func:`_embedding_augmentation`'s pipeline."""
    from earmark.augment import from_spec

    aug = from_spec(cfg.augment, sample_rate=sample_rate, background=cfg.background)
    if _frozen(frontend):
        frontend.requires_grad_(False).eval()
        aug = _embedding_augmentation(aug, cfg.augment, frontend)
    return aug


def _rank_seed(seed: int, epoch: int, rank: int, *, dropout: bool = False) -> int:
    """The seed of process ``rank``'s own random stream in ``epoch`` of a distributed run
    (its crops and augmentation; ``dropout``: torch's global generator), distinct from every
    other (seed, epoch, rank) and from the single-process streams."""
    words = [seed, epoch, rank, int(dropout), 0x0DD9]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 1)


def _embedding_augmentation(aug: Any, spec: str | dict[str, Any], frontend: nn.Module) -> Any:
    """``aug`` for a frozen embedding frontend: no spectrogram transforms (a preset's are
    left out; asked for by name, refused: masks of frequency bands and frames have no
    meaning on an embedding vector)."""
    if isinstance(spec, dict) and spec.get("spectrogram"):
        name = getattr(frontend, "name", "embedding")
        raise ParameterError(
            f"augment.spectrogram: spectrogram masks do not apply to {name} embeddings; "
            "remove them (waveform augmentation and mixup do apply)"
        )
    from earmark.augment import Augmentation, Compose

    return Augmentation(aug.waveform, Compose([]), aug.mixup)


@dataclass
class TrainResult:
    """What training produced: the best weights (by the validation monitor), the history of
    every epoch, and why it stopped (``completed``, ``early stopping``, ``interrupted``)."""

    best_state: dict[str, Tensor]
    history: list[dict[str, float]]
    stopped: str
    best_epoch: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def soft_cross_entropy(logits: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean cross-entropy of ``logits`` against soft ``targets`` (rows of class
    probabilities: one-hot, smoothed or mixed up), ``weight`` per class."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    per = -(targets * logp)
    if weight is not None:
        per = per * weight[None, :]
    return per.sum(dim=-1).mean()


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float,
    *,
    multi_label: bool,
    weight: Tensor | None = None,
) -> Tensor:
    """Focal loss (Lin et al. 2017): each term of the cross-entropy times ``(1 - p_t) **
    gamma``, so examples already well classified count less. ``multi_label``: per class on
    sigmoid outputs (``weight``: binary cross-entropy's ``pos_weight``), the mean over
    clips and classes; else on the softmax (``weight`` per class), the mean over clips.
    Written here: torch has no focal loss (torchvision's sigmoid one is not available on
    the CPU build), and it is a few lines over the losses torch has."""
    logits = logits.float()
    if multi_label:
        ce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=weight, reduction="none"
        )
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        return (ce * (1 - p_t).pow(gamma)).mean()
    logp = torch.log_softmax(logits, dim=-1)
    per = -(targets * logp) * (1 - logp.exp()).pow(gamma)
    if weight is not None:
        per = per * weight[None, :]
    return per.sum(dim=-1).mean()


def _state_to_cpu(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# -- the objective protocol -----------------------------------------------------------------


@dataclass(frozen=True)
class FitContext:
    """What an objective is told before the first step: the settings, where the run happens,
    the input path of a batch (``frontend`` and ``aug`` on ``device``, crops of
    ``n_samples``) and the labelled training data (``train``, its rows ``y_train``)."""

    config: TrainConfig
    device: torch.device
    frontend: nn.Module
    aug: Any  # an earmark.augment pipeline
    train: WaveBank
    y_train: Tensor
    n_classes: int
    n_samples: int
    sample_rate: int
    amp: bool  # bfloat16 autocast is on (CUDA and ``mixed_precision``)


@dataclass(frozen=True)
class ParamGroup:
    """A part of a network trained at ``lr_scale`` x its optimizer's learning rate (a
    pretrained backbone slower than the new head): one AdamW parameter group."""

    name: str
    params: list[nn.Parameter]
    lr_scale: float = 1.0


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer an objective asks for: AdamW over ``params`` at ``lr_scale`` x the
    scheduled learning rate, with ``betas`` and ``weight_decay`` (``None``: the config's).
    The trainer builds it, schedules it, clips its gradients, steps it and checkpoints it.

    ``groups`` (:meth:`grouped`) splits ``params`` into parameter groups, each at its own
    ``lr_scale`` on top of the optimizer's; the first group's rate is the one reported."""

    name: str
    params: list[nn.Parameter]
    lr_scale: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float | None = None
    groups: tuple[ParamGroup, ...] = ()

    def __post_init__(self) -> None:
        if self.groups:
            grouped = [id(p) for g in self.groups for p in g.params]
            if grouped != [id(p) for p in self.params]:
                raise ParameterError(
                    f"optimizer {self.name!r}: its groups do not hold exactly its parameters"
                )

    @classmethod
    def grouped(cls, name: str, groups: list[ParamGroup], **settings: Any) -> OptimizerSpec:
        """An optimizer over ``groups`` (their parameters in order), ``settings`` as above."""
        params = [p for g in groups for p in g.params]
        return cls(name, params, groups=tuple(groups), **settings)

    def parameter_groups(self) -> tuple[ParamGroup, ...]:
        """The groups, or one group of every parameter."""
        return self.groups or (ParamGroup(self.name, self.params),)


@dataclass(frozen=True)
class Batch:
    """One labelled training batch as an objective sees it: augmented ``features`` and
    ``targets`` (as :meth:`Objective.targets` made them, after mixup) on the device, its
    ``index`` in the epoch, the ``epoch`` (0-based), and the epoch's random stream
    ``generator`` (draw from it in a fixed order: that keeps runs repeatable and resumable)."""

    features: Tensor
    targets: Tensor
    index: int
    epoch: int
    generator: torch.Generator


@runtime_checkable
class Objective(Protocol):
    """What a :class:`Trainer` trains for. The trainer owns the loop: the data path (crops,
    augmentation, frontend, mixup), the learning-rate schedule, autocast, gradient clipping,
    the optimizer steps, validation bookkeeping, early stopping, checkpoints and resume. An
    objective says what the loss is and which optimizers it needs.

    Per run: :meth:`prepare` once, then :meth:`optimizers`. Per epoch: :meth:`epoch_order`,
    then for each of :meth:`steps_per_epoch` batches, :meth:`loss` once per optimizer, in the
    order :meth:`optimizers` listed them: the trainer steps that optimizer on the loss before
    asking for the next one (so a later loss sees the earlier update). The first optimizer's
    loss is the step's reported loss. After the epoch: :meth:`end_epoch`, then
    :meth:`validate` when there is validation data. :meth:`state_dict` goes into every
    checkpoint and comes back through :meth:`load_state_dict` on resume.
    """

    def prepare(self, model: nn.Module, context: FitContext) -> None:
        """Called once before the first epoch (and before a resumed checkpoint is loaded)."""

    def optimizers(self, model: nn.Module) -> list[OptimizerSpec]:
        """The optimizers to step, in step order; the first one trains ``model``."""

    def steps_per_epoch(self, n_train: int) -> int:
        """Batches per epoch with ``n_train`` labelled clips."""

    def epoch_order(self, y_train: Tensor, generator: torch.Generator, epoch: int) -> Tensor:
        """The labelled clips of one epoch, in order (batches are consecutive slices)."""

    def targets(self, y: Tensor) -> Tensor:
        """Float training targets for label rows ``y`` (before mixup)."""

    def loss(self, model: nn.Module, batch: Batch, optimizer: str) -> Tensor:
        """The loss that the optimizer named ``optimizer`` minimizes on ``batch`` (called
        under the trainer's autocast; the trainer back-propagates it into that optimizer's
        parameters only)."""

    def end_epoch(self, model: nn.Module, record: dict[str, float], epoch: int) -> None:
        """After each epoch's training, before validation; may add to ``record``."""

    def validate(self, model: nn.Module, bank: WaveBank, y: Tensor) -> dict[str, float]:
        """``valid_loss`` and ``valid_<metric>`` of ``model`` on ``bank`` with labels ``y``."""

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors beyond the model and the optimizers that a resumed run needs."""

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""


class SupervisedObjective:
    """Single-label classification: cross-entropy on one-hot targets (label smoothing, mixup
    and class weights from the config), one AdamW, an epoch a shuffled (or class-balanced)
    pass over the labelled clips; validated by accuracy, macro F1 and cross-entropy.

    After :meth:`prepare`: ``context`` (the :class:`FitContext`), ``counts`` (clips per
    class) and ``class_weight`` (``None`` unless ``class_weights``), which objectives built
    on this one may use."""

    def __init__(self) -> None:
        self.context: FitContext | None = None
        self.counts: Tensor | None = None
        self.class_weight: Tensor | None = None

    def _ctx(self) -> FitContext:
        if self.context is None:
            raise EarmarkError("the objective is not prepared: call prepare(model, context)")
        return self.context

    def prepare(self, model: nn.Module, context: FitContext) -> None:
        if context.y_train.ndim != 1:
            raise ParameterError(
                "multi-hot targets are multi-label: train them with MultiLabelObjective"
            )
        self.context, n_classes = context, context.n_classes
        self.counts = torch.bincount(context.y_train, minlength=n_classes).float()
        self.class_weight = None
        if context.config.class_weights:
            counts = self.counts
            self.class_weight = (counts.sum() / (n_classes * counts.clamp_min(1))).to(
                context.device
            )

    def optimizers(self, model: nn.Module) -> list[OptimizerSpec]:
        """One AdamW over the model; over its :func:`parameter_groups` when it has some."""
        groups = parameter_groups(model)
        if groups is not None:
            return [OptimizerSpec.grouped("model", groups)]
        return [OptimizerSpec("model", list(model.parameters()))]

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self._ctx().config.batch_size)

    def epoch_order(self, y_train: Tensor, generator: torch.Generator, epoch: int) -> Tensor:
        if self._ctx().config.balanced_sampling:
            if self.counts is None:
                raise ParameterError("balanced_sampling needs the class counts of prepare()")
            w = (1.0 / self.counts.clamp_min(1))[y_train]
            return torch.multinomial(w, len(y_train), replacement=True, generator=generator)
        return torch.randperm(len(y_train), generator=generator)

    def targets(self, y: Tensor) -> Tensor:
        ctx = self._ctx()
        targets = torch.nn.functional.one_hot(y, ctx.n_classes).float()
        smoothing = ctx.config.label_smoothing
        if smoothing:
            targets = targets * (1 - smoothing) + smoothing / ctx.n_classes
        return targets

    def loss(self, model: nn.Module, batch: Batch, optimizer: str) -> Tensor:
        cfg = self._ctx().config
        if cfg.loss == "focal":
            return focal_loss(
                model(batch.features),
                batch.targets,
                cfg.focal_gamma,
                multi_label=False,
                weight=self.class_weight,
            )
        return soft_cross_entropy(model(batch.features), batch.targets, self.class_weight)

    def end_epoch(self, model: nn.Module, record: dict[str, float], epoch: int) -> None:
        pass

    def validate(self, model: nn.Module, bank: WaveBank, y: Tensor) -> dict[str, float]:
        from earmark.evaluation import evaluate

        ctx = self._ctx()
        proba, loss = predict_bank(
            model, ctx.frontend, bank, y, ctx.n_samples, ctx.device, amp=ctx.amp
        )
        ev = evaluate(y.numpy(), proba, [str(i) for i in range(ctx.n_classes)])
        return {
            "valid_loss": loss,
            "valid_accuracy": ev.metrics["accuracy"],
            "valid_f1_macro": ev.metrics["f1_macro"],
        }

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        pass


class MultiLabelObjective(SupervisedObjective):
    """Multi-label classification: each class its own yes / no, so sigmoid outputs and binary
    cross-entropy on multi-hot targets (``y_train`` a float ``[n, classes]`` tensor; a row
    of zeros is a negative clip). Everything else is :class:`SupervisedObjective`'s: the
    optimizer, the epoch order, mixup (mixed multi-hot rows are soft targets, which binary
    cross-entropy takes as they are), checkpoints and resume.

    ``class_weights`` gives binary cross-entropy's ``pos_weight`` per class (negatives over
    positives in the training set); ``loss="focal"`` the focal loss on the sigmoid;
    ``label_smoothing`` pulls each target towards 0.5; ``balanced_sampling`` draws a clip
    with the weight of its rarest class (negative clips: as one more class). Validated by
    mean average precision (``valid_map``), macro F1 at 0.5 (``valid_f1_macro``), exact-match
    accuracy (``valid_accuracy``) and the binary cross-entropy (``valid_loss``)."""

    def prepare(self, model: nn.Module, context: FitContext) -> None:
        y = context.y_train
        if y.ndim != 2 or y.shape[1] != context.n_classes:
            raise ParameterError(
                f"multi-label training needs multi-hot targets [clips, {context.n_classes}], "
                f"got {list(y.shape)}"
            )
        self.context = context
        self.counts = y.float().sum(dim=0)
        self.class_weight = None
        if context.config.class_weights:
            negatives = len(y) - self.counts
            self.class_weight = (negatives / self.counts.clamp_min(1)).to(context.device)

    def epoch_order(self, y_train: Tensor, generator: torch.Generator, epoch: int) -> Tensor:
        if not self._ctx().config.balanced_sampling:
            return torch.randperm(len(y_train), generator=generator)
        if self.counts is None:
            raise ParameterError("balanced_sampling needs the class counts of prepare()")
        present = y_train > 0
        negatives = ~present.any(dim=1)
        w = (present.float() / self.counts.clamp_min(1)).max(dim=1).values
        w[negatives] = 1.0 / max(int(negatives.sum()), 1)
        return torch.multinomial(w, len(y_train), replacement=True, generator=generator)

    def targets(self, y: Tensor) -> Tensor:
        targets = y.float()
        smoothing = self._ctx().config.label_smoothing
        if smoothing:
            targets = targets * (1 - smoothing) + smoothing / 2
        return targets

    def loss(self, model: nn.Module, batch: Batch, optimizer: str) -> Tensor:
        cfg = self._ctx().config
        logits = model(batch.features).float()
        if cfg.loss == "focal":
            return focal_loss(
                logits, batch.targets, cfg.focal_gamma, multi_label=True, weight=self.class_weight
            )
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, batch.targets, pos_weight=self.class_weight
        )

    def validate(self, model: nn.Module, bank: WaveBank, y: Tensor) -> dict[str, float]:
        from earmark.evaluation import evaluate_multilabel

        ctx = self._ctx()
        proba, loss = predict_bank(
            model, ctx.frontend, bank, y, ctx.n_samples, ctx.device, amp=ctx.amp, multi_label=True
        )
        ev = evaluate_multilabel(y.numpy(), proba, [str(i) for i in range(ctx.n_classes)])
        return {
            "valid_loss": loss,
            "valid_accuracy": ev.metrics["accuracy"],
            "valid_f1_macro": ev.metrics["f1_macro"],
            "valid_map": ev.metrics["map"],
        }


class _Optimizers:
    """The optimizers of one run, built from an objective's specs: schedule, the step."""

    def __init__(self, specs: list[OptimizerSpec], config: TrainConfig) -> None:
        if not specs:
            raise ParameterError("an objective must ask for at least one optimizer")
        self.config, self.specs = config, specs
        self.opts = [
            torch.optim.AdamW(
                [
                    {"params": g.params, "lr": config.lr * s.lr_scale * g.lr_scale}
                    for g in s.parameter_groups()
                ],
                lr=config.lr * s.lr_scale,
                betas=s.betas,
                weight_decay=config.weight_decay if s.weight_decay is None else s.weight_decay,
            )
            for s in specs
        ]

    def set_lr(self, factor: float) -> None:
        for spec, opt in zip(self.specs, self.opts, strict=True):
            for group, g in zip(spec.parameter_groups(), opt.param_groups, strict=True):
                g["lr"] = self.config.lr * spec.lr_scale * group.lr_scale * factor

    def step(self, index: int, loss: Tensor) -> None:
        """Back-propagate ``loss`` into optimizer ``index``'s parameters (only), clip, step."""
        spec, opt = self.specs[index], self.opts[index]
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[p for p in spec.params if p.requires_grad])
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(spec.params, self.config.grad_clip)
        opt.step()


class Trainer:
    """Trains ``model`` on features from ``frontend`` for an :class:`Objective` (default:
    :class:`SupervisedObjective`, single-label cross-entropy); ``trainer.objective`` holds
    what the objective trained beside the model (the sgan's ``generator``).

    ``checkpoint_dir`` receives a checkpoint after every epoch; ``on_step(done, total, loss)``
    and ``on_epoch(record)`` report progress (the CLI draws them).

    ``nproc`` > 1 trains in that many processes with DistributedDataParallel (gloo on the
    CPU, NCCL with one GPU each); under torchrun the Trainer trains in torchrun's group.
    ``batch_size`` stays the global batch, each process taking its share; the supervised and
    multi-label objectives only. See :mod:`earmark.ddp`.

    A network may stage its own training: its ``start_epoch(epoch)`` (0-based), when it has
    one, is called at the start of every epoch right after ``model.train()`` (a pretrained
    backbone frozen for the first epochs: no gradients, batch norms in eval mode). It must
    depend on ``epoch`` alone, so a resumed run stages its epochs as the uninterrupted one
    did. Its ``parameter_groups()`` (see :func:`parameter_groups`) set the default
    objective's learning rate per part.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        objective: Objective | None = None,
        checkpoint_dir: str | Path | None = None,
        on_step: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        nproc: int = 1,
    ) -> None:
        from earmark.ddp import check_nproc

        self.config = config
        self.nproc = check_nproc(nproc, config.device)
        self.objective: Objective = objective if objective is not None else SupervisedObjective()
        self._default_objective = objective is None  # multi-hot targets switch it at fit
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.on_step = on_step
        self.on_epoch = on_epoch

    # -- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(
        self, model: nn.Module, optimizers: _Optimizers, best: dict, state: dict[str, Any]
    ) -> None:
        from safetensors.torch import save_file

        from earmark.artifact import write_artifact

        # the first optimizer as it always was (top-level slots), the others by name
        tensors, meta = optimizer_tensors(optimizers.opts[0])
        files: dict[str, Callable[[Path], Any]] = {
            "model.safetensors": lambda p: save_file(_state_to_cpu(model), p),
            "best.safetensors": lambda p: save_file(best, p),
            "optimizer.safetensors": lambda p: save_file(tensors, p),
        }
        others = {}
        for spec, opt in zip(optimizers.specs[1:], optimizers.opts[1:], strict=True):
            more, others[spec.name] = optimizer_tensors(opt)
            files[f"optimizer.{spec.name}.safetensors"] = lambda p, t=more: save_file(t, p)
        objective = {
            k: v.detach().to("cpu").contiguous() for k, v in self.objective.state_dict().items()
        }
        if objective:
            files["objective.safetensors"] = lambda p: save_file(objective, p)
        write_artifact(
            self.checkpoint_dir,
            {
                "schema_version": CHECKPOINT_SCHEMA_VERSION,
                "kind": "checkpoint",
                "state": state,
                **meta,
                "optimizers": others,
            },
            files,
        )

    def _load_checkpoint(
        self, model: nn.Module, optimizers: _Optimizers, device: torch.device
    ) -> tuple[dict, dict[str, Any]]:
        """Everything a checkpoint holds, checked before it is used: ``earmark.json`` against
        its schema and its files' checksums (:func:`read_meta_checkpoint`), then each
        safetensors file against what this run built (the model's tensors, each optimizer's
        parameters, the objective's state: the same names, shapes and types). Raises
        :class:`EarmarkError` (one line, ``cannot resume: ...``)."""
        from earmark.artifact import ArtifactError

        d = self.checkpoint_dir
        try:
            meta = read_meta_checkpoint(d)
        except (ArtifactError, OSError) as exc:
            raise EarmarkError(f"cannot resume: {exc}") from None
        names = [s.name for s in optimizers.specs[1:]]
        saved = meta.get("optimizers", {})
        if sorted(saved) != sorted(names):
            raise EarmarkError(
                f"cannot resume: {d} holds the optimizers {sorted(saved)} beside the model's; "
                f"this objective has {sorted(names)}"
            )
        if meta.get("slots") is None:
            raise EarmarkError(f"cannot resume: {d / 'earmark.json'}: no optimizer state (slots)")
        expected_objective = self.objective.state_dict()
        needed = ["model.safetensors", "best.safetensors", "optimizer.safetensors"]
        needed += [f"optimizer.{name}.safetensors" for name in names]
        if expected_objective:
            needed.append("objective.safetensors")
        for name in needed:
            if name not in meta["files"]:
                raise EarmarkError(f"cannot resume: {d / 'earmark.json'}: lists no {name}")
        shapes = model.state_dict()
        weights = _checkpoint_file(d / "model.safetensors", device, shapes, "the network")
        best = _checkpoint_file(d / "best.safetensors", torch.device("cpu"), shapes, "the network")
        model.load_state_dict(weights)
        records = [("optimizer.safetensors", meta)]
        records += [(f"optimizer.{name}.safetensors", saved[name]) for name in names]
        for (file, record), opt in zip(records, optimizers.opts, strict=True):
            tensors = _checkpoint_file(d / file, device)
            try:
                load_optimizer(opt, tensors, record)
            except ParameterError as exc:
                raise EarmarkError(
                    f"cannot resume: {d / file}: does not fit the optimizer ({exc})"
                ) from None
        objective = {}
        if "objective.safetensors" in meta["files"]:
            objective = _checkpoint_file(
                d / "objective.safetensors", device, expected_objective, "the objective's state"
            )
        self.objective.load_state_dict(objective)
        return best, meta["state"]

    # -- the loop ---------------------------------------------------------------------------

    def fit(
        self,
        model: nn.Module,
        frontend: nn.Module,
        train: WaveBank,
        y_train: Tensor,
        valid: WaveBank | None,
        y_valid: Tensor | None,
        *,
        n_classes: int,
        n_samples: int,
        sample_rate: int,
        resume: bool = False,
    ) -> TrainResult:
        """Train and return the best weights and the history (see :class:`TrainResult`).
        With ``nproc`` > 1, in that many new processes (:func:`earmark.ddp.spawn_fit`); under
        torchrun, in its group (:func:`earmark.ddp.current`); else here."""
        from earmark import ddp

        if self._default_objective and y_train.ndim == 2:
            self.objective = MultiLabelObjective()  # multi-hot targets: the multi-label default
        cfg, objective = self.config, self.objective
        group = ddp.current()
        if (self.nproc > 1 or group.world > 1) and not isinstance(objective, SupervisedObjective):
            # (the sgan steps a generator beside the network: a second optimizer DDP would
            # not keep in step across the processes)
            raise ParameterError(
                f"{type(objective).__name__} trains in one process; training in several "
                "processes (nproc, torchrun) takes the supervised and multi-label objectives"
            )
        device = group.device(resolve_device(cfg.device))
        if self.nproc == 1:
            model.to(device)  # (spawned processes copy the network from the CPU)
        frontend.to(device)
        aug = _augmentation(cfg, sample_rate, frontend)
        extra: dict[str, Any] = {}
        if _frozen(frontend):
            fixed = not len(aug.waveform) and bool((train.lengths <= n_samples).all())
            if fixed and type(objective) in (SupervisedObjective, MultiLabelObjective):
                # the same vector for a clip every epoch: embed each clip once
                t0 = time.perf_counter()
                train = EmbeddingBank(train, frontend, n_samples, device)
                if valid is not None and len(valid):
                    valid = EmbeddingBank(valid, frontend, n_samples, device)
                frontend = nn.Identity()
                extra["embedding_seconds"] = time.perf_counter() - t0
        inputs = {
            "model": model,
            "frontend": frontend,
            "aug": aug,
            "train": train,
            "y_train": y_train,
            "valid": valid,
            "y_valid": y_valid,
            "n_classes": n_classes,
            "n_samples": n_samples,
            "sample_rate": sample_rate,
            "resume": resume,
            "extra": extra,
        }
        if self.nproc > 1:
            frontend.to("cpu")  # each process moves it to its own device
            alone = copy.copy(self)  # what the processes get: the hooks stay here
            alone.on_step = alone.on_epoch = None
            alone._default_objective = False
            fields = ddp.spawn_fit(
                alone._run,
                self.nproc,
                inputs,
                device_type=device.type,
                on_step=self.on_step,
                on_epoch=self.on_epoch,
            )
            return TrainResult(**fields)
        return self._run(
            **inputs, device=device, group=group, on_step=self.on_step, on_epoch=self.on_epoch
        )

    def _run(
        self,
        model: nn.Module,
        frontend: nn.Module,
        aug: Any,
        train: WaveBank | EmbeddingBank,
        y_train: Tensor,
        valid: WaveBank | EmbeddingBank | None,
        y_valid: Tensor | None,
        *,
        n_classes: int,
        n_samples: int,
        sample_rate: int,
        resume: bool,
        device: torch.device,
        extra: dict[str, Any],
        group: Group,
        on_step: Callable[[int, int, float], None] | None,
        on_epoch: Callable[[dict[str, float]], None] | None,
    ) -> TrainResult:
        """The loop, in this process, as rank ``group.rank`` of ``group.world`` (on its own,
        ``Group()``: every group call is then the identity, and this is the loop a single
        process always ran). ``model`` and ``frontend`` are on ``device``; rank 0 calls the
        hooks."""
        cfg, objective = self.config, self.objective
        amp = cfg.mixed_precision and device.type == "cuda"
        context = FitContext(
            config=cfg,
            device=device,
            frontend=frontend,
            aug=aug,
            train=train,
            y_train=y_train,
            n_classes=n_classes,
            n_samples=n_samples,
            sample_rate=sample_rate,
            amp=amp,
        )
        objective.prepare(model, context)
        optimizers = _Optimizers(objective.optimizers(model), cfg)
        steps_per_epoch = objective.steps_per_epoch(len(train))
        total = steps_per_epoch * cfg.epochs
        history: list[dict[str, float]] = []
        best = _state_to_cpu(model)
        best_value, best_epoch, bad, start_epoch = -math.inf, 0, 0, 0
        if resume:
            if self.checkpoint_dir is None or not (self.checkpoint_dir / "earmark.json").is_file():
                raise EarmarkError(f"cannot resume: no checkpoint in {self.checkpoint_dir}")
            best, st = self._load_checkpoint(model, optimizers, device)
            history, best_value = st["history"], st["best_value"]
            best_epoch, bad, start_epoch = st["best_epoch"], st["bad_epochs"], st["epoch"] + 1
        net = group.wrap(model, device)  # DDP in a group: what the losses call
        stopped, t_start = "completed", time.perf_counter()
        try:
            for epoch in range(start_epoch, cfg.epochs):
                if cfg.patience and bad >= cfg.patience:
                    stopped = "early stopping"
                    break
                gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
                torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout
                order = objective.epoch_order(y_train, gen, epoch)
                if group.world > 1:  # the order is shared; each process's draws its own
                    gen = torch.Generator().manual_seed(_rank_seed(cfg.seed, epoch, group.rank))
                    torch.manual_seed(_rank_seed(cfg.seed, epoch, group.rank, dropout=True))
                model.train()
                start_epoch = getattr(model, "start_epoch", None)
                if callable(start_epoch):
                    start_epoch(epoch)
                frontend.eval()
                t0, losses, seen = time.perf_counter(), [], 0
                for b in range(steps_per_epoch):
                    step = epoch * steps_per_epoch + b
                    if group.stop_before(step):
                        raise KeyboardInterrupt
                    idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    seen += len(idx)
                    idx, share = group.shard(idx)
                    optimizers.set_lr(cfg.lr_factor(step, total))
                    feats = augmented_features(train, idx, n_samples, aug, frontend, device, gen)
                    targets = objective.targets(y_train[idx]).to(device)
                    if aug.mixup is not None:
                        feats, targets = aug.mixup.mix(feats, targets, gen)
                    batch = Batch(feats, targets, b, epoch, gen)
                    for i, spec in enumerate(optimizers.specs):
                        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                            loss = objective.loss(net, batch, spec.name)
                        optimizers.step(i, loss * share if share != 1.0 else loss)
                        if i == 0:
                            losses.append(float(loss.detach()) * share)
                    if on_step is not None and group.is_main:
                        on_step(step + 1, total, losses[-1])
                seconds = time.perf_counter() - t0
                losses = [v / group.world for v in group.sum(losses)]  # each batch's mean loss
                record = {
                    "epoch": epoch + 1,
                    "train_loss": float(np.mean(losses)),
                    "lr": optimizers.opts[0].param_groups[0]["lr"],
                    "seconds": seconds,
                    "clips_per_s": seen / seconds,
                }
                objective.end_epoch(model, record, epoch)
                value, problem = -record["train_loss"], None
                if group.is_main and valid is not None and y_valid is not None and len(valid):
                    record |= objective.validate(model, valid, y_valid)
                    key = f"valid_{cfg.monitor}"
                    if key not in record:
                        problem = (
                            f"monitor {cfg.monitor}: this run reports "
                            f"{', '.join(sorted(k for k in record if k.startswith('valid_')))}"
                        )
                    elif cfg.monitor == "loss":
                        value = -record["valid_loss"]
                    else:
                        value = record[key]
                # rank 0's record and verdict for all: early stopping decided alike everywhere
                record, value, problem = group.share((record, value, problem))
                if problem is not None:
                    raise ParameterError(problem)
                if value > best_value:
                    best_value, best_epoch, bad = value, epoch + 1, 0
                    best = _state_to_cpu(model)
                else:
                    bad += 1
                history.append(record)
                if self.checkpoint_dir is not None and group.is_main:
                    self._save_checkpoint(
                        model,
                        optimizers,
                        best,
                        {
                            "epoch": epoch,
                            "history": history,
                            "best_value": best_value,
                            "best_epoch": best_epoch,
                            "bad_epochs": bad,
                            "config": cfg.to_dict(),
                        },
                    )
                if on_epoch is not None and group.is_main:
                    on_epoch(record)
                group.barrier()  # the others wait for the checkpoint (and rank 0's hook)
        except KeyboardInterrupt:
            stopped = "interrupted"
        if cfg.keep == "last" and history:
            best, best_epoch = _state_to_cpu(model), len(history)
        seconds = time.perf_counter() - t_start
        return TrainResult(best, history, stopped, best_epoch, seconds, extra)


def augmented_features(
    bank: WaveBank,
    idx: Tensor,
    n_samples: int,
    aug: Any,
    frontend: nn.Module,
    device: torch.device,
    generator: torch.Generator,
) -> Tensor:
    """A training batch: clips ``idx`` of ``bank`` (random crops of ``n_samples``), waveform
    augmentation, the frontend on ``device``, spectrogram augmentation (none for a network
    that takes the waveforms themselves: the frontend is the identity, and a mask over a
    waveform's one "frequency bin" would silence the whole clip)."""
    x = aug.waveform(bank.batch(idx, n_samples, generator=generator), generator=generator)
    with torch.no_grad():
        feats = frontend(x.to(device, non_blocking=True))
    if isinstance(frontend, nn.Identity):
        return feats
    return aug.spectrogram(feats, generator=generator)


def parameter_groups(model: nn.Module) -> list[ParamGroup] | None:
    """``model.parameter_groups()`` when the network defines it (``None`` otherwise): its
    parts at their own learning-rate scales, which must hold each of its parameters exactly
    once (:class:`ParameterError` otherwise: a parameter left out would never train)."""
    method = getattr(model, "parameter_groups", None)
    if not callable(method):
        return None
    groups = list(method())
    held = [id(p) for g in groups for p in g.params]
    if len(held) != len(set(held)) or set(held) != {id(p) for p in model.parameters()}:
        raise ParameterError(
            f"{type(model).__name__}.parameter_groups() must hold each parameter exactly once"
        )
    return groups


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's state as safetensors-ready tensors plus the JSON that restores it."""
    opt_state = opt.state_dict()
    tensors, slots = {}, {}
    for pid, s in opt_state["state"].items():
        slots[str(pid)] = sorted(s)
        for name, value in s.items():
            tensors[f"{pid}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return tensors, {"param_groups": opt_state["param_groups"], "slots": slots}


def load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]
) -> None:
    """Restore what :func:`optimizer_tensors` saved (``meta``: its JSON half) into ``opt``,
    which the run's own settings built. Nothing in ``meta`` or ``tensors`` is taken on
    trust: the groups must hold ``opt``'s parameters, each slot tensor must have the shape
    and type of its parameter (``step``: a floating-point scalar), and no tensor may be
    missing or left over. The hyper-parameters stay ``opt``'s (a resumed run keeps its
    settings, so they are the saved ones; the learning rate is set before every step).
    Raises :class:`ParameterError` (one line) for state that does not fit."""
    groups = opt.state_dict()["param_groups"]
    saved, slots = meta.get("param_groups"), meta.get("slots")
    held = [g.get("params") if isinstance(g, dict) else None for g in saved or ()]
    if not isinstance(saved, list) or held != [g["params"] for g in groups]:
        raise ParameterError("its parameter groups are not those of this run's optimizer")
    if not isinstance(slots, dict):
        raise ParameterError("no state slots")
    params = [p for g in opt.param_groups for p in g["params"]]  # numbered as state_dict does
    state: dict[int, dict[str, Tensor]] = {}
    used = set()
    for pid, names in slots.items():
        if not str(pid).isdigit() or int(pid) >= len(params):
            raise ParameterError(f"state for parameter {pid}; the optimizer has {len(params)}")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ParameterError(f"the slots of parameter {pid} are not a list of names")
        p = params[int(pid)]
        slot = {}
        for name in names:
            key = f"{pid}.{name}"
            t = tensors.get(key)
            if t is None:
                raise ParameterError(f"no tensor {key!r}")
            if name == "step":
                if t.shape != () or not t.dtype.is_floating_point:
                    raise ParameterError(f"{key}: {_described(t)}, not a floating-point scalar")
                t = t.cpu()
            elif t.shape != p.shape or t.dtype != p.dtype:
                raise ParameterError(f"{key}: {_described(t)}, not {_described(p)}")
            slot[name] = t
            used.add(key)
        state[int(pid)] = slot
    extra = sorted(set(tensors) - used)
    if extra:
        raise ParameterError(f"a tensor no slot lists: {extra[0]!r}")
    opt.load_state_dict({"state": state, "param_groups": groups})


def read_meta_checkpoint(directory: Path) -> dict[str, Any]:
    """A checkpoint's ``earmark.json``, validated rather than trusted: its size and nesting
    before it is parsed, every field against its schema
    (:func:`earmark.artifact_schema.validate_checkpoint_meta`), then each file it lists (a
    plain name inside ``directory``, its size and SHA-256: :func:`earmark.artifact.check_files`).
    Raises :class:`~earmark.artifact.ArtifactError`, one line naming the file."""
    from earmark import artifact_schema as schema
    from earmark.artifact import META_FILE, ArtifactError, check_files, read_json

    directory = Path(directory)
    path = directory / META_FILE
    if not path.is_file():
        raise ArtifactError(f"{directory}: no checkpoint")
    meta = read_json(path)
    try:
        schema.validate_checkpoint_meta(meta, newest=CHECKPOINT_SCHEMA_VERSION)
    except schema.SchemaError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    check_files(directory, meta["files"])
    return meta


def predict_bank(
    model: nn.Module,
    frontend: nn.Module,
    bank: WaveBank,
    y: Tensor | None,
    n_samples: int,
    device: torch.device,
    *,
    batch_size: int = 256,
    amp: bool = False,
    multi_label: bool = False,
) -> tuple[np.ndarray, float]:
    """Class probabilities ``[n, classes]`` for every clip of ``bank`` (centre windows) and,
    when ``y`` is given, the mean cross-entropy. ``multi_label``: sigmoid scores, and the
    binary cross-entropy against multi-hot ``y`` (mean over clips and classes)."""
    model.eval()
    out, loss, n = [], 0.0, len(bank)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            feats = frontend(bank.batch(idx, n_samples).to(device))
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits = model(feats).float()
            if y is not None and multi_label:
                loss += float(
                    torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, y[idx].to(device).float(), reduction="sum"
                    )
                ) / max(logits.shape[1], 1)
            elif y is not None:
                loss += float(
                    torch.nn.functional.cross_entropy(logits, y[idx].to(device), reduction="sum")
                )
            activation = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
            out.append(activation.cpu().numpy())
    return np.concatenate(out), loss / max(n, 1)


def _described(t: Tensor) -> str:
    return f"{list(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def _checkpoint_file(
    path: Path,
    device: torch.device,
    expected: dict[str, Tensor] | None = None,
    what: str = "",
) -> dict[str, Tensor]:
    """The tensors of one safetensors file of a checkpoint (never pickle). With
    ``expected``, they must be exactly those tensors: the names and shapes its header
    announces are checked before anything is read (so nothing larger than what the run
    built is allocated), the types once read. Raises :class:`EarmarkError` (``cannot
    resume: PATH: ...``)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    def refuse(problem: str) -> EarmarkError:
        return EarmarkError(f"cannot resume: {path}: does not fit {what} ({problem})")

    try:
        if expected is not None:
            with safe_open(path, framework="pt") as f:
                names = set(f.keys())
                missing = sorted(set(expected) - names)
                extra = sorted(names - set(expected))
                if missing:
                    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                    raise refuse(f"no {missing[0]!r}{more}")
                if extra:
                    raise refuse(f"an unknown tensor {extra[0]!r}")
                for key, want in expected.items():
                    shape = list(f.get_slice(key).get_shape())
                    if shape != list(want.shape):
                        raise refuse(f"{key}: shape {shape}, not {list(want.shape)}")
        tensors = load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise EarmarkError(
            f"cannot resume: {path}: not a readable safetensors file ({first})"
        ) from None
    for key, want in (expected or {}).items():
        if tensors[key].dtype != want.dtype:
            raise refuse(f"{key}: {_described(tensors[key])}, not {_described(want)}")
    return tensors
