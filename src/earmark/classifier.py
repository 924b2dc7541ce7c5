"""``earmark.Classifier``: one API over the classical and neural model families.

A classifier is its settings (model, hyper-parameters, audio and feature settings) plus what
``fit`` learned. Its :attr:`Classifier.preprocessing` (audio settings, features, the training
clip length) is the one path from a file to the model's input, and its
:attr:`Classifier.predictor` (:class:`earmark.predict.Predictor`) windows, scores and pools
audio of any length: ``predict``, ``evaluate``, ``detect``, the server and ONNX export all go
through them, so nothing can preprocess differently from training. It saves to an artifact
directory (:mod:`earmark.artifact`); :func:`earmark.load` (:mod:`earmark.loading`) loads any.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

import earmark
from earmark import artifact
from earmark import audio as audio_io
from earmark.audio import AudioConfig
from earmark.checks import check_params
from earmark.data.layouts import as_manifest
from earmark.data.layouts import load as load_dataset
from earmark.data.manifest import Manifest
from earmark.errors import EarmarkError, ParameterError
from earmark.features.config import FeatureConfig
from earmark.features.table import FeatureTable, compute_features
from earmark.models import registry
from earmark.predict import Predictor, UsesPredictor
from earmark.preprocess import Preprocessing

if TYPE_CHECKING:
    from earmark.calibration import Calibration
    from earmark.evaluation import Evaluation
    from earmark.training import TrainConfig

__all__ = ["CHECKPOINT_DIR", "SAMPLES_DIR", "Classifier"]

Pooling = Literal["mean", "max"]
MODEL_FILE = "model.skops"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_DIR = "checkpoint"  # inside a run directory; survives saving the model
SAMPLES_DIR = "samples"  # an sgan's generated samples during training; survives it too


class Classifier(UsesPredictor):
    """Train, evaluate, save and use an audio classifier.

    Args:
        model: a registered model name (``earmark.models.registry.names()``).
        features: a :class:`FeatureConfig` or a feature kind name; default: the model's.
            A pretrained frontend's name (``aisfx``, ``birdnet``) gives one embedding vector
            per clip, for classical learners and the ``head`` network.
        audio: how clips are standardized (rate, channels, length); default 16 kHz mono.
            A model that takes one rate only (``aisfx-finetune``) gets that rate.
            With a pretrained frontend, the rate is the frontend's (files are resampled
            once, with soxr, as they are decoded); another rate given is replaced by it,
            with a one-line warning saying so.
        params: hyper-parameters over the model's defaults.
        seed: seeds everything random in training.
        cache_dir: per-file feature cache (``None``: no cache).
        workers: processes / threads for feature extraction (default: all cores).
        pooling: how window scores of long audio are combined, ``mean`` or ``max``;
            default (``None``): ``mean`` for single-label data, ``max`` for multi-label
            data (a class present in any window is present in the file: the mean would
            dilute a short call in a long file below its threshold).
        train: :class:`earmark.training.TrainConfig` for neural models (epochs, learning
            rate, augmentation, device...); ignored by classical ones.
    """

    def __init__(
        self,
        model: str = "svm",
        *,
        features: FeatureConfig | str | None = None,
        audio: AudioConfig | None = None,
        params: dict[str, Any] | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        workers: int | None = None,
        pooling: Pooling | None = None,
        train: TrainConfig | None = None,
    ) -> None:
        spec = registry.get(model)
        if features is None:
            features = FeatureConfig(**spec.default_features)
        elif isinstance(features, str):
            features = FeatureConfig(**{**spec.default_features, "kind": features})
        if pooling not in ("mean", "max", None):
            raise ParameterError(f"pooling must be mean or max, got {pooling!r}")
        registry.check_features(model, features.kind)
        self.model = model
        self.family = spec.family
        self.features = features
        self.audio = _required_rate(model, spec.sample_rate, features, audio)
        # where a pretrained frontend embeds (networks train on TrainConfig.device)
        self.device = "auto"
        # checked and converted against the model's declared hyper-parameters at once (one
        # line naming the key), not when training is half-way
        self.params = check_params(model, params or {})
        self.seed = seed
        self.cache_dir = cache_dir
        self.workers = workers
        self.pooling: Pooling = pooling or "mean"
        self._pooling_given = pooling is not None  # else set by fit: max for multi-label
        self.train = train
        self.estimator_: Any = None
        self.history_: list[dict[str, float]] = []
        self.classes_: list[str] = []
        self.clip_seconds_: float | None = None
        self.training_: dict[str, Any] = {}
        self.metrics_: dict[str, Any] = {}
        self.skipped_: list[tuple[str, str]] = []
        self.generator_: Any = None  # sgan: the generator trained beside the classifier
        # multi-label: sigmoid scores, each class on its own; its per-class thresholds
        # (``earmark calibrate`` writes them into the run; absent: 0.5)
        self.multi_label_ = False
        self.thresholds_ = None
        # fitted by ``earmark calibrate`` (:mod:`earmark.calibration`): applied to every
        # window scored, its thresholds the default ones
        self.calibration_: Calibration | None = None

    # Per-class decision thresholds: a calibration's when one is attached (they are thresholds
    # on its calibrated scores), else those set by hand (None: the defaults).
    _thresholds: dict[str, float] | None = None

    @property
    def thresholds_(self) -> dict[str, float] | None:
        """Per-class decision thresholds: the attached calibration's (on the calibrated
        scores), else those set by hand, else ``None`` (the defaults)."""
        cal = getattr(self, "calibration_", None)
        if cal is not None and cal.thresholds:
            return dict(cal.thresholds)
        return self._thresholds

    @thresholds_.setter
    def thresholds_(self, value: dict[str, float] | None) -> None:
        self._thresholds = dict(value) if value else None

    def __repr__(self) -> str:
        state = f"{len(self.classes_)} classes" if self.estimator_ is not None else "unfitted"
        return f"Classifier(model={self.model!r}, features={self.features.kind!r}, {state})"

    # -- training ---------------------------------------------------------------------------

    def features_of(
        self, data: Manifest | str | Path, *, on_file: Callable[[], None] | None = None
    ) -> FeatureTable:
        """The feature table of a data set's labelled files (cached, bad files skipped).
        A pretrained frontend's clips without a set duration take the longest clip's (in
        tenths of a second up, at most 10 s, as networks train on): one vector per clip
        either way, but a batch of clips is one tensor."""
        manifest = as_manifest(data)
        if self.features.pretrained and self.audio.duration is None:
            labelled = manifest.subset(manifest.labelled)
            seconds = _longest(labelled.filepaths, labelled.spans)
            self.audio = dataclasses.replace(self.audio, duration=seconds)
        return compute_features(
            manifest.subset(manifest.labelled),
            self.audio,
            self.features,
            cache_dir=self.cache_dir,
            workers=self.workers,
            device=self._feature_device(),
            on_file=on_file,
        )

    def _feature_device(self) -> str:
        """Where a pretrained frontend runs: a network's device, else :attr:`device`."""
        if not self.features.pretrained:
            return "cpu"
        if self.family == "neural" and self.estimator_ is not None:
            return str(self.estimator_.device)
        from earmark.training import resolve_device

        return str(resolve_device(self.device))

    def _matrix(self, table: FeatureTable) -> np.ndarray:
        # Classical learners take one vector per clip (spectral features are flattened);
        # networks take the spectrograms themselves.
        return table.X if self.family == "neural" else table.X.reshape(len(table.X), -1)

    def fit(
        self,
        data: Manifest | str | Path,
        valid: Manifest | str | Path | None = None,
        *,
        on_file: Callable[[], None] | None = None,
        unlabeled: Manifest | str | Path | None = None,
        label_fraction: float | None = None,
        **neural: Any,
    ) -> Classifier:
        """Train on the labelled files of ``data``; ``valid`` is for model families that
        stop early (classical learners fit on ``data`` alone and ignore it). Neural models
        take ``checkpoint_dir`` / ``resume`` / ``on_step`` / ``on_epoch`` / ``nproc`` (see
        :class:`earmark.training.Trainer`) and hold out a group-aware tenth of ``data`` for
        early stopping when ``valid`` is not given.

        Semi-supervised models (``sgan``) also learn from unlabelled audio: the rows of
        ``data`` without a label, and ``unlabeled`` (a folder of audio or a manifest, labels
        ignored). ``label_fraction`` keeps the labels of only that fraction of each class of
        ``data`` (seeded) and treats the rest as unlabelled: for experiments; supervised
        models then simply train on fewer labels. ``samples_dir`` (sgan) receives generated
        samples during training."""
        self.calibration_ = None  # a new model: a calibration fitted on an old one does not hold
        if self.features.pretrained:  # before any audio is read
            from earmark.features.pretrained import available, load

            if not available(self.features.kind):
                load(self.features.kind)  # the one-line install error
        manifest = as_manifest(data)
        if label_fraction is not None:
            from earmark.data.splits import hide_labels

            manifest = hide_labels(manifest, label_fraction, seed=self.seed)
        semi = registry.get(self.model).semi_supervised
        if unlabeled is not None and not semi:
            raise ParameterError(
                f"{self.model} learns from labelled audio only; unlabelled audio needs a "
                f"semi-supervised model ({', '.join(_semi_supervised())})"
            )
        if manifest.multi_label and semi:
            raise ParameterError(
                f"{self.model} learns single-label classes; multi-label data needs a "
                "supervised model"
            )
        self.multi_label_ = manifest.multi_label
        self.thresholds_ = None  # a new model: thresholds calibrated for an old one do not hold
        if self.multi_label_ and not self._pooling_given:
            self.pooling = "max"
        if self.family == "neural":
            self._fit_neural(manifest, valid, on_file=on_file, unlabeled=unlabeled, **neural)
        else:
            if "nproc" in neural:
                raise ParameterError(
                    f"only networks train in several processes (nproc); {self.model} is "
                    f"{self.family}"
                )
            if neural:
                raise ParameterError(f"{sorted(neural)} apply to neural models only")
            self._fit_classical(manifest, on_file=on_file)
        if label_fraction is not None:
            self.training_["label_fraction"] = label_fraction
        return self

    def _fit_classical(
        self, manifest: Manifest, *, on_file: Callable[[], None] | None = None
    ) -> Classifier:
        from earmark.models.classical import ClassicalModel

        table = self.features_of(manifest, on_file=on_file)
        multi = table.y.ndim == 2
        if multi:
            _check_multi_hot(table.y, table.classes)
            labels = table.y  # one-vs-rest on the multi-hot matrix
        else:
            if len(set(table.y.tolist())) < 2:
                raise EarmarkError("training needs at least two classes with readable files")
            labels = np.asarray(table.classes, dtype=object)[table.y]
        self.estimator_ = ClassicalModel(self.model, self.params, random_state=self.seed)
        self.estimator_.fit(self._matrix(table), labels)
        if multi:
            self.classes_ = list(table.classes)
        else:
            self.classes_ = [str(c) for c in self.estimator_.classes_]
        self.skipped_ = table.skipped
        durations = table.clip_seconds() or [audio_io.info(p).duration for p in table.filepaths]
        self.clip_seconds_ = self.audio.duration or float(max(durations))
        counts = _class_counts(table.y, len(table.classes))
        self.training_ = {
            "files": len(table.filepaths),
            "skipped": len(table.skipped),
            "skipped_files": [{"path": p, "error": e} for p, e in table.skipped[:50]],
            "per_class": {c: int(n) for c, n in zip(table.classes, counts, strict=True)},
            "groups": len(set(table.groups)),
            "duration_s": float(sum(durations)),
            "clip_seconds": {"min": float(min(durations)), "max": float(max(durations))},
        }
        if multi:
            self.training_["negatives"] = int((table.y.sum(axis=1) == 0).sum())
        return self

    def _fit_neural(
        self,
        manifest: Manifest,
        valid: Manifest | str | Path | None,
        *,
        on_file: Callable[[], None] | None = None,
        unlabeled: Manifest | str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        on_step: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        samples_dir: str | Path | None = None,
        nproc: int = 1,
    ) -> Classifier:
        import torch

        from earmark import ddp
        from earmark.data.splits import holdout
        from earmark.features.frontend import build_frontend
        from earmark.models.neural import NeuralModel
        from earmark.training import TrainConfig, Trainer, WaveBank

        spec = registry.get(self.model)
        config = self.train or TrainConfig(seed=self.seed, **spec.train_defaults)
        ddp.check_nproc(nproc, config.device)  # before any audio is read
        group = ddp.current()  # torchrun's group, joined now (a process alone: Group())
        if spec.semi_supervised and (nproc > 1 or group.world > 1):
            raise ParameterError(
                f"{self.model} trains in one process (its generator is not shared between "
                "processes); nproc and torchrun take the supervised networks"
            )
        labelled = manifest.subset(manifest.labelled)
        if valid is None:
            # A tenth of the groups (or files) for early stopping; one group of few.
            units = labelled.frame["group"].nunique() if labelled.has_groups else len(labelled)
            if units >= 3:
                size = max(0.1, 1.0 / units)
                parts = holdout(labelled, test_size=size, valid_size=0.0, seed=self.seed)
                train_m, valid_m = parts.train, parts.test
            else:
                train_m, valid_m = labelled, labelled.subset([])
        else:
            train_m, valid_m = labelled, as_manifest(valid)
            valid_m = valid_m.subset(valid_m.labelled)
        classes = labelled.classes
        # the network first: one built on pretrained weights reads them now, so a missing
        # package is said before any audio is decoded
        torch.manual_seed(config.seed)  # the initial weights
        model = NeuralModel(
            self.model,
            self.params,
            len(classes),
            self.audio.channels,
            n_bins=self.features.n_bins,
            multi_label=labelled.multi_label,
        )
        parts = [train_m, valid_m]
        if spec.semi_supervised:
            parts.append(self._unlabelled_pool(manifest, unlabeled, valid_m))
        if not group.is_main:  # under torchrun rank 0 validates for all: it alone decodes it
            parts[1] = valid_m.subset([])
        banks, skipped = [], []
        with ddp.main_first(group):  # the others read what rank 0 put in the cache
            for part in parts:
                bank, kept, bad = WaveBank.from_manifest(
                    part, self.audio, classes, cache_dir=self.cache_dir, on_file=on_file
                )
                banks.append((bank, kept))
                skipped += bad
        (train_bank, train_y), (valid_bank, valid_y) = banks[:2]
        unlabelled_bank = banks[2][0] if spec.semi_supervised else None
        if train_bank is not None and train_y.ndim == 2:
            _check_multi_hot(train_y.numpy(), classes)
        elif train_bank is None or len(set(train_y.tolist())) < 2:
            raise EarmarkError("training needs at least two classes with readable files")
        lengths = train_bank.lengths.float() / self.audio.sample_rate
        if self.audio.duration is None:  # train on clips as long as the longest (max 10 s)
            seconds = min(10.0, math.ceil(float(lengths.max()) * 10) / 10)
            self.audio = dataclasses.replace(self.audio, duration=seconds)
        n_samples = self.audio.n_samples
        hooks = {"checkpoint_dir": checkpoint_dir, "on_step": on_step, "on_epoch": on_epoch}
        objective = None  # the Trainer's default: supervised (multi-hot targets: multi-label)
        if spec.semi_supervised:
            from earmark.models.sgan import GanSettings, SGANObjective

            if samples_dir is None and checkpoint_dir is not None:
                samples_dir = Path(checkpoint_dir).parent / SAMPLES_DIR
            gan, _ = GanSettings.split({**spec.defaults, **self.params})
            objective = SGANObjective(gan, unlabelled=unlabelled_bank, samples_dir=samples_dir)
        trainer = Trainer(config, objective=objective, nproc=nproc, **hooks)
        result = trainer.fit(
            model.network,
            build_frontend(self.features, self.audio.sample_rate),
            train_bank,
            train_y,
            valid_bank,
            valid_y,
            n_classes=len(classes),
            n_samples=n_samples,
            sample_rate=self.audio.sample_rate,
            resume=resume,
        )
        model.network.load_state_dict(result.best_state)
        model.network.to("cpu").eval()
        self.estimator_ = model
        self.generator_ = getattr(trainer.objective, "generator", None)  # sgan's generator
        if self.generator_ is not None:
            self.generator_.to("cpu").eval()
        self.classes_ = list(classes)
        self.clip_seconds_ = self.audio.duration
        self.history_ = result.history
        self.skipped_ = skipped
        counts = _class_counts(train_y.numpy(), len(classes)).tolist()
        self.training_ = {
            "files": len(train_bank),
            "valid_files": len(valid_bank) if valid_bank else 0,
            "skipped": len(skipped),
            "skipped_files": [{"path": p, "error": e} for p, e in skipped[:50]],
            "per_class": dict(zip(classes, counts, strict=True)),
            "groups": int(train_m.frame["group"].nunique()) if train_m.has_groups else 0,
            "duration_s": float(lengths.sum()),
            "clip_seconds": {"min": float(lengths.min()), "max": float(lengths.max())},
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "stopped": result.stopped,
            "train_seconds": result.seconds,
            "train_config": config.to_dict(),
        }
        if train_y.ndim == 2:
            self.training_["negatives"] = int((train_y.sum(dim=1) == 0).sum())
        if "embedding_seconds" in result.extra:  # clips embedded once by a frozen frontend
            self.training_["embedding_seconds"] = result.extra["embedding_seconds"]
        if spec.semi_supervised:
            self.training_["unlabelled_files"] = len(unlabelled_bank) if unlabelled_bank else 0
        return self

    def _unlabelled_pool(
        self, manifest: Manifest, unlabeled: Manifest | str | Path | None, valid: Manifest
    ) -> Manifest:
        """The unlabelled audio a semi-supervised model learns from: the rows of
        ``manifest`` without a label and the files of ``unlabeled``, less any of a group
        held out for validation (it would leak that group into early stopping)."""
        from earmark.data.layouts import unlabelled_folder

        frames = [manifest.frame[~manifest.labelled]]
        if unlabeled is not None:
            extra = (
                unlabeled
                if isinstance(unlabeled, Manifest)
                else unlabelled_folder(unlabeled)
                if Path(unlabeled).is_dir()
                else load_dataset(unlabeled)
            )
            frames.append(extra.frame.assign(label=pd.NA))
        pool = Manifest(pd.concat(frames, ignore_index=True), root=manifest.root)
        if valid.has_groups and pool.has_groups:
            held = set(valid.frame["group"].dropna())
            pool = pool.subset(~pool.frame["group"].isin(held).to_numpy())
        return pool

    def _check_fitted(self) -> None:
        if self.estimator_ is None:
            raise EarmarkError("this classifier is not trained yet: call fit() or earmark.load()")

    # -- prediction: the predictor interface ------------------------------------------------

    @property
    def preprocessing(self) -> Preprocessing:
        """How a file becomes this model's input (audio, features, the training clip length)."""
        self._check_fitted()
        return Preprocessing(
            self.audio, self.features, float(self.clip_seconds_), device=self._feature_device()
        )

    @property
    def predictor(self) -> Predictor:
        """Windows -> scores -> pooling with this model (:class:`earmark.predict.Predictor`)."""
        self._check_fitted()
        score = self.estimator_.predict_proba
        if self.calibration_ is not None:  # calibrated scores for every window
            score = self.calibration_.wrap(score)
        return Predictor(
            self.preprocessing,
            self.classes_,
            score,
            pooling=self.pooling,
            flat=self.family != "neural",
            multi_label=self.multi_label_,
            thresholds=self.thresholds_,
        )

    def to(self, device: str) -> Classifier:
        """Run a network, and a pretrained frontend, on ``device`` (``auto``, ``cpu``,
        ``cuda``); classical learners stay on the CPU. Returns the classifier."""
        from earmark.training import resolve_device

        resolved = resolve_device(device)
        self.device = str(resolved)
        if self.family == "neural" and self.estimator_ is not None:
            self.estimator_.device = resolved
        return self

    def evaluate(
        self, data: Manifest | str | Path, *, on_file: Callable[[], None] | None = None
    ) -> Evaluation:
        """Metrics on the labelled files of ``data``, each file scored as ``predict`` scores
        it (windows of the training clip length, pooled)."""
        self._check_fitted()
        return super().evaluate(data, on_file=on_file)

    # -- artifact ---------------------------------------------------------------------------

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """Write the artifact directory (see :mod:`earmark.artifact`); ``extra`` adds keys to
        ``earmark.json`` (how the data was split, for instance)."""
        self._check_fitted()
        spec = registry.get(self.model)
        meta = {
            "schema_version": artifact.SCHEMA_VERSION,
            "earmark_version": earmark.__version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "family": self.family,
            "model": self.model,
            "params": {**spec.defaults, **self.params},
            "seed": self.seed,
            "classes": self.classes_,
            "audio": self.audio.to_dict(),
            "features": self.features.to_dict(),
            "pooling": self.pooling,
            "clip_seconds": self.clip_seconds_,
            "training": self.training_,
            "metrics": self.metrics_,
            **(extra or {}),
        }
        if self.multi_label_:
            meta["multi_label"] = True
        if self._thresholds:  # set by hand (a calibration's travel in calibration.json)
            meta["thresholds"] = dict(self._thresholds)
        if self.features.pretrained:  # what the model is built on: license, attribution
            from earmark.features.pretrained import info

            meta["frontend"] = info(self.features.kind).record()
        if self.family == "neural":
            from safetensors.torch import save_file

            state = {
                k: v.detach().cpu().contiguous()
                for k, v in self.estimator_.network.state_dict().items()
            }
            meta["history"] = self.history_
            writers = {WEIGHTS_FILE: lambda p: save_file(state, p)}
            gen = getattr(self, "generator_", None)
            if gen is not None:  # an sgan's generator, kept for sampling
                from earmark.models.sgan import GENERATOR_FILE

                g_state = {k: v.detach().cpu().contiguous() for k, v in gen.state_dict().items()}
                meta["generator"] = gen.config()
                writers[GENERATOR_FILE] = lambda p: save_file(g_state, p)
        else:
            meta["n_features"] = int(self.estimator_.n_features_in_)
            pipeline = self.estimator_.pipeline_
            writers = {MODEL_FILE: lambda p: artifact.save_skops(pipeline, p)}
        if self.calibration_ is not None:
            from earmark.atomic import atomic_text
            from earmark.calibration import CALIBRATION_FILE

            text = self.calibration_.to_json()
            writers[CALIBRATION_FILE] = lambda p: atomic_text(p, text)
        path = artifact.write_artifact(directory, meta, writers, keep=(CHECKPOINT_DIR, SAMPLES_DIR))
        if self.history_:
            from earmark.report import write_history

            write_history(path, self.history_)
        return path

    @classmethod
    def load(cls, directory: str | Path, *, calibration: bool = True) -> Classifier:
        """Load an artifact directory written by :meth:`save`, validated before it is used:
        ``earmark.json`` against its schema and the checksums of its files
        (:func:`earmark.artifact.read_meta`); the feature vector its settings give against
        the model's inputs; a network's size against its weight file before it is built; a
        scikit-learn model against what ``earmark.json`` says it is
        (:func:`earmark.artifact.check_estimator`); its ``calibration.json``, if it lists one
        (:func:`earmark.calibration.read_calibration`), attached unless ``calibration`` is
        false (raw scores, default thresholds). Raises
        :class:`~earmark.artifact.ArtifactError` (one line) for anything else."""
        directory = Path(directory)
        meta = artifact.read_meta(directory)
        if meta["family"] not in ("classical", "neural"):
            raise artifact.ArtifactError(
                f"{directory}: an {meta['family']} model, not a classifier (load it with "
                "earmark.load)"
            )
        _check_model(directory, meta)
        try:
            clf = cls(
                meta["model"],
                features=FeatureConfig.from_dict(meta["features"]),
                audio=AudioConfig.from_dict(meta["audio"]),
                params=dict(meta.get("params", {})),
                seed=meta.get("seed", 0),
                pooling=meta.get("pooling", "mean"),
            )
        except (ParameterError, TypeError) as exc:
            raise artifact.ArtifactError(
                f"{directory / artifact.META_FILE}: invalid settings ({exc})"
            ) from None
        _check_frontend(directory, clf.features, meta)
        clf.classes_ = list(meta["classes"])
        clf.multi_label_ = bool(meta.get("multi_label", False))
        clf.thresholds_ = dict(meta["thresholds"]) if meta.get("thresholds") else None
        clf.clip_seconds_ = float(meta["clip_seconds"])
        clf.training_ = meta.get("training", {})
        clf.metrics_ = meta.get("metrics", {})
        clf.history_ = meta.get("history", [])
        if calibration:
            from earmark.calibration import read_calibration

            clf.calibration_ = read_calibration(directory, meta)
        if clf.family == "neural":
            clf.estimator_ = _load_network(clf, directory / WEIGHTS_FILE)
            return clf
        from earmark.models.classical import ClassicalModel  # scikit-learn: only when needed

        n_features = int(meta["n_features"])
        width = _feature_width(clf, directory)
        if width != n_features:
            raise artifact.ArtifactError(
                f"{directory / artifact.META_FILE}: its features give {width} values per clip; "
                f"the model takes {n_features} (n_features)"
            )
        path = directory / MODEL_FILE
        pipeline = artifact.load_skops(path)
        est = ClassicalModel(clf.model, clf.params, random_state=clf.seed)
        artifact.check_estimator(
            pipeline,
            path,
            expected=_learner(clf),
            classes=clf.classes_,
            n_features=n_features,
            multi_label=clf.multi_label_,
        )
        est.pipeline_ = pipeline
        est.multi_label_ = clf.multi_label_
        est.classes_ = (
            np.asarray(pipeline.classes_)
            if clf.multi_label_
            else np.asarray(pipeline.classes_, dtype=object)
        )
        est.n_features_in_ = n_features
        clf.estimator_ = est
        return clf


