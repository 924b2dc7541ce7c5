"""Where a trained network runs: torch, its ONNX export, or that export quantized to int8.

``detect``, ``predict`` and ``serve`` take ``--runtime torch|onnx|int8``; :func:`load_runtime`
gives the model to use, with one interface whatever the runtime (a
:class:`earmark.Classifier`, or an :class:`earmark.onnx_model.OnnxClassifier` sharing its
:class:`earmark.predict.Predictor`).

- ``onnx``: the run's network exported (:func:`earmark.onnx_export.export_onnx`) once and
  kept in the cache folder under the SHA-256 of the run's ``earmark.json`` (which holds the
  weights' checksum), written atomically: later runs load it without torch exporting
  anything. Beside it, the same network without its frontend (for spectral features), so
  ``detect`` computes the frames that overlapping windows share once, with the torch
  frontend, as the torch runtime does: the network sees the same features.
- ``int8``: both graphs quantized with onnxruntime's static quantization (QDQ, per-channel
  int8 weights in 7 bits, uint8 activations, min-max ranges over a few calibration windows);
  7 bits (``reduce_range``) because x86 CPUs with AVX2 but without VNNI (AMD EPYC before
  Zen 4, Intel before Cascade Lake) multiply uint8 by int8 with ``vpmaddubsw``, whose sums
  of two products saturate at int16. On such a machine (AMD EPYC, AVX2 only), with 8-bit
  weights the demo ``cnn``'s int8 scan found 15 of torch's 39 events in the benchmark's hour
  and an event F1 of 0.79 on the scenes (torch: 0.95); with 7 bits the same 39 events and
  F1, at about the same speed (1,393x vs 1,483x real time cold, 1,595x vs 1,457x warm); the
  frontend inside the waveform graph stays float (its DFT and dB scale need the range), and
  so do the linear head and the softmax (a few hundred operations a window).
  Before quantizing, each average pooling of the network becomes the depthwise convolution
  it equals (:func:`pools_as_convolutions`): onnxruntime's ``QLinearAveragePool`` took 30-45%
  of the demo ``cnn``'s int8 time (96-139 us of 320-400 us a window, one thread), its
  depthwise ``QLinearConv`` about a seventh of that; a 2x2 pooling that rounds up (PyTorch's
  ``ceil_mode``) is an edge padding first, done on the uint8 values (:func:`integer_pads`).
  The rewritten graph is also closer to the float network: on 256 windows of the demo
  detector's hour, scores within 0.03 of float's (0.19 with onnxruntime's own pooling).
  Static, not dynamic: onnxruntime's dynamic quantization turns each convolution into a
  ``ConvInteger`` that quantizes its input at every call, measured 5x *slower* than float
  on the demo detector's ``cnn`` (the network alone: 4.1 ms vs 0.83 ms a window, one
  thread), where static quantization's ``QLinearConv`` ran 2x faster (0.43 ms) with the
  same top class on all 256 windows. The calibration windows come from the run's training
  data when its folder is still there, else from the audio given (the recordings being
  scanned); the quantized files are cached under those windows' digest too, and without
  the training data the first export made from scanned audio serves every later scan.

A run's calibration (``calibration.json``, :mod:`earmark.calibration`) is applied to the
ONNX scores exactly as the torch runtime applies it, unless ``calibration=False``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earmark.errors import AudioError, EarmarkError, ParameterError
from earmark.prefetch import usable_cores

__all__ = [
    "RUNTIMES",
    "calibration_windows",
    "integer_pads",
    "load_runtime",
    "pools_as_convolutions",
    "quantize_onnx",
]

RUNTIMES = ("torch", "onnx", "int8")
#: Bumped when the exported graphs or their quantization change, so older cached files are
#: not reused.
CACHE_VERSION = 3  # 3: 7-bit weights
#: Calibration windows for static quantization (min-max ranges): a few per class of the
#: training data, about what onnxruntime's examples calibrate on.
CALIBRATION_WINDOWS = 64
#: Lanes by default at most (each holds a batch's features and onnxruntime's activations,
#: about 50 MB for the demo ``cnn``); more with ``threads``.
MAX_LANES = 16
#: A temporary export file older than this (seconds) is one a killed process left: removed.
#: (An export or quantization takes seconds.)
STALE_SECONDS = 3600.0
_FRONTEND_PREFIX = "/frontend/"  # torch's exporter names the frontend's nodes so


def load_runtime(
    run: str | Path,
    runtime: str = "torch",
    *,
    calibration: bool = True,
    threads: int | None = None,
    spin: bool = True,
    cache_dir: str | Path | None = None,
    calibration_data: Sequence[str | Path] = (),
    lanes: int | None = None,
) -> Any:
    """The model at ``run`` (a run directory, or an exported ``.onnx`` file) ready to run on
    ``runtime`` (see the module's notes). ``threads``: onnxruntime's intra-op threads (the
    torch runtime's are the caller's to set); ``spin=False``: they sleep between calls (a
    server). ``lanes`` (onnx, int8): batches scored at once, each on one thread
    (:meth:`earmark.onnx_model.OnnxClassifier.load`); default: ``threads`` lanes, or one
    per usable core (at most :data:`MAX_LANES`), for scans; 1 with ``spin=False`` (a
    server scores each request with ``threads`` threads). ``cache_dir``: where exports are
    kept (default :func:`earmark.cache.default_cache_dir`). ``calibration_data``: audio
    files to calibrate int8 ranges on when the run's training data is gone. Raises
    :class:`ParameterError` (one line) for a model a runtime cannot run."""
    from earmark.onnx_model import OnnxClassifier

    if runtime not in RUNTIMES:
        raise ParameterError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if lanes is None:
        lanes = 1 if not spin else (threads or min(usable_cores(), MAX_LANES))
    run = Path(run)
    if run.suffix.lower() == ".onnx" and not run.is_dir():  # (a run directory may be x.onnx)
        if runtime == "int8":
            raise ParameterError(
                f"{run}: --runtime int8 quantizes a run directory's network; give the run "
                "directory, not an exported file"
            )
        # an export runs on onnxruntime anyway
        return OnnxClassifier.load(run, threads=threads, spin=spin, lanes=lanes)
    from earmark.loading import load

    model = load(run, calibration=calibration)
    if runtime == "torch":
        return model
    if getattr(model, "family", None) != "neural":
        what = "an ensemble" if hasattr(model, "members") else f"a {model.family} model"
        raise ParameterError(
            f"{run}: --runtime {runtime} runs one network; this is {what} (use --runtime torch)"
        )
    from earmark.cache import default_cache_dir

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = folder / "onnx" / _run_digest(run)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale(folder)
        graph, frames = _exports(model, folder)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    if runtime == "int8":
        try:
            graph, frames = _int8_exports(model, run, folder, graph, frames, calibration_data)
        except OSError as exc:
            raise _unwritable(folder, exc) from None
    onnx_model = OnnxClassifier.load(graph, threads=threads, spin=spin, lanes=lanes)
    if frames is not None:
        onnx_model.attach_frames(frames)
    onnx_model.runtime = runtime
    onnx_model.calibration_ = getattr(model, "calibration_", None)
    return onnx_model


def _int8_exports(
    model: Any,
    run: Path,
    folder: Path,
    graph: Path,
    frames: Path | None,
    files: Sequence[str | Path],
) -> tuple[Path, Path | None]:
    """The int8 twins of ``graph`` and ``frames`` in ``folder``: quantized on the run's
    training windows (named by their digest: the same files every time); without readable
    training data, the int8 export an earlier scan made for this run from its audio when
    there is one (so a run scores alike whatever is scanned, and the cache holds one such
    export, not one per call), else one calibrated on ``files``."""
    try:
        windows = calibration_windows(model, run)  # the training data alone
    except ParameterError:
        earlier = _earlier_int8(folder, frames is not None)
        if earlier is not None:
            return earlier
        windows = calibration_windows(model, run, files)
    tag = hashlib.blake2b(windows.tobytes(), digest_size=8).hexdigest()
    graph = _quantized(graph, folder / f"model-int8-{tag}.onnx", windows, model)
    if frames is not None:
        frames = _quantized(frames, folder / f"frames-int8-{tag}.onnx", windows, model)
    return graph, frames


def _earlier_int8(folder: Path, with_frames: bool) -> tuple[Path, Path | None] | None:
    """The newest intact int8 export in ``folder`` (with its frontend-less twin when
    ``with_frames``), or ``None``."""

    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:  # (removed meanwhile by another process: skipped below)
            return 0.0

    for graph in sorted(folder.glob("model-int8-*.onnx"), key=mtime, reverse=True):
        tag = graph.stem.removeprefix("model-int8-")
        frames = folder / f"frames-int8-{tag}.onnx" if with_frames else None
        if _usable(graph) and (frames is None or _usable(frames)):
            return graph, frames
    return None


def _remove_stale(folder: Path) -> None:
    """Remove the temporary files (``.model.*.onnx``: :func:`earmark.atomic.atomic_write`'s)
    that an export killed halfway left in ``folder``, once older than
    :data:`STALE_SECONDS` (a younger one may be another process's export under way)."""
    import time

    now = time.time()
    for tmp in folder.glob(".*.onnx"):
        try:
            if now - tmp.stat().st_mtime > STALE_SECONDS:
                tmp.unlink()
        except FileNotFoundError:
            pass  # (its process finished or removed it meanwhile)


def _unwritable(folder: Path, exc: OSError) -> EarmarkError:
    """The one line for a cache folder the export cannot be written into (missing rights,
    a file in the way, a full disk): the folder, the system's reason, the way out."""
    return EarmarkError(
        f"cannot keep the ONNX export in {folder} ({exc.strerror or exc}): set "
        "EARMARK_CACHE to a writable folder"
    )


def _run_digest(run: Path) -> str:
    """What names a run's cached exports: the SHA-256 of its ``earmark.json`` (the
    settings, and the checksum of every file, weights included) and :data:`CACHE_VERSION`."""
    from earmark import artifact

    data = (run / artifact.META_FILE).read_bytes()
    return hashlib.sha256(data + f"|{CACHE_VERSION}".encode()).hexdigest()[:32]


def _exports(model: Any, folder: Path) -> tuple[Path, Path | None]:
    """The run's waveform graph and, for spectral features, its frontend-less twin, exported
    into ``folder`` unless a complete earlier export is there."""
    from earmark.onnx_export import export_onnx
    from earmark.preprocess import SPECTRAL_KINDS

    graph = folder / "model.onnx"
    if not _usable(graph):
        export_onnx(model, graph, overwrite=True)
    if model.features.kind not in SPECTRAL_KINDS:
        return graph, None
    frames = folder / "frames.onnx"
    if not _usable(frames):
        export_onnx(model, frames, overwrite=True, frontend=False)
    return graph, frames


def _usable(path: Path) -> bool:
    """Whether a cached file is an intact earmark export (checksum verified); a damaged one
    is removed, to be written again (never an error)."""
    from earmark.artifact import ArtifactError
    from earmark.onnx_model import verify_checksum

    if not path.is_file():
        return False
    try:
        if verify_checksum(path, path.read_bytes()):
            return True
    except (ArtifactError, OSError):
        pass
    path.unlink(missing_ok=True)  # the cache's own file: written again
    return False


def calibration_windows(
    model: Any, run: str | Path | None = None, files: Sequence[str | Path] = ()
) -> np.ndarray:
    """Float32 ``[n, channels, samples]`` windows (at most :data:`CALIBRATION_WINDOWS`) to
    calibrate int8 ranges on: clips of the run's training data when its folder (``data.root``
    in ``earmark.json``; a relative one as :func:`_training_root` finds it) is still
    readable, a few per class; else (no folder, or none of its audio readable) windows cut
    from ``files`` (the audio the model is about to score), spread over them. Raises
    :class:`ParameterError` when neither gives a window."""
    prep = model.preprocessing
    training = _training_files(run) if run is not None else []
    given = [str(f) for f in files]
    if not training and not given:
        recorded = _recorded_root(run) if run is not None else None
        where = f" ({recorded})" if recorded else ""
        raise ParameterError(
            f"--runtime int8 calibrates on audio: the run's training data{where} is not there "
            "and no audio was given"
        )
    first: str | None = None  # the first file that could not be read, and why
    for sources in (training, given):  # training data unreadable: the audio given
        if not sources:
            continue
        out, problem = _cut_windows(prep, sources)
        if out:
            return np.stack(out).astype(np.float32)
        first = first or problem
    tried = len(training) + len(given)
    raise ParameterError(
        f"--runtime int8 calibrates on audio: none of the {tried} files tried could be read "
        f"({first})"
    )


def _cut_windows(prep: Any, sources: Sequence[str]) -> tuple[list[np.ndarray], str | None]:
    """Up to :data:`CALIBRATION_WINDOWS` windows spread over ``sources`` (unreadable ones
    skipped: the scan reports them), and the first file that could not be read with why."""
    per_file = max(1, math.ceil(CALIBRATION_WINDOWS / len(sources)))
    window = prep.window
    out: list[np.ndarray] = []
    problem = None
    for path in sources:
        if len(out) >= CALIBRATION_WINDOWS:
            break
        try:
            signal = prep.read(path, duration=per_file * prep.window_seconds)
        except (AudioError, OSError) as exc:
            problem = problem or (str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            continue
        n = max(1, min(per_file, signal.shape[1] // window))
        segments = [signal[:, k * window : (k + 1) * window] for k in range(n)]
        out.extend(prep.prepare(segments)[: CALIBRATION_WINDOWS - len(out)])
    return out, problem


def _recorded_root(run: str | Path) -> str | None:
    """The training data's folder as the run records it (``data.root``), or ``None``."""
    from earmark.artifact import ArtifactError, read_meta

    try:
        root = (read_meta(run).get("data") or {}).get("root")
    except (ArtifactError, EarmarkError, AttributeError, OSError):
        return None
    return root if isinstance(root, str) and root else None


def _training_root(run: str | Path) -> Path | None:
    """The run's training data folder, or ``None`` when it is gone. A relative
    ``data.root`` is relative to where training ran (``earmark train data/ -o runs/x``
    records ``data``): the working directory when that is still it, else the first folder
    above the run holding it, so a scan from elsewhere calibrates on the same data."""
    recorded = _recorded_root(run)
    if recorded is None:
        return None
    root = Path(recorded)
    if root.is_dir():
        return root
    if root.is_absolute():
        return None
    try:
        parents = Path(run).resolve().parents
    except OSError:
        return None
    return next((base / root for base in parents if (base / root).is_dir()), None)


def _training_files(run: str | Path) -> list[str]:
    """Up to a few files per class of the run's training data (sorted: the same every
    time), or ``[]`` when the run does not say where it is or it is gone."""
    from earmark import data
    from earmark.artifact import ArtifactError, read_meta

    try:
        meta = read_meta(run)
        record = meta.get("data") or {}
        root = _training_root(run)
        if root is None:
            return []
        manifest = data.load(root, layout=record.get("layout", "auto"))
    except (ArtifactError, EarmarkError, KeyError, TypeError, OSError):
        return []
    frame = manifest.frame.dropna(subset=["label"]).sort_values("filepath")
    per_class = max(1, CALIBRATION_WINDOWS // max(1, frame["label"].nunique()))
    picked = frame.groupby("label", sort=True).head(per_class)["filepath"].tolist()
    return [p if Path(p).is_absolute() else str(Path(manifest.root or root) / p) for p in picked]


def _quantized(src: Path, dst: Path, windows: np.ndarray, model: Any) -> Path:
    """``src`` quantized to ``dst`` (unless an intact one is there), calibrated on
    ``windows``; a frontend-less graph calibrates on their spectrograms."""
    if _usable(dst):
        return dst
    from earmark.onnx_model import read_onnx_meta

    meta = read_onnx_meta(src) or {}
    inputs = windows
    if meta.get("input") == "features":
        inputs = model.preprocessing.features_of(windows, flat=False)
    return quantize_onnx(src, dst, inputs)


def quantize_onnx(src: str | Path, dst: str | Path, calibration: np.ndarray) -> Path:
    """Write ``src`` (an earmark export) quantized to int8 at ``dst``, atomically: static QDQ
    quantization (per-channel int8 weights, uint8 activations) with min-max ranges observed
    on ``calibration`` (a batch of the graph's input); the frontend, the linear head and the
    output's softmax or sigmoid stay float. The settings travel in the file as in ``src``,
    with ``"quantization"`` added, under a new checksum."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    from earmark.atomic import atomic_write
    from earmark.onnx_export import stamped
    from earmark.onnx_model import read_onnx_meta

    src, dst = Path(src), Path(dst)
    meta = read_onnx_meta(src)
    if meta is None:
        raise ParameterError(f"{src}: not an earmark export")
    proto = onnx.load(str(src))
    name = proto.graph.input[0].name
    # float: the frontend (its DFT and dB scale need the range), the linear head and the
    # softmax / sigmoid (uint8 logits or probabilities would move scores by steps of ~0.005
    # to 0.1, for no speed: they are a few hundred multiplications a window)
    keep = [
        n.name
        for n in proto.graph.node
        if n.name.startswith(_FRONTEND_PREFIX) or n.op_type in ("Gemm", "Softmax", "Sigmoid")
    ]

    class Reader(CalibrationDataReader):
        """The calibration batch in slices of 16 (min-max is the same either way)."""

        def __init__(self) -> None:
            self.batches = iter(range(0, len(calibration), 16))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self.batches, None)
            return None if i is None else {name: calibration[i : i + 16].astype(np.float32)}

    meta["quantization"] = {
        "method": "static",
        "format": "QDQ",
        "weights": "int8 per channel, 7 bits (reduce_range)",
        "activations": "uint8",
        "calibration": "minmax",
        "windows": len(calibration),
    }

    pools_as_convolutions(proto, skip=keep)

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as work:
            plain = Path(work) / "plain.onnx"
            del proto.metadata_props[:]  # a new checksum is computed below
            onnx.save(proto, str(plain))
            root = logging.getLogger()  # onnxruntime's notes on every node, silenced
            level = root.level
            root.setLevel(logging.ERROR)
            try:
                _quantize(plain, tmp, Reader(), keep)
            finally:
                root.setLevel(level)
        quantized = onnx.load(str(tmp))
        integer_pads(quantized)
        tmp.write_bytes(stamped(quantized, meta, tmp))

    return atomic_write(dst, write)


def _quantize(plain: Path, out: Path, reader: Any, keep: list[str]) -> None:
    """onnxruntime's static quantization of ``plain`` to ``out`` (see :func:`quantize_onnx`),
    the nodes named in ``keep`` left float."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantize_static(
        str(plain),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=keep,
    )


def pools_as_convolutions(proto: Any, *, skip: Sequence[str] = ()) -> int:
    """Rewrite in place each 2-D ``AveragePool`` of ``proto`` (an ONNX model) whose kernel
    is its stride, without padding, as the depthwise ``Conv`` it equals (weights ``1 /
    kernel area``, one group per channel); one that rounds its output size up (``ceil_mode``,
    a 2x2 kernel only) first pads the last row and column with copies of their neighbours
    (``Pad``, mode ``edge``): a border window then averages its real values, as the pooling
    does. Nodes named in ``skip`` and poolings whose channel count is not known stay.
    Returns the number rewritten. Equal in float to rounding (checked in the tests); it is
    for quantization, where onnxruntime runs the convolution 7x faster than the pooling."""
    import onnx
    from onnx import helper, numpy_helper

    shapes = onnx.shape_inference.infer_shapes(proto)
    channels: dict[str, int] = {}
    for info in [*shapes.graph.value_info, *shapes.graph.input, *shapes.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[info.name] = dims[1].dim_value
    nodes = []
    done = 0
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attrs.get("kernel_shape", []))
        c = channels.get(node.input[0]) if node.input else None
        ceil = bool(attrs.get("ceil_mode", 0))
        plain = (
            node.op_type == "AveragePool"
            and node.name not in skip
            and len(kernel) == 2
            and list(attrs.get("strides", [1, 1])) == kernel
            and not any(attrs.get("pads", [0, 0, 0, 0]))
            and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            and all(d == 1 for d in attrs.get("dilations", [1, 1]))
            and (not ceil or kernel == [2, 2])
            and c is not None
        )
        if not plain:
            nodes.append(node)
            continue
        name = node.name or f"pool{done}"
        weight = numpy_helper.from_array(
            np.full((c, 1, *kernel), 1.0 / (kernel[0] * kernel[1]), np.float32), f"{name}_weight"
        )
        proto.graph.initializer.append(weight)
        source = node.input[0]
        if ceil:
            pads = numpy_helper.from_array(
                np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), f"{name}_pads"
            )
            proto.graph.initializer.append(pads)
            source = f"{name}_padded"
            nodes.append(
                helper.make_node(
                    "Pad", [node.input[0], pads.name], [source], name=f"{name}_pad", mode="edge"
                )
            )
        nodes.append(
            helper.make_node(
                "Conv",
                [source, weight.name],
                list(node.output),
                name=f"{name}_depthwise",
                group=c,
                kernel_shape=kernel,
                strides=kernel,
            )
        )
        done += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return done


def integer_pads(proto: Any) -> int:
    """In a QDQ-quantized ``proto``, run each ``edge`` or ``reflect`` ``Pad`` between a
    ``DequantizeLinear`` and a ``QuantizeLinear`` of the same scale and zero point on the
    8-bit values themselves (such a padding only copies values: the result is the same).
    onnxruntime has no fusion for it: it would dequantize, pad in float and quantize again
    (55 us of a 2x2 pooling's 65 us on the demo ``cnn``). Returns the number rewired."""
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    drop: set[str] = set()  # the quantizer names every node it adds
    done = 0
    for pad in proto.graph.node:
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        if pad.op_type != "Pad" or mode not in (b"edge", b"reflect"):
            continue
        if len(pad.input) > 2 and pad.input[2]:  # a float constant_value: not for 8 bits
            continue
        dq = producer.get(pad.input[0])
        after = consumers.get(pad.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(after) != 1:
            continue
        q = after[0]
        params = [(dq.input[k], q.input[k]) for k in (1, 2)] if len(dq.input) == 3 else []
        same = (
            q.op_type == "QuantizeLinear"
            and len(q.input) == 3
            and params
            and all(a in init and b in init and np.array_equal(init[a], init[b]) for a, b in params)
            and init[dq.input[2]].dtype == init[q.input[2]].dtype
        )
        if not same or not q.name or not dq.name:
            continue
        pad.input[0] = dq.input[0]
        pad.output[0] = q.output[0]
        drop.add(q.name)
        consumers[dq.output[0]].remove(pad)
        if not consumers[dq.output[0]]:  # (a DQ read by other nodes stays)
            drop.add(dq.name)
        done += 1
    kept = [n for n in proto.graph.node if n.name not in drop]
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    return done
