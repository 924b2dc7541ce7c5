"""Run an exported ONNX model (:func:`earmark.export.export_onnx`) with onnxruntime.

:class:`OnnxClassifier` is a :class:`earmark.Classifier` whose windows go to an
onnxruntime session as waveforms (the frontend is inside the graph), so prediction from
files, windowing of long audio and pooling are exactly the Classifier's, and nothing here
imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from earmark.audio import AudioConfig
from earmark.classifier import Classifier
from earmark.errors import EarmarkError
from earmark.features.config import FeatureConfig

__all__ = ["OnnxClassifier"]


class OnnxClassifier(Classifier):
    """A classifier backed by an ONNX graph from waveform to probabilities."""

    session: Any = None

    @classmethod
    def load(  # type: ignore[override]
        cls, path: str | Path, *, threads: int | None = None, spin: bool = True
    ) -> OnnxClassifier:
        """Load ``model.onnx`` and the ``earmark.json`` beside it; ``threads``: onnxruntime's
        threads per call (default: its own choice, all cores); ``spin=False``: its worker
        threads sleep between calls instead of busy-waiting (for a server, where those cores
        are needed by the HTTP side between calls)."""
        import onnxruntime as ort

        path = Path(path)
        meta_path = path.parent / "earmark.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EarmarkError(f"{meta_path}: the settings of {path.name} ({exc})") from None
        if meta.get("family") != "onnx" or meta.get("onnx") != path.name:
            raise EarmarkError(f"{meta_path} does not describe {path.name}")
        clf = cls(
            meta["model"],
            features=FeatureConfig.from_dict(meta["features"]),
            audio=AudioConfig.from_dict(meta["audio"]),
            pooling=meta.get("pooling", "mean"),
        )
        clf.family = "onnx"
        clf.classes_ = list(meta["classes"])
        clf.clip_seconds_ = meta.get("clip_seconds")
        clf.metrics_ = meta.get("metrics", {})
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            clf.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise EarmarkError(f"{path}: not a loadable ONNX model ({exc})") from None
        clf.estimator_ = clf.session
        return clf

    def _window_features(self, segments: list[np.ndarray]) -> np.ndarray:
        return self._batch(segments)  # waveforms: the graph computes the features

    def _proba(self, X: np.ndarray, batch_size: int = 64) -> np.ndarray:
        out = [
            self.session.run(["probabilities"], {"waveform": X[i : i + batch_size]})[0]
            for i in range(0, len(X), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)

    def features_of(self, data: Any, *, on_file: Any = None) -> Any:
        """For :meth:`evaluate`: standardized waveforms, the graph's input."""
        import dataclasses

        from earmark.classifier import as_manifest
        from earmark.features.table import compute_features

        manifest = as_manifest(data)
        waves = dataclasses.replace(self.features, kind="waveform")
        return compute_features(
            manifest.subset(manifest.labelled),
            self.audio,
            waves,
            cache_dir=None,
            workers=self.workers,
            on_file=on_file,
        )

    def _matrix(self, table: Any) -> np.ndarray:
        return table.X

    def save(self, directory: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
        raise EarmarkError("an ONNX model is saved by `earmark export`; copy the files instead")
