"""The semi-supervised GAN as an objective of the one :class:`earmark.training.Trainer`.

Two optimizers, stepped in turn on every batch: ``model`` (the discriminator: the labelled
loss plus the ramped-up unsupervised loss, :func:`discriminator_loss`) and then
``generator`` (feature matching against the just-updated discriminator). Both Adam with
beta1 = 0.5; the generator's learning rate is ``g_lr_ratio`` x the discriminator's, on the
same schedule.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from earmark.errors import ParameterError
from earmark.models.sgan.losses import discriminator_loss, feature_matching_loss
from earmark.models.sgan.nets import Discriminator, Generator
from earmark.models.sgan.samples import collapse_check, save_grid
from earmark.models.sgan_config import GanSettings
from earmark.training import (
    Batch,
    FitContext,
    OptimizerSpec,
    SupervisedObjective,
    WaveBank,
    augmented_features,
)

__all__ = ["SGANObjective"]

log = logging.getLogger(__name__)

_BETAS = (0.5, 0.999)


class SGANObjective:
    """The semi-supervised GAN objective (an :class:`earmark.training.Objective`).

    An epoch is one pass over the unlabelled pool (the unlabelled clips and the labelled ones
    without their labels, as in Salimans et al.); labelled batches are drawn alongside,
    cycling through the labelled clips as often as that takes. The labelled batches pass
    through the Trainer's usual path (augmentation, label smoothing, mixup, class weights:
    :class:`~earmark.training.SupervisedObjective` makes their targets, order and
    validation); unlabelled ones get the same waveform and spectrogram augmentation.

    After :meth:`prepare`, ``generator`` is the generator being trained (``None`` when
    ``adversarial`` is off: the supervised baseline on the same schedule). ``stats`` holds
    the loss parts of every step of the current epoch; :meth:`end_epoch` adds their means to
    the history, with the mode-collapse check, and draws sample grids into ``samples_dir``.
    """

    def __init__(
        self,
        gan: GanSettings,
        *,
        unlabelled: WaveBank | None = None,
        samples_dir: str | Path | None = None,
    ) -> None:
        self.gan = gan
        self.unlabelled = unlabelled
        self.samples_dir = Path(samples_dir) if samples_dir is not None else None
        self.labelled = SupervisedObjective()
        self.generator: Generator | None = None
        self.stats: dict[str, list[float]] = {}

    def prepare(self, model: nn.Module, context: FitContext) -> None:
        if not isinstance(model, Discriminator):
            raise ParameterError("the sgan objective needs the sgan discriminator")
        self.labelled.prepare(model, context)
        self.context = context
        cfg, device, frontend = context.config, context.device, context.frontend
        banks = [context.train] + ([self.unlabelled] if self.unlabelled is not None else [])
        self.pool = WaveBank.concat(banks) if len(banks) > 1 else banks[0]
        # Input statistics from (up to 512 evenly spaced) clips of the pool, centre crops.
        pick = torch.linspace(0, len(self.pool) - 1, min(512, len(self.pool))).long()
        with torch.no_grad():
            real = torch.cat(
                [
                    frontend(self.pool.batch(pick[i : i + 128], context.n_samples).to(device))
                    for i in range(0, len(pick), 128)
                ]
            )
        model.set_input_stats(real.mean(dim=(0, 3)), real.std(dim=(0, 3)))
        self._real_ref = ((real - model.mean) / model.std)[:128].cpu()
        self.stats = {}
        self._h_real: Tensor | None = None
        if not self.gan.adversarial:  # the supervised baseline: no generator at all
            self.generator = None
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed * 7919 + 1)
            gen = Generator(
                tuple(real.shape[1:]), noise_dim=self.gan.noise_dim, width=self.gan.gen_width
            )
        gen.mean.copy_(model.mean.expand_as(gen.mean))
        gen.std.copy_(model.std.expand_as(gen.std))
        self.generator = gen.to(device)
        self._fixed_noise = gen.noise(16, torch.Generator().manual_seed(cfg.seed + 4242))

    def optimizers(self, model: nn.Module) -> list[OptimizerSpec]:
        specs = [OptimizerSpec("model", list(model.parameters()), betas=_BETAS)]
        if self.generator is not None:
            specs.append(
                OptimizerSpec(
                    "generator",
                    list(self.generator.parameters()),
                    lr_scale=self.gan.g_lr_ratio,
                    betas=_BETAS,
                    weight_decay=0.0,
                )
            )
        return specs

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(len(self.pool) / self.context.config.batch_size)

    def epoch_order(self, y_train: Tensor, generator: torch.Generator, epoch: int) -> Tensor:
        need = self.steps_per_epoch(len(y_train)) * self.context.config.batch_size
        rounds = math.ceil(need / len(y_train))
        order = torch.cat(
            [self.labelled.epoch_order(y_train, generator, epoch) for _ in range(rounds)]
        )
        self._pool_order = torch.randperm(len(self.pool), generator=generator)
        self.stats = {}
        return order[:need]

    def targets(self, y: Tensor) -> Tensor:
        return self.labelled.targets(y)

    def _unlabelled_batch(self, batch: Batch) -> Tensor:
        # Always a full batch (wrapping around the pool): the generator's batch norm needs
        # more than one example, and a small last batch would make a noisy GAN step.
        ctx = self.context
        n = len(self._pool_order)
        bs = min(ctx.config.batch_size, n)
        idx = self._pool_order[(torch.arange(bs) + batch.index * bs) % n]
        return augmented_features(
            self.pool, idx, ctx.n_samples, ctx.aug, ctx.frontend, ctx.device, batch.generator
        )

    def loss(self, model: nn.Module, batch: Batch, optimizer: str) -> Tensor:
        s, G, device = self.gan, self.generator, self.context.device
        if optimizer == "model":
            real = z = None
            if G is not None:
                real = self._unlabelled_batch(batch)
                z = G.noise(max(2, len(real)), batch.generator).to(device)
            loss, parts = discriminator_loss(
                model,
                G,
                batch.features,
                batch.targets,
                real,
                z,
                settings=s,
                weight=self.labelled.class_weight,
                scale=s.unsupervised_scale(batch.epoch),
            )
            self._h_real = parts.pop("h_real", None)
            self._record(parts)
            return loss
        if optimizer == "generator" and G is not None and self._h_real is not None:
            z = G.noise(max(2, len(self._h_real)), batch.generator).to(device)
            g_loss = feature_matching_loss(model, G, self._h_real, z)
            self._h_real = None
            self._record({"g_loss": float(g_loss.detach())})
            return g_loss
        raise ParameterError(f"sgan: no loss for the optimizer {optimizer!r} at this point")

    def _record(self, parts: dict[str, float]) -> None:
        for k, v in parts.items():
            self.stats.setdefault(k, []).append(v)

    def end_epoch(self, model: nn.Module, record: dict[str, float], epoch: int) -> None:
        record |= {k: float(np.mean(v)) for k, v in self.stats.items()}
        record["clips_per_s"] *= 2 if self.gan.adversarial else 1  # labelled + unlabelled
        G, cfg = self.generator, self.context.config
        if G is None:
            return
        check = collapse_check(G, model, self._real_ref, seed=cfg.seed + epoch)
        record |= check
        if check["gen_diversity"] < self.gan.collapse_ratio:
            record["mode_collapse"] = 1.0
            log.warning(
                "sgan epoch %d: possible mode collapse: generated patches are %.2f as diverse "
                "as real ones (threshold %.2f) and fall in %.0f%% of the classes",
                epoch + 1,
                check["gen_diversity"],
                self.gan.collapse_ratio,
                100 * check["gen_class_coverage"],
            )
        every = self.gan.sample_every
        last = epoch + 1 == cfg.epochs
        if self.samples_dir is not None and every and ((epoch + 1) % every == 0 or last):
            with torch.no_grad():
                patches = G.eval()(self._fixed_noise.to(self.context.device)).cpu()
            G.train()
            save_grid(patches, self.samples_dir / f"epoch_{epoch + 1:03d}.png", epoch=epoch + 1)

    def validate(self, model: nn.Module, bank: WaveBank, y: Tensor) -> dict[str, float]:
        return self.labelled.validate(model, bank, y)

    def state_dict(self) -> dict[str, Tensor]:
        if self.generator is None:
            return {}
        return {f"generator.{k}": v for k, v in self.generator.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.generator is None:
            return
        prefix = "generator."
        self.generator.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
