"""Run an exported ONNX model (:func:`earmark.onnx_export.export_onnx`) with onnxruntime.

:class:`OnnxClassifier` holds the same :class:`earmark.predict.Predictor` as a
:class:`earmark.Classifier`, whose windows go to an onnxruntime session as waveforms (the
frontend is inside the graph): prediction from files, windowing of long audio, pooling,
detection and evaluation are exactly the Classifier's, and nothing here imports torch. The
settings travel inside the ``.onnx`` file (metadata key ``earmark``); files exported before
that read them from the ``earmark.json`` beside them.

An exported file is checked before it is used, like an artifact directory: its SHA-256
(metadata key ``earmark_sha256``, computed over the file with that value zeroed) must match
before onnxruntime parses it; the settings must pass their schema
(:func:`earmark.artifact_schema.validate_onnx_meta`); and the graph must be earmark's shape:
one input ``waveform`` float32 ``[batch, channels, samples]`` and one output
``probabilities`` float32 ``[batch, classes]``. Anything else is one
:class:`~earmark.artifact.ArtifactError` line.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from earmark.artifact import ArtifactError
from earmark.audio import AudioConfig
from earmark.errors import EarmarkError
from earmark.features.config import FeatureConfig
from earmark.predict import Predictor, UsesPredictor
from earmark.preprocess import Preprocessing

__all__ = [
    "CHECKSUM_KEY",
    "EXPORT_VERSION",
    "META_KEY",
    "OnnxClassifier",
    "checksum_field",
    "read_onnx_meta",
    "verify_checksum",
]

#: The ONNX metadata key holding earmark's settings (JSON) inside an exported file.
META_KEY = "earmark"
#: The metadata key holding the file's SHA-256 (hex), computed with this value all zeros.
CHECKSUM_KEY = "earmark_sha256"
#: Exports that carry a checksum say ``export_version`` 2 in their settings (1: earlier).
EXPORT_VERSION = 2
ZERO_DIGEST = "0" * 64


def checksum_field(digest: str) -> bytes:
    """The bytes of the metadata entry ``earmark_sha256 = digest`` as protobuf writes them
    (a ``StringStringEntryProto``: field 1 the key, field 2 the 64-character value), which
    is what export fills in and load finds, without parsing the model."""
    key = CHECKSUM_KEY.encode()
    return b"\x0a" + bytes([len(key)]) + key + b"\x12\x40" + digest.encode("ascii")


_CHECKSUM = re.compile(re.escape(checksum_field("")) + rb"([0-9a-f]{64})")


def verify_checksum(path: Path, data: bytes) -> bool:
    """Whether ``data`` (the file ``path``) carries a checksum; a wrong one is refused."""
    found = _CHECKSUM.findall(data)
    if not found:
        return False
    if len(found) > 1:
        raise ArtifactError(f"{path}: more than one {CHECKSUM_KEY} entry (not an earmark export)")
    digest = found[0].decode()
    blank = data.replace(checksum_field(digest), checksum_field(ZERO_DIGEST), 1)
    if hashlib.sha256(blank).hexdigest() != digest:
        raise ArtifactError(f"{path}: checksum mismatch (modified after export?)")
    return True


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


def _parse_meta(path: Path, text: str | bytes, where: str) -> dict[str, Any]:
    """Settings text (from inside the file, or the ``earmark.json`` beside it) parsed and
    checked against their schema."""
    from earmark.artifact_schema import SchemaError, parse_json, validate_onnx_meta

    try:
        meta = parse_json(text, what="earmark setting")
        validate_onnx_meta(meta)
    except SchemaError as exc:
        raise ArtifactError(f"{path}: {where}: {exc}") from None
    return meta


def _legacy_meta(path: Path) -> dict[str, Any]:
    """Settings of an export from before they went inside the file: ``earmark.json``."""
    from earmark.artifact_schema import MAX_META_BYTES

    meta_path = path.parent / "earmark.json"
    try:
        with meta_path.open("rb") as fh:
            raw = fh.read(MAX_META_BYTES + 1)
    except OSError as exc:
        raise ArtifactError(
            f"{path}: no earmark settings inside it or beside it ({exc.strerror or exc})"
        ) from None
    try:
        head = json.loads(raw)
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("family") != "onnx" or head.get("onnx") != path.name:
        raise ArtifactError(f"{path}: not an earmark export ({meta_path} does not describe it)")
    return _parse_meta(path, raw, str(meta_path))


def _check_graph(path: Path, session: Any, meta: dict[str, Any]) -> None:
    """The graph takes ``waveform`` float32 ``[batch, channels, samples]`` and gives
    ``probabilities`` float32 ``[batch, classes]``, channels and classes as its settings say."""
    channels = meta["audio"].get("channels", 1)
    want = {
        "input": ("waveform", 3, {1: channels}),
        "output": ("probabilities", 2, {1: len(meta["classes"])}),
    }
    for kind, args in (("input", session.get_inputs()), ("output", session.get_outputs())):
        name, rank, dims = want[kind]
        names = [a.name for a in args]
        if names != [name]:
            raise ArtifactError(
                f"{path}: not an earmark graph: its {kind}s are {names}, expected [{name!r}]"
            )
        arg = args[0]
        shape = list(arg.shape)
        if arg.type != "tensor(float)":
            raise ArtifactError(f"{path}: not an earmark graph: {name} is {arg.type}, not float32")
        if len(shape) != rank or any(shape[i] != n for i, n in dims.items()):
            expected = ["batch", channels, "samples"] if kind == "input" else ["batch", dims[1]]
            raise ArtifactError(
                f"{path}: not an earmark graph: {name} has shape {shape}, expected {expected}"
            )
    # The declared shapes may lie: one silent window (at most 10 s) must give one finite
    # probability per class.
    sr = meta["audio"].get("sample_rate", 16_000)
    n = max(1, min(round(float(meta["clip_seconds"]) * sr), 10 * sr))
    try:
        out = session.run(["probabilities"], {"waveform": np.zeros((1, channels, n), np.float32)})
        probe = np.asarray(out[0])
    except Exception as exc:  # onnxruntime's own types
        first = " ".join(str(exc).split())[:200]
        raise ArtifactError(
            f"{path}: not an earmark graph: a silent window fails ({first})"
        ) from None
    if probe.shape != (1, len(meta["classes"])):
        raise ArtifactError(
            f"{path}: not an earmark graph: a silent window gives scores of shape "
            f"{probe.shape}, expected (1, {len(meta['classes'])})"
        )
    if not np.isfinite(probe).all():
        raise ArtifactError(f"{path}: not an earmark graph: a silent window gives NaN scores")


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
            # multi-label: the graph gives per-class sigmoids; thresholds: calibrated ones
            self.multi_label_ = bool(meta.get("multi_label", False))
            self.thresholds_ = dict(meta["thresholds"]) if meta.get("thresholds") else None
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
        # set by earmark.runtimes: the runtime's name (``onnx``, ``int8``), the network
        # without its frontend (a session over spectrograms, for detection's shared frames)
        # and a run's calibration (raw scores -> calibrated ones, as a Classifier applies it)
        self.runtime = "onnx"
        self.frames_session: Any = None
        self.calibration_: Any = None
        self.lanes = 1  # batches scored at once (see load)

    def __repr__(self) -> str:
        return f"OnnxClassifier({self.path.name!r}, {len(self.classes_)} classes)"

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        threads: int | None = None,
        spin: bool = True,
        lanes: int = 1,
    ) -> OnnxClassifier:
        """Load an exported ``.onnx`` file, checked first (see the module's notes);
        ``threads``: onnxruntime's threads per call (default: its own choice, all cores);
        ``spin=False``: its worker threads sleep between calls instead of busy-waiting (for
        a server, where those cores are needed by the HTTP side between calls).
        ``lanes`` > 1: batches are scored that many at once, each on one thread
        (:class:`earmark.predict.Predictor`; ``threads`` is then 1 a call): throughput for
        scans, where one call's work split over threads leaves cores waiting (the demo
        ``cnn``'s int8 network on 2 cores, batches of 256: 185 us a window with 2 threads a
        call, 159 with 2 lanes of one, medians of 6), and the torch frontend of one batch
        runs beside the network of another."""
        from earmark.predict import whole_lanes

        lanes = whole_lanes(lanes)
        if lanes > 1:
            threads = 1
        path = Path(path)
        data = _read(path)
        checked = verify_checksum(path, data)
        session = _session(path, data, threads=threads, spin=spin)
        stored = session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if stored is not None:
            meta = _parse_meta(path, stored, f"metadata {META_KEY!r}")
        else:
            meta = _legacy_meta(path)
        if meta.get("export_version", 1) >= EXPORT_VERSION and not checked:
            raise ArtifactError(f"{path}: its {CHECKSUM_KEY} is missing (modified after export?)")
        if meta.get("input", "waveform") != "waveform":
            raise ArtifactError(f"{path}: a network without its frontend, not a model to load")
        _check_graph(path, session, meta)
        clf = cls(meta, session, path)
        clf.lanes = lanes
        clf._options = {"threads": threads, "spin": spin}
        return clf

    def attach_frames(self, path: str | Path) -> None:
        """Score detection's shared spectrogram frames with the network graph at ``path``
        (:func:`earmark.onnx_export.export_onnx` with ``frontend=False``, of the same model;
        checked: its checksum, its settings' classes and features, one input ``features``)."""
        path = Path(path)
        data = _read(path)
        if not verify_checksum(path, data):
            raise ArtifactError(f"{path}: its {CHECKSUM_KEY} is missing (modified after export?)")
        session = _session(path, data, **getattr(self, "_options", {}))
        stored = session.get_modelmeta().custom_metadata_map.get(META_KEY)
        meta = _parse_meta(path, stored or "null", f"metadata {META_KEY!r}")
        same = (
            meta.get("input") == "features"
            and [str(c) for c in meta["classes"]] == self.classes_
            and FeatureConfig.from_dict(meta["features"]) == self.features
            and [a.name for a in session.get_inputs()] == ["features"]
            and [a.name for a in session.get_outputs()] == ["probabilities"]
        )
        if not same:
            raise ArtifactError(f"{path}: not the frontend-less graph of {self.path.name}")
        self.frames_session = session

    @property
    def predictor(self) -> Predictor:
        """Windows -> scores -> pooling with this graph (``pooling`` may be changed)."""
        score, frames = self.run, (self.run_frames if self.frames_session is not None else None)
        thresholds = self.thresholds_
        cal = self.calibration_
        if cal is not None:  # calibrated scores for every window; its thresholds on them
            score = cal.wrap(score)
            frames = cal.wrap(frames) if frames is not None else None
            thresholds = dict(cal.thresholds) if cal.thresholds else thresholds
        return Predictor(
            self.preprocessing,
            self.classes_,
            score,
            pooling=self.pooling,
            multi_label=self.multi_label_,
            thresholds=thresholds,
            frames_score=frames,
            lanes=self.lanes,
        )

    def run(self, waveforms: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Probabilities ``[n, classes]`` of standardized windows ``[n, channels, samples]``."""
        X = np.asarray(waveforms, dtype=np.float32)
        out = [
            self.session.run(["probabilities"], {"waveform": X[i : i + batch_size]})[0]
            for i in range(0, len(X), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)

    def run_frames(self, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities ``[n, classes]`` of spectrogram windows ``[n, channels, bins,
        frames]`` (the torch frontend's), with the frontend-less graph
        (:meth:`attach_frames`)."""
        X = np.asarray(features, dtype=np.float32)
        out = [
            self.frames_session.run(["probabilities"], {"features": X[i : i + batch_size]})[0]
            for i in range(0, len(X), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise ArtifactError(f"{path}: no such ONNX file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _session(path: Path, data: bytes, *, threads: int | None = None, spin: bool = True) -> Any:
    """An onnxruntime CPU session over the model bytes ``data`` (read from ``path``);
    ``threads``: intra-op threads (default: onnxruntime's choice, all cores); ``spin=False``:
    its threads sleep between calls instead of busy-waiting."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a bad file
        first = " ".join(str(exc).split())[:200]
        raise ArtifactError(f"{path}: not a loadable ONNX model ({first})") from None
