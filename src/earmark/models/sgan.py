"""The semi-supervised GAN classifier (``sgan``): learn from a few labels and much unlabelled
audio.

As in Odena (2016) and Salimans et al. (2016, "Improved Techniques for Training GANs"), a
generator learns to produce log-mel patches of the training shape, and the discriminator has
K outputs, one per real class. Its softmax gives the class; ``D(x) = Z / (Z + 1)`` with
``Z = sum(exp(logits))`` is the probability that ``x`` is real, so the real-vs-fake loss is a
binary cross-entropy on ``logsumexp(logits)`` and needs no extra output. Losses per step:

* discriminator: cross-entropy on the labelled batch, plus ``unsupervised_weight`` x the GAN
  loss on an unlabelled batch (real) and a generated one (fake), with one-sided label
  smoothing (real target ``real_label`` < 1);
* generator: feature matching: the squared distance between the mean of the
  discriminator's penultimate features on real and on generated patches (Salimans et al.),
  which trains far more stably than fooling the discriminator outright.

Safeguards: spectral norm on every discriminator layer (Miyato et al. 2018), group norm
(each example normalized alone, so real and generated batches never share statistics) and
dropout in the discriminator, its input normalized per mel band with fixed statistics of
the training audio, one-sided label smoothing,
Adam with beta1 = 0.5 and a separate generator learning rate (``g_lr_ratio`` x the
discriminator's). After every epoch the generator's output is checked for mode collapse
(diversity of generated patches against real ones, and how many classes they fall in); a
collapse is flagged in the history and the log. Every ``sample_every`` epochs a grid of
generated patches (fixed noise, so the images show progress) goes to ``samples/``.

The saved artifact is the discriminator, an ordinary network over log-mel: predict, detect,
serve and ONNX export use it as any other model. The generator is kept beside it
(``generator.safetensors``) for :func:`sample` and ``earmark sgan-samples``.
``adversarial=False`` trains the same discriminator on the same schedule (steps per epoch
set by the whole pool) with the labelled loss alone and no generator: the supervised
baseline the benchmark compares against.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from earmark.errors import ParameterError
from earmark.models.cnn import MaxPool
from earmark.models.sgan_config import GAN_DEFAULTS, GanSettings
from earmark.training import (
    TrainConfig,
    Trainer,
    WaveBank,
    augmented_features,
    load_optimizer,
    optimizer_tensors,
)

__all__ = [
    "GAN_DEFAULTS",
    "Discriminator",
    "GanSettings",
    "Generator",
    "SGANTrainer",
    "collapse_check",
    "discriminator_loss",
    "feature_matching_loss",
    "load_generator",
    "sample",
]

log = logging.getLogger(__name__)

Norm = Literal["spectral", "weight", "none"]
GENERATOR_FILE = "generator.safetensors"  # beside the artifact and in checkpoints


def _normed(layer: nn.Module, norm: Norm) -> nn.Module:
    if norm == "spectral":
        return nn.utils.parametrizations.spectral_norm(layer)
    if norm == "weight":
        return nn.utils.parametrizations.weight_norm(layer)
    return layer


class Discriminator(nn.Module):
    """Four blocks of 3x3 convolution (spectral norm), group norm, 2x2 max pooling and leaky
    ReLU (dropout after the last three), global average pooling, and a linear layer to K
    class logits: the ``seed-cnn`` layout made fit for a GAN.

    No batch norm: it would mix the statistics of real and generated batches; group norm
    normalizes each example alone (without it, spectral-normed layers shrink the signal and
    the network barely learns: measured). The input is normalized per channel and mel band
    by fixed statistics (buffers, saved with the weights) that the trainer sets from the
    training audio before the first step. ``groups=0`` drops the group norms."""

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 1,
        n_mels: int = 40,
        width: int = 16,
        dropout: float = 0.1,
        norm: Norm = "spectral",
        groups: int = 4,
    ) -> None:
        super().__init__()
        if norm not in ("spectral", "weight", "none"):
            raise ParameterError(f"sgan: norm must be spectral, weight or none, got {norm!r}")
        self.register_buffer("mean", torch.zeros(1, in_channels, n_mels, 1))
        self.register_buffer("std", torch.ones(1, in_channels, n_mels, 1))
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            conv = nn.Conv2d(chans[i], chans[i + 1], 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(conv.bias)
            layers += [_normed(conv, norm)]
            if groups:
                layers.append(nn.GroupNorm(min(groups, chans[i + 1]), chans[i + 1]))
            layers += [MaxPool((2, 2)), nn.LeakyReLU(0.2, inplace=True)]
            if i >= 1 and dropout:
                layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.head = _normed(nn.Linear(chans[-1], n_classes), norm)

    def set_input_stats(self, mean: Tensor, std: Tensor) -> None:
        """Per channel and mel band (``[channels, n_mels]``), in dB."""
        with torch.no_grad():
            self.mean.copy_(mean.reshape(self.mean.shape))
            self.std.copy_(std.reshape(self.std.shape).clamp_min(1e-3))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[batch, 4 * width]`` (what feature matching compares)."""
        return self.body((x - self.mean) / self.std).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class Generator(nn.Module):
    """Noise ``[n, noise_dim]`` -> log-mel patches ``[n, channels, n_mels, frames]`` in dB.

    A linear layer to a quarter-resolution map, two (upsample, 3x3 conv, batch norm, ReLU)
    stages and a last convolution; the output is made in normalized units and mapped to dB
    with the discriminator's input statistics. Its batch norms always use the batch's own
    statistics (no running averages), so training and sampling behave alike."""

    def __init__(
        self, shape: tuple[int, int, int], *, noise_dim: int = 64, width: int = 64
    ) -> None:
        super().__init__()
        c, f, t = (int(v) for v in shape)
        self.shape, self.noise_dim, self.width = (c, f, t), int(noise_dim), int(width)
        self._f0, self._t0 = math.ceil(f / 4), math.ceil(t / 4)
        n = 2 * width * self._f0 * self._t0
        self.fc = nn.Sequential(
            nn.Linear(noise_dim, n), nn.BatchNorm1d(n, track_running_stats=False), nn.ReLU()
        )

        def stage(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout, track_running_stats=False),
                nn.ReLU(),
            ]

        self.body = nn.Sequential(
            *stage(2 * width, width), *stage(width, width // 2), nn.Conv2d(width // 2, c, 3, 1, 1)
        )
        self.register_buffer("mean", torch.zeros(1, c, f, 1))
        self.register_buffer("std", torch.ones(1, c, f, 1))

    def forward(self, z: Tensor) -> Tensor:
        _, f, t = self.shape
        h = self.fc(z).view(-1, 2 * self.width, self._f0, self._t0)
        return self.body(h)[..., :f, :t] * self.std + self.mean

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.noise_dim, generator=generator)

    def config(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "noise_dim": self.noise_dim, "width": self.width}


