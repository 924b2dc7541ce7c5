"""``earmark.Classifier``: one API over every model family, and ``earmark.load`` for artifacts.

A classifier is its settings (model, hyper-parameters, audio and feature settings) plus what
``fit`` learned. It computes its own features, so prediction always preprocesses exactly as
training did, and it saves to / loads from an artifact directory (:mod:`earmark.artifact`).

Audio longer than the training clips is cut into windows of the training clip length (half
overlapping) and the window scores are pooled (``mean`` or ``max``), so a clip of any length
gets one answer and, on request, its score track.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

import earmark
from earmark import artifact
from earmark import audio as audio_io
from earmark.audio import AUDIO_EXTENSIONS, AudioConfig, fix_length, load_clip
from earmark.data.layouts import load as load_dataset
from earmark.data.manifest import Manifest
from earmark.errors import AudioError, EarmarkError, ParameterError
from earmark.features.config import FeatureConfig
from earmark.features.table import FeatureTable, compute_features
from earmark.models import registry
from earmark.prefetch import prefetch_map

if TYPE_CHECKING:
    from earmark.evaluation import Evaluation
    from earmark.training import TrainConfig

__all__ = [
    "Classifier",
    "FilePredictions",
    "Prediction",
    "as_manifest",
    "input_files",
    "load",
    "pooled_scores",
]

Pooling = Literal["mean", "max"]
_MODEL_FILE = "model.skops"
_WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_DIR = "checkpoint"  # inside a run directory; survives saving the model
SAMPLES_DIR = "samples"  # an sgan's generated samples during training; survives it too


@dataclass
class Prediction:
    """What a classifier says about one file.

    ``labels`` / ``scores``: the top classes, best first, with their pooled scores (for
    ``mean`` pooling, probabilities). ``window_scores``: ``[windows, classes]`` in
    ``classes`` order, with ``window_starts`` in seconds. ``error`` is set (and the rest empty)
    when the file could not be read.
    """

    path: str
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    duration: float = 0.0
    window_starts: list[float] = field(default_factory=list)
    window_scores: np.ndarray | None = None
    error: str | None = None

    def to_dict(self, *, windows: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path}
        if self.error is not None:
            return d | {"error": self.error}
        d |= {
            "labels": self.labels,
            "scores": [round(s, 6) for s in self.scores],
            "duration_s": round(self.duration, 3),
            "windows": len(self.window_starts),
        }
        if windows and self.window_scores is not None:
            d["window_starts_s"] = [round(s, 3) for s in self.window_starts]
            d["window_scores"] = np.round(self.window_scores, 6).tolist()
        return d


def as_manifest(data: Manifest | str | Path) -> Manifest:
    """A manifest from a :class:`Manifest`, a data set folder or a manifest CSV."""
    return data if isinstance(data, Manifest) else load_dataset(data)


def input_files(inputs: str | Path | Manifest | Iterable[str | Path]) -> list[str]:
    """Files to predict: a file, a folder (searched for audio), a manifest, or a list."""
    if isinstance(inputs, Manifest):
        return inputs.filepaths
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.suffix.lower() == ".csv":
            out += load_dataset(p).filepaths
        else:
            out.append(str(p))
    return out


def pooled_scores(preds: Sequence[Prediction], classes: Sequence[str]) -> np.ndarray:
    """``[files, classes]`` pooled scores of full predictions (``top_k`` = every class), in
    ``classes`` order; raises :class:`AudioError` for the first prediction with an error."""
    rows = []
    for p in preds:
        if p.error is not None:
            raise AudioError(p.error)
        rows.append([p.scores[p.labels.index(c)] for c in classes])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(classes))


class FilePredictions:
    """``predict_proba`` and ``predict`` over a ``predict_files`` (one definition for
    :class:`Classifier` and :class:`earmark.ensemble.Ensemble`)."""

    classes_: list[str]

    def predict_proba(self, inputs: str | Path | Manifest | Sequence[str | Path]) -> np.ndarray:
        """Pooled class scores ``[files, classes]`` (columns in ``classes_`` order); raises
        :class:`AudioError` for the first file that cannot be read."""
        preds = self.predict_files(inputs, top_k=len(self.classes_))  # type: ignore[attr-defined]
        return pooled_scores(preds, self.classes_)

    def predict(self, inputs: str | Path | Manifest | Sequence[str | Path]) -> list[str]:
        """The most probable label of each file."""
        return [self.classes_[i] for i in np.argmax(self.predict_proba(inputs), axis=1)]


class Classifier(FilePredictions):
    """Train, evaluate, save and use an audio classifier.

    Args:
        model: a registered model name (``earmark.models.registry.names()``).
        features: a :class:`FeatureConfig` or a feature kind name; default: the model's.
        audio: how clips are standardized (rate, channels, length); default 16 kHz mono.
        params: hyper-parameters over the model's defaults.
        seed: seeds everything random in training.
        cache_dir: per-file feature cache (``None``: no cache).
        workers: processes / threads for feature extraction (default: all cores).
        pooling: how window scores of long audio are combined, ``mean`` or ``max``.
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
        pooling: Pooling = "mean",
        train: TrainConfig | None = None,
    ) -> None:
        spec = registry.get(model)
        if features is None:
            features = FeatureConfig(**spec.default_features)
        elif isinstance(features, str):
            features = FeatureConfig(**{**spec.default_features, "kind": features})
        if pooling not in ("mean", "max"):
            raise ParameterError(f"pooling must be mean or max, got {pooling!r}")
        self.model = model
        self.family = spec.family
        self.features = features
        self.audio = audio or AudioConfig()
        self.params = dict(params or {})
        self.seed = seed
        self.cache_dir = cache_dir
        self.workers = workers
        self.pooling: Pooling = pooling
        self.train = train
        self.estimator_: Any = None
        self.history_: list[dict[str, float]] = []
        self.classes_: list[str] = []
        self.clip_seconds_: float | None = None
        self.training_: dict[str, Any] = {}
        self.metrics_: dict[str, Any] = {}
        self.skipped_: list[tuple[str, str]] = []
        self.generator_: Any = None  # sgan: the generator trained beside the classifier
        self._frontend: tuple[Any, Any] | None = None  # built once for prediction

    def __repr__(self) -> str:
        state = f"{len(self.classes_)} classes" if self.estimator_ is not None else "unfitted"
        return f"Classifier(model={self.model!r}, features={self.features.kind!r}, {state})"

    # -- training ---------------------------------------------------------------------------

    def features_of(
        self, data: Manifest | str | Path, *, on_file: Callable[[], None] | None = None
    ) -> FeatureTable:
        """The feature table of a data set's labelled files (cached, bad files skipped)."""
        manifest = as_manifest(data)
        return compute_features(
            manifest.subset(manifest.labelled),
            self.audio,
            self.features,
            cache_dir=self.cache_dir,
            workers=self.workers,
            on_file=on_file,
        )

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
        take ``checkpoint_dir`` / ``resume`` / ``on_step`` / ``on_epoch`` (see
        :class:`earmark.training.Trainer`) and hold out a group-aware tenth of ``data`` for
        early stopping when ``valid`` is not given.

        Semi-supervised models (``sgan``) also learn from unlabelled audio: the rows of
        ``data`` without a label, and ``unlabeled`` (a folder of audio or a manifest, labels
        ignored). ``label_fraction`` keeps the labels of only that fraction of each class of
        ``data`` (seeded) and treats the rest as unlabelled: for experiments; supervised
        models then simply train on fewer labels. ``samples_dir`` (sgan) receives generated
        samples during training."""
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
        if self.family == "neural":
            self._fit_neural(manifest, valid, on_file=on_file, unlabeled=unlabeled, **neural)
        else:
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
        if len(set(table.y.tolist())) < 2:
            raise EarmarkError("training needs at least two classes with readable files")
        labels = np.asarray(table.classes, dtype=object)[table.y]
        self.estimator_ = ClassicalModel(self.model, self.params, random_state=self.seed)
        self.estimator_.fit(self._matrix(table), labels)
        self.classes_ = [str(c) for c in self.estimator_.classes_]
        self.skipped_ = table.skipped
        durations = [audio_io.info(p).duration for p in table.filepaths]
        self.clip_seconds_ = self.audio.duration or float(max(durations))
        counts = np.bincount(table.y, minlength=len(table.classes))
        self.training_ = {
            "files": len(table.filepaths),
            "skipped": len(table.skipped),
            "skipped_files": [{"path": p, "error": e} for p, e in table.skipped[:50]],
            "per_class": {c: int(n) for c, n in zip(table.classes, counts, strict=True)},
            "groups": len(set(table.groups)),
            "duration_s": float(sum(durations)),
            "clip_seconds": {"min": float(min(durations)), "max": float(max(durations))},
        }
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
    ) -> Classifier:
        import torch

        from earmark.data.splits import holdout
        from earmark.features.frontend import build_frontend
        from earmark.models.neural import NeuralModel
        from earmark.training import TrainConfig, Trainer, WaveBank

        config = self.train or TrainConfig(seed=self.seed)
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
        spec = registry.get(self.model)
        parts = [train_m, valid_m]
        if spec.semi_supervised:
            parts.append(self._unlabelled_pool(manifest, unlabeled, valid_m))
        banks, skipped = [], []
        for part in parts:
            bank, kept, bad = WaveBank.from_manifest(
                part, self.audio, classes, cache_dir=self.cache_dir, on_file=on_file
            )
            banks.append((bank, kept))
            skipped += bad
        (train_bank, train_y), (valid_bank, valid_y) = banks[:2]
        unlabelled_bank = banks[2][0] if spec.semi_supervised else None
        if train_bank is None or len(set(train_y.tolist())) < 2:
            raise EarmarkError("training needs at least two classes with readable files")
        lengths = train_bank.lengths.float() / self.audio.sample_rate
        if self.audio.duration is None:  # train on clips as long as the longest (max 10 s)
            seconds = min(10.0, math.ceil(float(lengths.max()) * 10) / 10)
            self.audio = dataclasses.replace(self.audio, duration=seconds)
        n_samples = self.audio.n_samples
        torch.manual_seed(config.seed)  # the initial weights
        model = NeuralModel(
            self.model, self.params, len(classes), self.audio.channels, n_bins=self.features.n_bins
        )
        hooks = {"checkpoint_dir": checkpoint_dir, "on_step": on_step, "on_epoch": on_epoch}
        if spec.semi_supervised:
            from earmark.models.sgan import GanSettings, SGANTrainer

            if samples_dir is None and checkpoint_dir is not None:
                samples_dir = Path(checkpoint_dir).parent / SAMPLES_DIR
            gan, _ = GanSettings.split({**spec.defaults, **self.params})
            trainer = SGANTrainer(
                config, gan=gan, unlabelled=unlabelled_bank, samples_dir=samples_dir, **hooks
            )
        else:
            trainer = Trainer(config, **hooks)
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
        self.generator_ = getattr(trainer, "generator", None)
        if self.generator_ is not None:
            self.generator_.to("cpu").eval()
        self.classes_ = list(classes)
        self.clip_seconds_ = self.audio.duration
        self.history_ = result.history
        self.skipped_ = skipped
        counts = torch.bincount(train_y, minlength=len(classes)).tolist()
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

    # -- prediction -------------------------------------------------------------------------

    def _windows(self, y: np.ndarray, sr: int) -> tuple[list[np.ndarray], list[float]]:
        win = max(1, round(self.clip_seconds_ * sr))
        n = y.shape[1]
        if n <= win:
            return [y], [0.0]
        hop = max(1, win // 2)
        starts = list(range(0, n - win + 1, hop))
        if starts[-1] + win < n:  # the tail gets a window aligned to the end
            starts.append(n - win)
        return [y[:, s : s + win] for s in starts], [s / sr for s in starts]

    def _batch(self, segments: list[np.ndarray]) -> np.ndarray:
        """Windows as one float32 ``[n, channels, samples]`` batch of the clip length:
        zeroed once, each window copied in (shorter ones padded as ``audio.pad`` says)."""
        n = self.audio.n_samples or max(s.shape[1] for s in segments)
        fixed = np.zeros((len(segments), segments[0].shape[0], n), dtype=np.float32)
        for row, s in zip(fixed, segments, strict=True):
            if s.shape[1] > n or (s.shape[1] < n and self.audio.pad != "end"):
                s = fix_length(s, n, crop=self.audio.crop, pad=self.audio.pad)
            row[:, : s.shape[1]] = s
        return fixed

    def _window_features(self, segments: list[np.ndarray]) -> np.ndarray:
        sr = self.audio.sample_rate
        if self.features.kind == "handcrafted":
            extractor = self.features.handcrafted(sr)
            return np.stack([extractor(s) for s in segments])
        import torch

        fixed = self._batch(segments)
        key = (self.features.key(), sr)
        if self._frontend is None or self._frontend[0] != key:
            from earmark.features.frontend import build_frontend

            self._frontend = (key, build_frontend(self.features, sr))
        with torch.inference_mode():
            out = self._frontend[1](torch.as_tensor(fixed, dtype=torch.float32)).float().numpy()
        return out if self.family == "neural" else out.reshape(len(out), -1)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(X)

    def _decode(self, path: str) -> tuple[str, np.ndarray | None, str | None]:
        """``path`` decoded and standardized at any length, or the reason it cannot be."""
        try:
            return path, load_clip(path, dataclasses.replace(self.audio, duration=None)), None
        except AudioError as exc:
            return path, None, str(exc)

    def _score(self, clips: list[tuple[str, np.ndarray]], top_k: int) -> list[Prediction]:
        """Predictions for decoded clips, all their windows scored in one batch."""
        sr = self.audio.sample_rate
        cut = [self._windows(y, sr) for _, y in clips]
        scores = self._proba(self._window_features([s for segs, _ in cut for s in segs]))
        out, at = [], 0
        for (path, y), (segs, starts) in zip(clips, cut, strict=True):
            out.append(
                self._pooled(path, y.shape[1] / sr, starts, scores[at : at + len(segs)], top_k)
            )
            at += len(segs)
        return out

    def _pooled(
        self, path: str, duration: float, starts: list[float], scores: np.ndarray, top_k: int
    ) -> Prediction:
        """The prediction of one clip from its window scores (``[windows, classes]``)."""
        pooled = scores.mean(axis=0) if self.pooling == "mean" else scores.max(axis=0)
        order = np.argsort(-pooled)[: max(1, top_k)]
        return Prediction(
            path=path,
            labels=[self.classes_[i] for i in order],
            scores=[float(pooled[i]) for i in order],
            duration=duration,
            window_starts=starts,
            window_scores=scores,
        )

    def predict_file(self, path: str | Path, *, top_k: int = 3) -> Prediction:
        """Classify one file of any length; raises :class:`AudioError` if it is unreadable."""
        self._check_fitted()
        y = load_clip(path, dataclasses.replace(self.audio, duration=None))
        return self._score([(str(path), y)], top_k)[0]

    def predict_files(
        self,
        inputs: str | Path | Manifest | Iterable[str | Path],
        *,
        top_k: int = 3,
        on_file: Callable[[], None] | None = None,
        batch_size: int = 256,
        workers: int | None = None,
    ) -> list[Prediction]:
        """Classify files, folders (every audio file inside) or a manifest. A file that cannot
        be read gives a :class:`Prediction` with ``error`` set; the others go on.

        ``workers`` threads decode ahead of the model (default: half the cores, at most 8)
        and the windows of consecutive files are scored in batches of about ``batch_size``."""
        self._check_fitted()
        paths = input_files(inputs)
        out: list[Prediction | None] = [None] * len(paths)
        group: list[tuple[int, str, np.ndarray]] = []
        n_windows = 0

        def flush() -> None:
            nonlocal group, n_windows
            preds = self._score([(p, y) for _, p, y in group], top_k)
            for (i, _, _), pred in zip(group, preds, strict=True):
                out[i] = pred
                if on_file is not None:
                    on_file()
            group, n_windows = [], 0

        decoded = prefetch_map(self._decode, paths, workers=workers, ahead=2 * batch_size)
        for i, (path, y, error) in enumerate(decoded):
            if error is not None:
                out[i] = Prediction(path=path, error=error)
                if on_file is not None:
                    on_file()
                continue
            group.append((i, path, y))
            n_windows += len(self._windows(y, self.audio.sample_rate)[1])
            if n_windows >= batch_size:
                flush()
        if group:
            flush()
        return [p for p in out if p is not None]

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(
        self, data: Manifest | str | Path, *, on_file: Callable[[], None] | None = None
    ) -> Evaluation:
        """Metrics on the labelled files of ``data``, each file one clip as in training."""
        self._check_fitted()
        table = self.features_of(data, on_file=on_file)
        index = {c: i for i, c in enumerate(self.classes_)}
        unseen = sorted({table.classes[k] for k in table.y} - set(index))
        if unseen:
            raise EarmarkError(f"labels never seen in training: {', '.join(unseen)}")
        y_true = np.array([index[table.classes[k]] for k in table.y])
        from earmark.evaluation import evaluate  # scikit-learn: only when evaluating

        result = evaluate(y_true, self._proba(self._matrix(table)), self.classes_)
        result.skipped = table.skipped
        return result

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
        if self.family == "neural":
            from safetensors.torch import save_file

            state = {
                k: v.detach().cpu().contiguous()
                for k, v in self.estimator_.network.state_dict().items()
            }
            meta["history"] = self.history_
            writers = {_WEIGHTS_FILE: lambda p: save_file(state, p)}
            gen = getattr(self, "generator_", None)
            if gen is not None:  # an sgan's generator, kept for sampling
                from earmark.models.sgan import GENERATOR_FILE

                g_state = {k: v.detach().cpu().contiguous() for k, v in gen.state_dict().items()}
                meta["generator"] = gen.config()
                writers[GENERATOR_FILE] = lambda p: save_file(g_state, p)
        else:
            meta["n_features"] = int(self.estimator_.n_features_in_)
            pipeline = self.estimator_.pipeline_
            writers = {_MODEL_FILE: lambda p: artifact.save_skops(pipeline, p)}
        path = artifact.write_artifact(directory, meta, writers, keep=(CHECKPOINT_DIR, SAMPLES_DIR))
        if self.history_:
            from earmark.report import write_history

            write_history(path, self.history_)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Classifier:
        """Load an artifact directory written by :meth:`save`."""
        meta = artifact.read_meta(directory)
        weights = _WEIGHTS_FILE if meta["family"] == "neural" else _MODEL_FILE
        if meta["family"] not in ("classical", "neural") or weights not in meta["files"]:
            raise artifact.ArtifactError(
                f"{directory}: a {meta['family']} model without its {weights}"
            )
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
            raise artifact.ArtifactError(f"{directory}: invalid settings ({exc})") from None
        clf.classes_ = list(meta["classes"])
        clf.clip_seconds_ = meta.get("clip_seconds")
        clf.training_ = meta.get("training", {})
        clf.metrics_ = meta.get("metrics", {})
        clf.history_ = meta.get("history", [])
        if clf.family == "neural":
            clf.estimator_ = _load_network(clf, Path(directory) / _WEIGHTS_FILE)
            return clf
        from earmark.models.classical import ClassicalModel  # scikit-learn: only when needed

        pipeline = artifact.load_skops(Path(directory) / _MODEL_FILE)
        est = ClassicalModel(clf.model, clf.params, random_state=clf.seed)
        est.pipeline_ = pipeline
        est.classes_ = np.asarray(getattr(pipeline, "classes_", meta["classes"]), dtype=object)
        est.n_features_in_ = int(meta.get("n_features", getattr(pipeline, "n_features_in_", 0)))
        if [str(c) for c in est.classes_] != list(meta["classes"]):
            raise artifact.ArtifactError(f"{directory}: the model's classes differ from its labels")
        clf.estimator_ = est
        return clf


def _semi_supervised() -> list[str]:
    return [n for n in registry.names("neural") if registry.get(n).semi_supervised]


def _load_network(clf: Classifier, path: Path) -> Any:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from earmark.models.neural import NeuralModel

    model = NeuralModel(
        clf.model, clf.params, len(clf.classes_), clf.audio.channels, n_bins=clf.features.n_bins
    )
    try:
        model.network.load_state_dict(load_file(path))
    except (SafetensorError, RuntimeError) as exc:
        raise artifact.ArtifactError(f"{path}: weights do not fit {clf.model} ({exc})") from None
    model.network.eval()
    return model


def load(directory: str | Path) -> Classifier | Any:
    """Load a trained model from its artifact directory (``earmark.load("runs/svm")``): a
    :class:`Classifier`, an :class:`earmark.ensemble.Ensemble` for an ensemble, or an
    :class:`earmark.onnx_model.OnnxClassifier` for an exported ``.onnx`` file."""
    if Path(directory).suffix.lower() == ".onnx":
        from earmark.onnx_model import OnnxClassifier

        return OnnxClassifier.load(directory)
    if artifact.read_meta(directory)["family"] == "ensemble":
        from earmark.ensemble import Ensemble

        return Ensemble.load(directory)
    return Classifier.load(directory)
