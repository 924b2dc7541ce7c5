"""Decision-level ensembles of trained models, neural or classical.

Each member scores a file with its own audio and feature settings; the ensemble combines the
members' class probabilities by their ``mean``, a ``weighted`` mean, or a majority ``vote``
(each member's top class counts once; the vote share is the score, mean probability breaks
ties). Members must know the same classes (in any order); weights are finite, non-negative
numbers, not all zero (checked when an ensemble is made and when it is loaded). An ensemble
is saved as an artifact of its own, with copies of its members inside (``members/<name>``),
and loads with ``earmark.load``: a member named by a path, or resolving outside the
ensemble's folder, is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

import earmark
from earmark import artifact
from earmark.classifier import Classifier
from earmark.data.manifest import Manifest
from earmark.detection.windows import Windowing
from earmark.errors import EarmarkError, ParameterError
from earmark.predict import (
    FileScores,
    Prediction,
    ScoreTrack,
    input_files,
    pooled_scores,
    top_labels,
)

__all__ = ["Ensemble"]

Method = Literal["mean", "weighted", "vote"]
_MEMBERS = "members"


class Ensemble(FileScores):
    """Combine ``members`` (trained :class:`Classifier` objects) by ``method``."""

    family = "ensemble"

    def __init__(
        self,
        members: Sequence[Classifier],
        *,
        method: Method = "mean",
        weights: Sequence[float] | None = None,
    ) -> None:
        if not members:
            raise ParameterError("an ensemble needs at least one member")
        if method not in ("mean", "weighted", "vote"):
            raise ParameterError(f"method must be mean, weighted or vote, got {method!r}")
        classes = sorted(members[0].classes_)
        for m in members[1:]:
            if sorted(m.classes_) != classes:
                raise EarmarkError(
                    f"members know different classes: {sorted(m.classes_)} vs {classes}"
                )
        if method == "weighted" and weights is None:
            raise ParameterError("weighted needs one non-negative weight per member")
        if weights is not None:
            from earmark.artifact_schema import SchemaError, check_weights

            try:  # NaN, infinite, negative or all-zero weights would score NaN silently
                weights = check_weights(weights, len(members))
            except SchemaError as exc:
                raise ParameterError(str(exc)) from None
        self.members = list(members)
        self.method: Method = method
        self.weights = [float(w) for w in weights] if weights is not None else None
        self.classes_ = classes
        self.metrics_: dict[str, Any] = {}
        self.model = f"ensemble({', '.join(m.model for m in members)})"

    def __repr__(self) -> str:
        return f"Ensemble({len(self.members)} members, method={self.method!r})"

    def aligned(self, member: Classifier, scores: np.ndarray) -> np.ndarray:
        """``member``'s scores (``[..., classes]`` in its class order) in the ensemble's."""
        order = [member.classes_.index(c) for c in self.classes_]
        return scores[..., order]

    def combine(self, scores: Sequence[np.ndarray]) -> np.ndarray:
        """Combine the members' probabilities (each ``[n, classes]``, ensemble class order)."""
        stack = np.stack(scores)  # [members, n, classes]
        if self.method == "mean":
            return stack.mean(axis=0)
        if self.method == "weighted":
            w = np.asarray(self.weights)[:, None, None]
            return (stack * w).sum(axis=0) / w.sum()
        votes = np.zeros(stack.shape[1:])
        rows = np.arange(stack.shape[1])
        for member in stack:
            votes[rows, member.argmax(axis=1)] += 1
        share = votes / len(stack)
        return share + 1e-6 * stack.mean(axis=0)  # ties go to the higher mean probability

    # -- the Classifier interface -----------------------------------------------------------

    def predict_file(self, path: str | Path, *, top_k: int = 3) -> Prediction:
        """Classify one file: every member scores it, the scores are combined; raises
        :class:`AudioError` if a member cannot read it."""
        pred = self.predict_files([path], top_k=top_k)[0]
        pred.raise_error()
        return pred

    def predict_files(
        self,
        inputs: str | Path | Manifest | Iterable[str | Path],
        *,
        top_k: int = 3,
        on_file: Callable[[], None] | None = None,
        batch_size: int = 256,
        workers: int | None = None,
    ) -> list[Prediction]:
        """As :meth:`Classifier.predict_files` (each member predicts in batches, then the
        scores are combined per file); a file any member cannot read gives an ``error``."""
        paths = input_files(inputs)
        # a manifest goes to the members as it is: its segment rows stay segments
        given = inputs if isinstance(inputs, Manifest) else paths
        runs = [
            m.predict_files(given, top_k=len(m.classes_), batch_size=batch_size, workers=workers)
            for m in self.members
        ]
        out = []
        for k, path in enumerate(paths):
            preds = [run[k] for run in runs]
            failed = next((p.error for p in preds if p.error is not None), None)
            if failed is not None:
                out.append(Prediction(path=path, error=failed))
            else:
                scores = [
                    self.aligned(m, pooled_scores([p], m.classes_))
                    for m, p in zip(self.members, preds, strict=True)
                ]
                combined = self.combine(scores)[0]
                out.append(
                    top_labels(
                        path,
                        self.classes_,
                        combined,
                        top_k,
                        duration=preds[0].duration,
                        starts=[0.0],
                        window_scores=combined[None],
                    )
                )
            if on_file is not None:
                on_file()
        return out

    def score_track(
        self,
        path: str | Path,
        windowing: Windowing | None = None,
        *,
        on_block: Callable[[float], None] | None = None,
        blocks: Any = None,
        **kw: Any,
    ) -> ScoreTrack:
        """Every member scores the same windows of a long recording (each decoding it at its
        own rate; the window defaults to the first member's clip length); the tracks are
        combined window by window."""
        windowing = windowing or Windowing()
        if windowing.window is None:  # members may differ in clip length
            clip = self.members[0].preprocessing.window_seconds
            windowing = dataclasses.replace(windowing, window=clip)
        tracks = [
            m.score_track(path, windowing, on_block=on_block if i == 0 else None, **kw)
            for i, m in enumerate(self.members)
        ]
        aligned = [self.aligned(m, t.scores) for m, t in zip(self.members, tracks, strict=True)]
        first = tracks[0]
        return dataclasses.replace(
            first, classes=list(self.classes_), scores=self.combine(aligned).astype(np.float32)
        )

    # -- artifact ---------------------------------------------------------------------------

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        """An artifact holding ``earmark.json`` and a copy of every member under ``members/``."""
        first = self.members[0]
        meta = {
            "schema_version": artifact.SCHEMA_VERSION,
            "earmark_version": earmark.__version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "family": "ensemble",
            "model": self.model,
            "method": self.method,
            "weights": self.weights,
            "classes": self.classes_,
            "audio": first.audio.to_dict(),
            "features": first.features.to_dict(),
            "member_names": [f"{i}-{m.model}" for i, m in enumerate(self.members)],
            "metrics": self.metrics_,
            **(extra or {}),
        }

        def write_members(path: Path) -> None:
            path.mkdir()
            for name, m in zip(meta["member_names"], self.members, strict=True):
                m.save(path / name)

        return artifact.write_artifact(directory, meta, {_MEMBERS: write_members})

    @classmethod
    def load(cls, directory: str | Path) -> Ensemble:
        """Load an ensemble artifact. Its members are the artifacts ``members/<name>`` inside
        it, each named by a plain name in ``member_names`` (:func:`earmark.artifact.read_meta`
        refuses an absolute path, ``..`` or a separator) that must resolve inside the
        ensemble (a symbolic link out of it is refused), and each loads as a
        :class:`Classifier` (validated on its own); the weights are checked again."""
        directory = Path(directory)
        meta = artifact.read_meta(directory)
        if meta["family"] != "ensemble":
            raise artifact.ArtifactError(f"{directory}: not an ensemble")
        folder = artifact.inside(directory, directory / _MEMBERS, f"{_MEMBERS}/")
        members = []
        for name in meta["member_names"]:
            path = artifact.inside(directory, folder / name, f"member {name!r}")
            if not path.is_dir():
                raise artifact.ArtifactError(f"{directory}: member {_MEMBERS}/{name} is missing")
            members.append(Classifier.load(path))
        try:
            ens = cls(members, method=meta["method"], weights=meta.get("weights"))
        except EarmarkError as exc:
            raise artifact.ArtifactError(f"{directory}: {exc}") from None
        if ens.classes_ != sorted(meta["classes"]):
            raise artifact.ArtifactError(
                f"{directory}: its members' classes differ from those of its earmark.json"
            )
        ens.metrics_ = meta.get("metrics", {})
        return ens

    @classmethod
    def from_runs(
        cls,
        runs: Sequence[str | Path],
        *,
        method: Method = "mean",
        weights: Sequence[float] | None = None,
    ) -> tuple[Ensemble, dict[str, Any]]:
        """An ensemble of saved models and the split record they share (if they do), so
        ``earmark evaluate`` scores the ensemble on the members' held-out files."""
        members = [Classifier.load(r) for r in runs]
        records = [artifact.read_meta(r).get("data") for r in runs]
        shared = (
            records[0]
            if records[0] and all(r and r.get("split") == records[0].get("split") for r in records)
            else None
        )
        return cls(members, method=method, weights=weights), ({"data": shared} if shared else {})