def build_discriminator(n_classes: int, **params: Any) -> Discriminator:
    """The registry's builder: the GAN settings among ``params`` are not the network's."""
    _, own = GanSettings.split(params)
    return Discriminator(n_classes, **own)


def _pairwise(x: Tensor) -> float:
    flat = x.flatten(1)
    d = torch.cdist(flat, flat)
    n = len(flat)
    return float(d.sum() / max(n * (n - 1), 1))


class SGANTrainer(Trainer):
    """:class:`earmark.training.Trainer` with the semi-supervised GAN objective.

    An epoch is one pass over the unlabelled pool (the unlabelled clips and the labelled ones
    without their labels, as in Salimans et al.); labelled batches are drawn alongside,
    cycling through the labelled clips as often as that takes. The labelled batches pass
    through the Trainer's usual path (augmentation, label smoothing, mixup, class weights);
    unlabelled ones get the same waveform and spectrogram augmentation.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        gan: GanSettings,
        unlabelled: WaveBank | None = None,
        samples_dir: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        on_step: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        super().__init__(config, checkpoint_dir=checkpoint_dir, on_step=on_step, on_epoch=on_epoch)
        self.gan = gan
        self.unlabelled = unlabelled
        self.samples_dir = Path(samples_dir) if samples_dir is not None else None
        self.generator: Generator | None = None

    # -- the Trainer's hooks -------------------------------------------------------------

    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.config
        return torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, betas=(0.5, 0.999), weight_decay=cfg.weight_decay
        )

    def _prepare(
        self, model: nn.Module, frontend: nn.Module, aug: Any, device: torch.device, **facts: Any
    ) -> None:
        super()._prepare(model, frontend, aug, device, **facts)
        if not isinstance(model, Discriminator):
            raise ParameterError("the sgan trainer needs the sgan discriminator")
        cfg = self.config
        self._aug, self._frontend, self._device = aug, frontend, device
        self._n_samples, self._n_classes = facts["n_samples"], facts["n_classes"]
        banks = [facts["train"]] + ([self.unlabelled] if self.unlabelled is not None else [])
        self._pool = WaveBank.concat(banks) if len(banks) > 1 else banks[0]
        # Input statistics from (up to 512 evenly spaced) clips of the pool, centre crops.
        pick = torch.linspace(0, len(self._pool) - 1, min(512, len(self._pool))).long()
        with torch.no_grad():
            real = torch.cat(
                [
                    frontend(self._pool.batch(pick[i : i + 128], self._n_samples).to(device))
                    for i in range(0, len(pick), 128)
                ]
            )
        model.set_input_stats(real.mean(dim=(0, 3)), real.std(dim=(0, 3)))
        self._real_ref = ((real - model.mean) / model.std)[:128].cpu()
        self._stats: dict[str, list[float]] = {}
        if not self.gan.adversarial:  # the supervised baseline: no generator at all
            self.generator, self._opt_g = None, None
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed * 7919 + 1)
            gen = Generator(
                tuple(real.shape[1:]), noise_dim=self.gan.noise_dim, width=self.gan.gen_width
            )
        gen.mean.copy_(model.mean.expand_as(gen.mean))
        gen.std.copy_(model.std.expand_as(gen.std))
        self.generator = gen.to(device)
        self._opt_g = torch.optim.AdamW(
            gen.parameters(),
            lr=cfg.lr * self.gan.g_lr_ratio,
            betas=(0.5, 0.999),
            weight_decay=0.0,
        )
        self._fixed_noise = gen.noise(16, torch.Generator().manual_seed(cfg.seed + 4242))

    def _steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(len(self._pool) / self.config.batch_size)

    def _epoch_order(self, y_train: Tensor, counts: Tensor, gen: torch.Generator) -> Tensor:
        need = self._steps_per_epoch(len(y_train)) * self.config.batch_size
        rounds = math.ceil(need / len(y_train))
        base = super()._epoch_order  # (zero-argument super() fails inside a comprehension)
        order = torch.cat([base(y_train, counts, gen) for _ in range(rounds)])
        self._pool_order = torch.randperm(len(self._pool), generator=gen)
        self._stats = {}
        return order[:need]

    def _set_lr(self, opt: torch.optim.Optimizer, factor: float) -> None:
        super()._set_lr(opt, factor)
        for g in self._opt_g.param_groups if self._opt_g is not None else ():
            g["lr"] = self.config.lr * self.gan.g_lr_ratio * factor

    def _unlabelled_batch(self, batch: int, gen: torch.Generator) -> Tensor:
        # Always a full batch (wrapping around the pool): the generator's batch norm needs
        # more than one example, and a small last batch would make a noisy GAN step.
        n = len(self._pool_order)
        bs = min(self.config.batch_size, n)
        idx = self._pool_order[(torch.arange(bs) + batch * bs) % n]
        return augmented_features(
            self._pool, idx, self._n_samples, self._aug, self._frontend, self._device, gen
        )

    def _train_step(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        feats: Tensor,
        targets: Tensor,
        *,
        batch: int,
        amp: bool,
        generator: torch.Generator,
    ) -> float:
        cfg, s, G = self.config, self.gan, self.generator
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            real = self._unlabelled_batch(batch, generator) if s.adversarial else None
            z = G.noise(max(2, len(real)), generator).to(self._device) if s.adversarial else None
            loss, parts = discriminator_loss(
                model,
                G,
                feats,
                targets,
                real,
                z,
                settings=s,
                weight=self._weight,
                scale=s.unsupervised_scale(self.epoch),
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if s.adversarial:
            z = G.noise(max(2, len(real)), generator).to(self._device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                g_loss = feature_matching_loss(model, G, parts.pop("h_real"), z)
            self._opt_g.zero_grad(set_to_none=True)
            g_loss.backward(inputs=list(G.parameters()))
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(G.parameters(), cfg.grad_clip)
            self._opt_g.step()
            parts["g_loss"] = float(g_loss.detach())
        for k, v in parts.items():
            self._stats.setdefault(k, []).append(v)
        return float(loss.detach())

    def _end_epoch(self, model: nn.Module, record: dict[str, float], epoch: int) -> None:
        record |= {k: float(np.mean(v)) for k, v in self._stats.items()}
        record["clips_per_s"] *= 2 if self.gan.adversarial else 1  # labelled + unlabelled
        if not self.gan.adversarial:
            return
        G = self.generator
        check = collapse_check(G, model, self._real_ref, seed=self.config.seed + epoch)
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
        last = epoch + 1 == self.config.epochs
        if self.samples_dir is not None and every and ((epoch + 1) % every == 0 or last):
            with torch.no_grad():
                patches = G.eval()(self._fixed_noise.to(self._device)).cpu()
            G.train()
            save_grid(patches, self.samples_dir / f"epoch_{epoch + 1:03d}.png", epoch=epoch + 1)

    def _checkpoint_extra(self) -> tuple[dict[str, Any], dict[str, Callable[[Path], Any]]]:
        from safetensors.torch import save_file

        if self.generator is None:
            return {}, {}
        tensors, meta = optimizer_tensors(self._opt_g)
        state = {k: v.detach().cpu().contiguous() for k, v in self.generator.state_dict().items()}
        files = {
            GENERATOR_FILE: lambda p: save_file(state, p),
            "generator_optimizer.safetensors": lambda p: save_file(tensors, p),
        }
        return {"generator_optimizer": meta}, files

    def _restore_extra(self, directory: Path, meta: dict[str, Any], device: torch.device) -> None:
        from safetensors.torch import load_file

        if self.generator is None:
            return
        self.generator.load_state_dict(load_file(directory / GENERATOR_FILE, device=str(device)))
        tensors = load_file(directory / "generator_optimizer.safetensors", device=str(device))
        load_optimizer(self._opt_g, tensors, meta["generator_optimizer"])


def discriminator_loss(
    model: Discriminator,
    generator: Generator,
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
    real-vs-fake loss with ``D(x) = sigmoid(logsumexp(logits))``, ``-log D(real)`` (smoothed
    to ``real_label``) and ``-log(1 - D(G(z)))``, plus ``entropy_weight`` x the class entropy
    of ``real``. Returns the loss and its parts (floats, and ``h_real``: the detached
    features of ``real`` for feature matching)."""
    from earmark.training import _soft_cross_entropy

    sup = _soft_cross_entropy(model(feats), targets, weight)
    parts: dict[str, Any] = {"sup_loss": float(sup.detach())}
    if real is None or z is None:
        return sup, parts
    with torch.no_grad():
        fake = generator(z)
    h_real = model.features(real)
    logits_real = model.head(h_real).float()
    lse_real = torch.logsumexp(logits_real, dim=-1)
    lse_fake = torch.logsumexp(model(fake).float(), dim=-1)
    # -log D(x) = softplus(-lse); -log(1 - D(x)) = softplus(lse)
    smooth = settings.real_label
    unsup = (smooth * F.softplus(-lse_real) + (1 - smooth) * F.softplus(lse_real)).mean()
    unsup = unsup + F.softplus(lse_fake).mean()
    if settings.entropy_weight:
        logp = F.log_softmax(logits_real, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean()
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


def collapse_check(
    generator: Generator, discriminator: Discriminator, real: Tensor, *, seed: int = 0
) -> dict[str, float]:
    """Mode-collapse indicators for ``generator``: ``gen_diversity``, the mean pairwise
    distance of generated patches over that of the ``real`` ones (both in the
    discriminator's normalized units; near 0: the generator makes one patch), and
    ``gen_class_coverage``, the fraction of classes the discriminator puts them in."""
    device = next(generator.parameters()).device
    n = len(real)
    was = discriminator.training
    discriminator.eval()
    with torch.no_grad():
        z = generator.noise(n, torch.Generator().manual_seed(seed)).to(device)
        fake = generator(z)
        norm = ((fake - discriminator.mean) / discriminator.std).cpu()
        classes = discriminator(fake).argmax(dim=-1).unique().numel()
        n_classes = discriminator.head.out_features
    discriminator.train(was)
    return {
        "gen_diversity": _pairwise(norm) / max(_pairwise(real), 1e-12),
        "gen_class_coverage": classes / n_classes,
    }


def save_grid(patches: Tensor, path: Path, *, epoch: int | None = None) -> Path:
    """Draw log-mel ``patches`` ``[n, channels, n_mels, frames]`` (first channel) as a grid
    PNG at ``path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from earmark.atomic import atomic_write

    x = patches[:, 0].numpy()
    n = len(x)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.4 * rows), squeeze=False)
    lo, hi = np.percentile(x, [1, 99])
    for ax, patch in zip(axes.flat, x, strict=False):
        ax.imshow(patch, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma")
    for ax in axes.flat:
        ax.set_axis_off()
    title = "generated log-mel patches" + (f", epoch {epoch}" if epoch is not None else "")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: fig.savefig(p, dpi=80, format="png"))
    plt.close(fig)
    return path


def load_generator(directory: str | Path) -> Generator:
    """The generator kept beside an ``sgan`` artifact."""
    from safetensors.torch import load_file

    from earmark.artifact import ArtifactError, read_meta

    meta = read_meta(directory)
    facts = meta.get("generator")
    if meta.get("model") != "sgan" or not facts or GENERATOR_FILE not in meta.get("files", {}):
        raise ArtifactError(f"{directory}: not an sgan model with its generator")
    gen = Generator(tuple(facts["shape"]), noise_dim=facts["noise_dim"], width=facts["width"])
    gen.load_state_dict(load_file(Path(directory) / GENERATOR_FILE))
    return gen.eval()


def sample(directory: str | Path, n: int = 16, *, seed: int = 0) -> Tensor:
    """``n`` generated log-mel patches ``[n, channels, n_mels, frames]`` (dB) from the
    generator of the ``sgan`` artifact in ``directory``."""
    if n < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    gen = load_generator(directory)
    with torch.no_grad():
        # batch norm needs two examples; draw at least two and keep n
        z = gen.noise(max(n, 2), torch.Generator().manual_seed(seed))
        return gen(z)[:n]