def _required_rate(
    model: str, model_rate: int | None, features: FeatureConfig, audio: AudioConfig | None
) -> AudioConfig:
    """Audio settings (default: :class:`AudioConfig`'s) at the one rate the features or the
    model take: a pretrained frontend's (decoding resamples once, with soxr), or the model's
    own (``aisfx-finetune``); ``None`` of either: ``audio`` as given. Another rate asked for
    is replaced, with a one-line warning saying so."""
    import warnings

    who, rate = model, model_rate
    if features.pretrained:
        from earmark.features.pretrained import info

        who, rate = f"the {features.kind} frontend", info(features.kind).sample_rate
    if rate is None:
        return audio or AudioConfig()
    if audio is None:
        return AudioConfig(sample_rate=rate)
    if audio.sample_rate != rate:
        warnings.warn(
            f"{who} takes {rate} Hz audio: decoding at {rate} Hz, "
            f"not the {audio.sample_rate} Hz asked for",
            UserWarning,
            stacklevel=3,
        )
        return dataclasses.replace(audio, sample_rate=rate)
    return audio


def _longest(paths: list[str], spans: list[tuple[float, float] | None] | None = None) -> float:
    """The clip length for clips of ``paths``: the longest readable one, in tenths of a
    second up, at most 10 s (from the headers, or a segment row's own length; unreadable
    files are left to decoding)."""
    longest = 0.0
    for path, span in zip(paths, spans or [None] * len(paths), strict=True):
        if span is not None:
            longest = max(longest, span[1])
            continue
        try:
            longest = max(longest, audio_io.info(path).duration)
        except (EarmarkError, OSError):
            continue
    if longest <= 0:
        raise EarmarkError(f"none of the {len(paths)} files could be read")
    return min(10.0, math.ceil(longest * 10) / 10)


