"""What the semi-supervised GAN's generator draws: samples from a saved model, grids of
log-mel patches (``earmark sgan-samples``, the grids drawn during training) and the
mode-collapse check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from earmark.errors import ParameterError
from earmark.models.sgan.nets import Discriminator, Generator

__all__ = ["GENERATOR_FILE", "collapse_check", "load_generator", "sample", "save_grid"]

GENERATOR_FILE = "generator.safetensors"  # beside the discriminator in an sgan artifact


def _pairwise(x: Tensor) -> float:
    flat = x.flatten(1)
    d = torch.cdist(flat, flat)
    n = len(flat)
    return float(d.sum() / max(n * (n - 1), 1))


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
    """The generator kept beside an ``sgan`` artifact. Its size is known before it is built:
    the ``generator`` section of ``earmark.json`` (bounded by its schema) builds it on
    torch's ``meta`` device first, which allocates nothing, and a generator needing more
    bytes than its weight file holds is refused unbuilt (as :meth:`earmark.Classifier.load`
    does for the network). Raises :class:`~earmark.artifact.ArtifactError` (one line)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from earmark.artifact import ArtifactError, check_weight_size, read_meta

    meta = read_meta(directory)
    facts = meta.get("generator")
    if meta.get("model") != "sgan" or not facts or GENERATOR_FILE not in meta.get("files", {}):
        raise ArtifactError(f"{directory}: not an sgan model with its generator")
    path = Path(directory) / GENERATOR_FILE

    def build() -> Generator:
        return Generator(tuple(facts["shape"]), noise_dim=facts["noise_dim"], width=facts["width"])

    try:
        with torch.device("meta"):
            shape = build()
    except Exception as exc:  # what the section says cannot be built (assertions too)
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ArtifactError(f"{path}: cannot build the generator ({first})") from None
    check_weight_size(path, shape, "the generator earmark.json describes")
    gen = build()
    try:
        gen.load_state_dict(load_file(path))
    except (SafetensorError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise ArtifactError(f"{path}: weights do not fit the generator ({first})") from None
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
