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

Modules: :mod:`~earmark.models.sgan.nets` (the networks), :mod:`~earmark.models.sgan.losses`,
:mod:`~earmark.models.sgan.objective` (what :class:`earmark.training.Trainer` trains for) and
:mod:`~earmark.models.sgan.samples` (sampling, grids, the mode-collapse check); the settings
are in :mod:`earmark.models.sgan_config` (no torch there: the model registry reads them).
"""

from earmark.models.sgan.losses import (
    class_entropy,
    discriminator_loss,
    feature_matching_loss,
    real_fake_loss,
)
from earmark.models.sgan.nets import Discriminator, Generator, build_discriminator
from earmark.models.sgan.objective import SGANObjective
from earmark.models.sgan.samples import (
    GENERATOR_FILE,
    collapse_check,
    load_generator,
    sample,
    save_grid,
)
from earmark.models.sgan_config import GAN_DEFAULTS, GanSettings

__all__ = [
    "GAN_DEFAULTS",
    "GENERATOR_FILE",
    "Discriminator",
    "GanSettings",
    "Generator",
    "SGANObjective",
    "build_discriminator",
    "class_entropy",
    "collapse_check",
    "discriminator_loss",
    "feature_matching_loss",
    "load_generator",
    "real_fake_loss",
    "sample",
    "save_grid",
]