def _check_frontend(directory: Path, features: FeatureConfig, meta: dict[str, Any]) -> None:
    """A model on a pretrained frontend's embeddings must have been built on the weights
    this earmark runs (another release embeds differently)."""
    if not features.pretrained:
        return
    from earmark.features.pretrained import info

    where = directory / artifact.META_FILE
    recorded = meta.get("frontend")
    if not isinstance(recorded, dict):
        raise artifact.ArtifactError(f"{where}: frontend: missing ({features.kind} features)")
    here = info(features.kind)
    if recorded.get("weights") != here.weights:
        raise artifact.ArtifactError(
            f"{where}: frontend.weights: trained on {recorded.get('weights')!r}; this earmark "
            f"runs {here.weights!r}"
        )


def _check_multi_hot(y: np.ndarray, classes: list[str]) -> None:
    """Multi-label training data must have some class present in some readable clip (one
    class is enough: present or not is a yes / no of its own)."""
    if not len(classes) or not np.asarray(y).sum():
        raise EarmarkError("multi-label training needs a class present in some readable file")


def _class_counts(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Clips per class: of each class id, or (multi-hot ``y``) where the class is present."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y.sum(axis=0).astype(np.int64)
    return np.bincount(y, minlength=n_classes)


def _semi_supervised() -> list[str]:
    return [n for n in registry.names("neural") if registry.get(n).semi_supervised]


def _check_model(directory: Path, meta: dict[str, Any]) -> None:
    """``earmark.json``'s model and hyper-parameters, before anything is built: a
    registered model of the artifact's family, its hyper-parameters of their declared types
    and within bounds (:func:`earmark.artifact_schema.check_param_bounds`: the numbers that
    size a network). Raises :class:`~earmark.artifact.ArtifactError` naming the field."""
    from earmark.artifact_schema import SchemaError, check_param_bounds
    from earmark.checks import SettingsError

    where = directory / artifact.META_FILE
    family = meta["family"]
    try:
        spec = registry.get(meta["model"])
    except ParameterError:
        known = ", ".join(registry.names(family))
        raise artifact.ArtifactError(
            f"{where}: model: unknown {family} model {meta['model']!r} (known: {known})"
        ) from None
    if spec.family != family:
        raise artifact.ArtifactError(
            f"{where}: model: {meta['model']} is a {spec.family} model, not {family}"
        )
    try:
        check_param_bounds(family, check_params(meta["model"], meta.get("params", {})))
    except (SettingsError, SchemaError) as exc:
        text = " ".join(str(exc).split())
        text = text if len(text) <= 300 else text[:297] + "..."
        raise artifact.ArtifactError(f"{where}: {text}") from None


def _learner(clf: Classifier) -> Any:
    """The unfitted scikit-learn learner ``clf``'s settings build (what its skops file must
    hold a fitted one of)."""
    spec = registry.get(clf.model)
    params = {**spec.defaults, **clf.params}
    if spec.seeded:
        params.setdefault("random_state", clf.seed)
    try:
        learner = spec.build(**params)
    except (TypeError, ValueError) as exc:
        raise artifact.ArtifactError(f"cannot build {clf.model} with {params} ({exc})") from None
    if clf.multi_label_:
        from sklearn.multiclass import OneVsRestClassifier

        return OneVsRestClassifier(learner)
    return learner


def _feature_width(clf: Classifier, directory: Path) -> int:
    """Values per clip of a classical model's features: the hand-crafted vector's names, or
    a fixed window's flattened spectrogram (channels x bins x frames) or waveform."""
    features, audio = clf.features, clf.audio
    if features.pretrained:
        return features.n_bins
    if features.kind == "handcrafted":
        try:
            return len(features.handcrafted(audio.sample_rate).names)
        except ParameterError as exc:
            raise artifact.ArtifactError(
                f"{directory / artifact.META_FILE}: features: {exc}"
            ) from None
    window = Preprocessing(audio, features, float(clf.clip_seconds_)).window
    if features.kind == "waveform":
        return audio.channels * window
    frames = 1 + (window + 2 * (features.n_fft // 2) - features.n_fft) // features.hop_length
    return audio.channels * features.n_bins * frames


def _load_network(clf: Classifier, path: Path) -> Any:
    """The network of ``clf``'s settings with the weights of ``path``. Its size is known
    before it is built (on torch's ``meta`` device, which allocates nothing): a network
    larger than its weight file cannot be the one saved, and is refused unbuilt."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from earmark.models.neural import NeuralModel

    def build() -> NeuralModel:  # pretrained weights are never read: the file has them all
        return NeuralModel(
            clf.model,
            clf.params,
            len(clf.classes_),
            clf.audio.channels,
            n_bins=clf.features.n_bins,
            pretrained=False,
            multi_label=clf.multi_label_,
        )

    try:
        with torch.device("meta"):
            shape = build()
    except Exception as exc:  # a builder refusing what the settings say (assertions too)
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise artifact.ArtifactError(f"{path}: cannot build {clf.model} ({first})") from None
    artifact.check_weight_size(path, shape.network, f"{clf.model} with these settings")
    model = build()
    try:
        model.network.load_state_dict(load_file(path))
    except (SafetensorError, RuntimeError) as exc:
        first = " ".join(str(exc).split())[:300]
        raise artifact.ArtifactError(f"{path}: weights do not fit {clf.model} ({first})") from None
    model.network.eval()
    return model
