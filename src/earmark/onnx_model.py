"""Run an exported ONNX model (:func:`earmark.onnx_export.export_onnx`) with onnxruntime.

:class:`OnnxClassifier` holds the same :class:`earmark.predict.Predictor` as a
:class:`earmark.Classifier`, whose windows go to an onnxruntime session as waveforms (the
frontend is inside the graph): prediction from files, windowing of long audio, pooling,
detection and evaluation are exactly the Classifier's, and nothing here imports torch. The
settings travel inside the ``.onnx`` file (metadata key ``earmark``); files exported before
that read them from the ``earmark.json`` beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from earmark.audio import AudioConfig
from earmark.errors import EarmarkError
from earmark.features.config import FeatureConfig
from earmark.predict import Predictor, UsesPredictor
from earmark.preprocess import Preprocessing

__all__ = ["META_KEY", "OnnxClassifier", "read_onnx_meta"]

#: The ONNX metadata key holding earmark's settings (JSON) inside an exported file.
META_KEY = "earmark"


def read_onnx_meta(path: str | Path) -> dict[str, Any] | None:
    """earmark's settings stored inside an ``.onnx`` file, or ``None`` when it holds none
    (not an earmark export, or not ONNX at all)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx raises its own types (DecodeError...) for a foreign file
        return None
    for prop in proto.metadata_props:
        if prop.key == META_KEY:
            try:
                meta = json.loads(prop.value)
            except ValueError:
                return None
            return meta if isinstance(meta, dict) else None
    return None


def _legacy_meta(path: Path) -> dict[str, Any]:
    """Settings of an export from before they went inside the file: ``earmark.json``."""
    meta_path = path.parent / "earmark.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EarmarkError(f"{path}: no earmark settings inside it or beside it ({exc})") from None
    if not isinstance(meta, dict) or meta.get("family") != "onnx" or meta.get("onnx") != path.name:
        raise EarmarkError(f"{path}: not an earmark export ({meta_path} does not describe it)")
    return meta


class OnnxClassifier(UsesPredictor):
    """A classifier backed by an ONNX graph from waveform to probabilities."""

    family = "onnx"

    def __init__(self, meta: dict[str, Any], session: Any, path: Path) -> None:
        try:
            self.model = str(meta["model"])
            self.classes_ = [str(c) for c in meta["classes"]]
            self.audio = AudioConfig.from_dict(meta["audio"])
            self.features = FeatureConfig.from_dict(meta["features"])
            self.clip_seconds_ = float(meta["clip_seconds"])
            self.pooling = meta.get("pooling", "mean")
            self.preprocessing = Preprocessing(
                self.audio, self.features, self.clip_seconds_, featurize=False
            )
            if self.pooling not in ("mean", "max"):
                raise ValueError(f"pooling must be mean or max, got {self.pooling!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise EarmarkError(f"{path}: invalid earmark settings ({exc})") from None
        self.metrics_ = meta.get("metrics", {})
        self.session = session
        self.path = path

    def __repr__(self) -> str:
        return f"OnnxClassifier({self.path.name!r}, {len(self.classes_)} classes)"

    @classmethod
    def load(
        cls, path: str | Path, *, threads: int | None = None, spin: bool = True
    ) -> OnnxClassifier:
        """Load an exported ``.onnx`` file; ``threads``: onnxruntime's threads per call
        (default: its own choice, all cores); ``spin=False``: its worker threads sleep between
        calls instead of busy-waiting (for a server, where those cores are needed by the HTTP
        side between calls)."""
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise EarmarkError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise EarmarkError(f"{path}: not a loadable ONNX model ({exc})") from None
        stored = session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if stored is not None:
            try:
                meta = json.loads(stored)
            except ValueError as exc:
                raise EarmarkError(f"{path}: unreadable earmark settings ({exc})") from None
        else:
            meta = _legacy_meta(path)
        if not isinstance(meta, dict):
            raise EarmarkError(f"{path}: unreadable earmark settings")
        names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        if names != (["waveform"], ["probabilities"]):
            raise EarmarkError(f"{path}: not an earmark graph (inputs/outputs {names})")
        return cls(meta, session, path)

    @property
    def predictor(self) -> Predictor:
        """Windows -> scores -> pooling with this graph (``pooling`` may be changed)."""
        return Predictor(self.preprocessing, self.classes_, self.run, pooling=self.pooling)

    def run(self, waveforms: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Probabilities ``[n, classes]`` of standardized windows ``[n, channels, samples]``."""
        X = np.asarray(waveforms, dtype=np.float32)
        out = [
            self.session.run(["probabilities"], {"waveform": X[i : i + batch_size]})[0]
            for i in range(0, len(X), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)
