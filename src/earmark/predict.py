"""The predictor interface: windows -> scores -> pooling, one definition for every model.

A :class:`Predictor` joins a model's :class:`earmark.preprocess.Preprocessing` (how a file
becomes model input) with a function scoring a batch of model input (``[n, classes]``
probabilities). :class:`earmark.Classifier` (scikit-learn or torch), the ONNX runner
(:class:`earmark.onnx_model.OnnxClassifier`) and, member by member,
:class:`earmark.ensembles.Ensemble` hold one; ``predict``, ``evaluate``, ``detect`` and the
server call it, so windowing, normalization, padding and pooling are written once.

- :meth:`Predictor.score_windows`: raw windows cut from a decoded signal -> scores.
- :meth:`Predictor.predict_files`: files of any length -> one :class:`Prediction` each
  (short files are decoded ahead in threads and their windows scored in batches across
  files; long ones are streamed block by block, so memory does not grow with their length).
- :meth:`Predictor.score_track`: a long recording -> the scores of its sliding windows
  (:class:`ScoreTrack`), streamed; what ``detect`` is built on.

Work can be stopped from outside (the server does when a request times out): inside
``with cancel_on(event):`` these loops check ``event`` between files, blocks and batches and
raise :class:`Cancelled` once it is set (:func:`check_cancelled`). The event is carried by a
context variable, so every model built on a :class:`Predictor` (an ensemble's members too)
stops without passing it down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from earmark.audio import AUDIO_EXTENSIONS
from earmark.data.manifest import Manifest
from earmark.detection.windows import Windowing, window_starts
from earmark.errors import AudioError, DurationLimitError, EarmarkError, ParameterError
from earmark.prefetch import prefetch_map
from earmark.preprocess import PREDICT_WINDOWING, Preprocessing

if TYPE_CHECKING:
    from earmark.evaluation import Evaluation

__all__ = [
    "BLOCK_SECONDS",
    "STREAM_SECONDS",
    "Cancelled",
    "FileScores",
    "Prediction",
    "Predictor",
    "ScoreTrack",
    "UsesPredictor",
    "cancel_on",
    "check_cancelled",
    "evaluate_files",
    "input_files",
    "pooled_scores",
    "present_labels",
    "top_labels",
]

Pooling = Literal["mean", "max"]
BLOCK_SECONDS = 30.0  # decoded at a time when streaming; memory is a few blocks
#: Files longer than this are streamed block by block by ``predict`` instead of decoded
#: whole (memory then stays flat whatever their length).
STREAM_SECONDS = 60.0
#: Windows a lane gets at least when ``score_windows`` splits a batch across lanes (below
#: it, the threads cost more than they give).
LANE_WINDOWS = 16


def whole_lanes(lanes: object) -> int:
    """``lanes`` as an ``int`` >= 1 (any integer type, numpy's included), or a one-line
    :class:`ParameterError`."""
    try:
        n = operator.index(lanes)  # type: ignore[arg-type]
    except TypeError:
        n = 0
    if isinstance(lanes, bool) or n < 1:
        raise ParameterError(f"lanes must be a whole number >= 1, got {lanes!r}")
    return n


class Cancelled(EarmarkError):
    """The work was stopped from outside: the event given to :func:`cancel_on` was set."""


_CANCEL: ContextVar[threading.Event | None] = ContextVar("earmark_cancel", default=None)


@contextlib.contextmanager
def cancel_on(event: threading.Event) -> Iterator[None]:
    """Within the block (in this thread or task), prediction and scoring loops raise
    :class:`Cancelled` at their next check once ``event`` is set."""
    token = _CANCEL.set(event)
    try:
        yield
    finally:
        _CANCEL.reset(token)


def check_cancelled() -> None:
    """Raise :class:`Cancelled` if the :func:`cancel_on` event of this context is set (a
    check costs a context-variable read: loops call it once per file, block or batch)."""
    event = _CANCEL.get()
    if event is not None and event.is_set():
        raise Cancelled("stopped: the caller gave up on this work")


@dataclass
class Prediction:
    """What a model says about one file.

    ``labels`` / ``scores``: the top classes, best first, with their pooled scores (for
    ``mean`` pooling, probabilities). ``window_scores``: ``[windows, classes]`` in the model's
    class order, with ``window_starts`` in seconds. ``error`` is set (and the rest empty)
    when the file could not be read.

    Multi-label models also fill ``present``: every class whose pooled score reaches its
    threshold, best first (possibly none, possibly several); ``None`` for single-label.
    """

    path: str
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    duration: float = 0.0
    window_starts: list[float] = field(default_factory=list)
    window_scores: np.ndarray | None = None
    error: str | None = None
    present: list[str] | None = None

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
        if self.present is not None:
            d["present"] = self.present
        if windows and self.window_scores is not None:
            d["window_starts_s"] = [round(s, 3) for s in self.window_starts]
            d["window_scores"] = np.round(self.window_scores, 6).tolist()
        return d

    def raise_error(self) -> None:
        """Raise the :class:`AudioError` this prediction records, if any."""
        if self.error is not None:
            prefix = f"{self.path}: "
            problem = self.error[len(prefix) :] if self.error.startswith(prefix) else self.error
            raise AudioError(self.path, problem)


@dataclass
class ScoreTrack:
    """Class scores of one recording's windows: ``scores[i]`` (``[windows, classes]``, in
    ``classes`` order) for the window starting at ``starts[i]`` seconds and lasting
    ``window`` seconds; ``duration`` is the recording's length in seconds."""

    path: str
    classes: list[str]
    starts: np.ndarray
    window: float
    hop: float
    scores: np.ndarray
    duration: float

    @property
    def ends(self) -> np.ndarray:
        """Window ends in seconds (a padded last window ends at the recording's end)."""
        return np.minimum(self.starts + self.window, self.duration)


def input_files(inputs: str | Path | Manifest | Iterable[str | Path]) -> list[str]:
    """Files to predict: a file, a folder (searched for audio), a manifest, or a list."""
    from earmark.data.layouts import load as load_dataset

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
        p.raise_error()
        rows.append([p.scores[p.labels.index(c)] for c in classes])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(classes))


def top_labels(
    path: str,
    classes: Sequence[str],
    pooled: np.ndarray,
    top_k: int,
    *,
    duration: float,
    starts: Sequence[float],
    window_scores: np.ndarray | None,
) -> Prediction:
    """A :class:`Prediction` of the ``top_k`` classes of ``pooled`` (``[classes]``)."""
    order = np.argsort(-pooled, kind="stable")[: max(1, min(top_k, len(classes)))]
    return Prediction(
        path=path,
        labels=[classes[i] for i in order],
        scores=[float(pooled[i]) for i in order],
        duration=duration,
        window_starts=list(starts),
        window_scores=window_scores,
    )


def present_labels(classes: Sequence[str], pooled: np.ndarray, thresholds: np.ndarray) -> list[str]:
    """The classes whose score in ``pooled`` (``[classes]``) reaches their threshold, best
    first: a multi-label prediction."""
    order = np.argsort(-np.asarray(pooled), kind="stable")
    return [classes[i] for i in order if pooled[i] >= thresholds[i]]


class Predictor:
    """Scores audio with a model: ``preprocessing`` turns audio into model input and
    ``score`` (model input ``[n, ...]`` -> ``[n, classes]`` probabilities in ``classes``
    order) runs the model. ``flat``: the model takes one vector per window (classical
    learners); ``pooling``: how the window scores of a long file combine (``mean``, ``max``).

    ``multi_label``: ``score`` gives per-class probabilities (sigmoids, one-vs-rest), each
    class judged on its own: a prediction lists every class whose pooled score reaches its
    threshold (``thresholds``: a class -> threshold mapping, a run's calibrated ones;
    classes it leaves out, and every class without it, use 0.5).

    ``frames_score``: for a model whose ``score`` takes waveforms (an ONNX graph with the
    frontend inside), a second scorer of spectrogram windows ``[n, channels, bins, frames]``
    (the same network without its frontend). :meth:`score_track` then computes the frames
    that overlapping windows share once, as it does for a model taking spectrograms, and
    scores them with it: the features are the torch path's, each frame computed once
    instead of once per window it falls in.

    ``lanes``: how many batches are scored at once, each in a thread of its own (the
    features computed there too): for a ``score`` that runs on one thread and releases the
    GIL (an onnxruntime session with one thread), one lane per core keeps every core busy
    with no batch split between threads. 1: one batch at a time (``score`` uses its own
    threads)."""

    def __init__(
        self,
        preprocessing: Preprocessing,
        classes: Sequence[str],
        score: Callable[[Any], np.ndarray],
        *,
        pooling: Pooling = "mean",
        flat: bool = False,
        multi_label: bool = False,
        thresholds: dict[str, float] | None = None,
        frames_score: Callable[[Any], np.ndarray] | None = None,
        lanes: int = 1,
    ) -> None:
        from earmark.evaluation import resolve_thresholds

        if pooling not in ("mean", "max"):
            raise ParameterError(f"pooling must be mean or max, got {pooling!r}")
        lanes = whole_lanes(lanes)
        self.preprocessing = preprocessing
        self.classes = list(classes)
        self.score = score
        self.pooling: Pooling = pooling
        self.flat = flat
        self.multi_label = multi_label
        self.thresholds = resolve_thresholds(self.classes, thresholds)  # [classes]
        self.frames_score = frames_score
        self.lanes = lanes

    # -- windows --------------------------------------------------------------------------

    def model_input(self, segments: Sequence[np.ndarray]) -> Any:
        """Raw windows (cut from a decoded signal) as the model's input."""
        prep = self.preprocessing
        return prep.features_of(prep.prepare(segments), flat=self.flat)

    def score_windows(self, segments: Sequence[np.ndarray]) -> np.ndarray:
        """``[n, classes]`` scores of raw windows cut from a decoded signal."""
        if not len(segments):
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        check_cancelled()
        lanes = min(self.lanes, len(segments) // LANE_WINDOWS)
        if lanes < 2:
            return self._score_segments(segments)
        step = math.ceil(len(segments) / lanes)
        parts = [segments[i : i + step] for i in range(0, len(segments), step)]
        with one_torch_thread(), ThreadPoolExecutor(lanes, "earmark-lane") as pool:
            return np.concatenate(list(pool.map(self._score_segments, parts)))

    def _score_segments(self, segments: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.score(self.model_input(segments)))

    def windows(self, signal: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """``predict``'s windows of a decoded signal and their starts in seconds."""
        return self.preprocessing.cut(signal, PREDICT_WINDOWING)

    def pooled(
        self,
        path: str,
        duration: float,
        starts: Sequence[float],
        scores: np.ndarray,
        top_k: int,
    ) -> Prediction:
        """The prediction of one file from its window scores (``[windows, classes]``)."""
        pooled = scores.mean(axis=0) if self.pooling == "mean" else scores.max(axis=0)
        pred = top_labels(
            path,
            self.classes,
            pooled,
            top_k,
            duration=duration,
            starts=starts,
            window_scores=scores,
        )
        if self.multi_label:
            pred.present = present_labels(self.classes, pooled, self.thresholds)
        return pred

    def predict_signal(self, signal: np.ndarray, *, path: str = "", top_k: int = 3) -> Prediction:
        """The prediction of one decoded signal (``Preprocessing.read``'s output)."""
        segments, starts = self.windows(signal)
        duration = signal.shape[1] / self.preprocessing.sample_rate
        return self.pooled(path, duration, starts, self.score_windows(segments), top_k)

    # -- files ----------------------------------------------------------------------------

    def predict_file(self, path: str | Path, *, top_k: int = 3) -> Prediction:
        """Classify one file of any length; raises :class:`AudioError` if it is unreadable."""
        pred = self.predict_files([path], top_k=top_k, workers=1)[0]
        pred.raise_error()
        return pred

    def _decode_item(
        self, item: tuple[str, tuple[float, float] | None]
    ) -> tuple[str, np.ndarray | None, str | None]:
        """A file (``span`` ``None``: :meth:`_decode`) or a segment of one: the segment is
        read alone, never streamed (its memory follows its own length, under the decoding
        budget), and scored as the clip it is."""
        path, span = item
        if span is None:
            return self._decode(path)
        try:
            y = self.preprocessing.read(path, offset=span[0], duration=span[1])
            return path, y, None
        except AudioError as exc:
            return path, None, str(exc)

    def _decode(self, path: str) -> tuple[str, np.ndarray | None, str | None]:
        """``path`` decoded whole; ``None`` with no error for a file to stream; or the
        reason it cannot be read."""
        # No separate probe of the header (0.1-0.2 ms a file, ~10% of predict_files on
        # one-second clips): the loader checks the duration from the header before decoding,
        # so a file over STREAM_SECONDS stops there and is streamed instead.
        own = self.preprocessing.audio.max_duration
        refused = own is not None and own <= STREAM_SECONDS  # over it: an error, not a stream
        try:
            limit = own if refused else STREAM_SECONDS
            return path, self.preprocessing.read(path, max_duration=limit), None
        except DurationLimitError as exc:
            return path, None, (str(exc) if refused else None)
        except AudioError as exc:
            return path, None, str(exc)

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
        and the windows of consecutive files are scored in batches of about ``batch_size``.
        Files longer than :data:`STREAM_SECONDS` are streamed in blocks. A manifest's segment
        rows (``start_s`` / ``end_s``) are scored as clips of their own: only the segment is
        decoded, and its prediction's ``duration`` is the segment's."""
        paths = input_files(inputs)
        spans = inputs.spans if isinstance(inputs, Manifest) else [None] * len(paths)
        out: list[Prediction | None] = [None] * len(paths)
        group: list[tuple[int, str, float, list[np.ndarray], list[float]]] = []
        n_windows = 0
        sr = self.preprocessing.sample_rate

        def done(i: int, pred: Prediction) -> None:
            out[i] = pred
            if on_file is not None:
                on_file()

        def flush() -> None:
            nonlocal group, n_windows
            scores = self.score_windows([s for *_, segs, _ in group for s in segs])
            at = 0
            for i, path, duration, segs, starts in group:
                window_scores = scores[at : at + len(segs)]
                done(i, self.pooled(path, duration, starts, window_scores, top_k))
                at += len(segs)
            group, n_windows = [], 0

        items = list(zip(paths, spans, strict=True))
        decoded = prefetch_map(self._decode_item, items, workers=workers, ahead=2 * batch_size)
        for i, (path, y, error) in enumerate(decoded):
            check_cancelled()
            if error is not None:
                done(i, Prediction(path=path, error=error))
            elif y is None:  # long: streamed on its own
                try:
                    track = self.score_track(path, PREDICT_WINDOWING, batch_size=batch_size)
                except AudioError as exc:
                    done(i, Prediction(path=path, error=str(exc)))
                    continue
                starts = track.starts.tolist()
                done(i, self.pooled(path, track.duration, starts, track.scores, top_k))
            else:
                segments, starts = self.windows(y)
                group.append((i, path, y.shape[1] / sr, segments, starts))
                n_windows += len(segments)
                if n_windows >= batch_size:
                    flush()
        if group:
            flush()
        return [p for p in out if p is not None]

    # -- long recordings ------------------------------------------------------------------

    def score_track(
        self,
        path: str | Path,
        windowing: Windowing | None = None,
        *,
        batch_size: int = 256,
        block_seconds: float = BLOCK_SECONDS,
        blocks: Iterable[np.ndarray] | None = None,
        on_block: Callable[[float], None] | None = None,
    ) -> ScoreTrack:
        """Slide ``windowing``'s windows (default: ``detect``'s, half-overlapping, the last
        padded) over the recording at ``path``, streamed in blocks, and score each.

        ``blocks`` replaces decoding (``[channels, samples]`` blocks at the model's rate and
        channels, e.g. from a reader opened ahead); ``on_block(seconds)`` is called as each
        block's audio is consumed. For spectrogram features without per-window
        normalization the frames overlapping windows share are computed once over the
        continuous signal (:func:`earmark.features.spectral.framed`): a window's frames then
        equal those of the clip alone except at its two edges, which see the neighbouring
        audio instead of zero padding. Raises :class:`AudioError` for an unreadable file."""
        windowing = windowing or Windowing()
        prep = self.preprocessing
        sr = prep.sample_rate
        window, hop = prep.resolve(windowing)
        if self.flat and not prep.variable_length and window != prep.window:
            # one vector per window: its length fixes the number of features
            raise ParameterError(
                f"this model takes windows of its training clip length "
                f"({prep.window_seconds:g} s); got {window / sr:g} s"
            )
        shared = prep.shared_frames(hop)
        score_frames = self.score
        if shared is None and self.frames_score is not None and not prep.featurize:
            # a graph over waveforms with a frames-only twin: the torch frontend's shared
            # frames, scored by the twin
            shared = dataclasses.replace(prep, featurize=True).shared_frames(hop)
            score_frames = self.frames_score
        ctx = shared.n_fft // 2 if shared is not None else 0
        grid = shared.hop_length if shared is not None else 1
        if blocks is None:
            blocks = prep.blocks(Path(path), block_seconds)

        def scorer(buf: np.ndarray, offsets: list[int]) -> np.ndarray:
            if shared is None:  # (in a lane: not split across lanes again)
                return self._score_segments([buf[:, o : o + window] for o in offsets])
            import torch

            from earmark.features.spectral import framed

            with torch.inference_mode():
                X = framed(shared, torch.from_numpy(buf), offsets, window).numpy()
            return np.asarray(score_frames(X.reshape(len(X), -1) if self.flat else X))

        # lanes: batches scored in threads, at most `lanes` at once, collected in order
        pool = ThreadPoolExecutor(self.lanes, "earmark-lane") if self.lanes > 1 else None
        waiting: deque[Future[np.ndarray]] = deque()

        channels = prep.audio.channels
        buf = np.zeros((channels, ctx), dtype=np.float32)  # zeros before the recording
        buf_start = -ctx  # absolute sample index of buf[:, 0]
        # blocks decoded since the last batch, joined to buf only when a batch needs them
        # (joining each block would copy the held audio once a block: 1.2 GB an hour)
        incoming: list[np.ndarray] = []
        total = 0  # samples decoded: the absolute index just past buf and incoming
        next_k = 0  # the next full window on the hop grid
        pending: list[int] = []
        starts_out: list[np.ndarray] = []
        scores_out: list[Any] = []  # scores, or futures of them (lanes)

        def run(batch: list[int]) -> None:
            nonlocal buf
            check_cancelled()
            if incoming:
                parts = [buf, *incoming] if buf.shape[1] else incoming
                buf = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
                incoming.clear()
            need = batch[-1] + window + ctx - (buf_start + buf.shape[1])
            if need > 0 and shared is not None:  # past the end of the recording: zeros
                buf = np.concatenate([buf, np.zeros((channels, need), np.float32)], axis=1)
            offsets = [s - buf_start for s in batch]
            starts_out.append(np.asarray(batch, dtype=np.int64))
            if pool is None:
                scores_out.append(scorer(buf, offsets))
                return
            # (buf is never written in place: a later block makes a new array)
            waiting.append(pool.submit(scorer, buf, offsets))
            scores_out.append(waiting[-1])
            while len(waiting) > self.lanes:
                waiting.popleft().result()

        def drain(final: bool) -> None:
            nonlocal buf, buf_start
            while len(pending) >= batch_size or (final and pending):
                batch = pending[:batch_size]
                del pending[:batch_size]
                if pool is not None and not pending and final:
                    # the recording's last batch (a short recording's only one): split
                    # across the lanes, so it does not run on one core while the others wait
                    parts = min(self.lanes, len(batch) // LANE_WINDOWS)
                    step = math.ceil(len(batch) / max(parts, 1))
                    for i in range(0, len(batch), step):
                        run(batch[i : i + step])
                else:
                    run(batch)
                # keep from the next window's context (an end-aligned last window may start
                # up to a hop before the next grid start)
                keep_from = (pending[0] if pending else (next_k - 1) * hop) - ctx - buf_start
                if keep_from > 0:
                    buf = buf[:, keep_from:]
                    buf_start += keep_from

        with contextlib.ExitStack() as stack:
            if pool is not None:
                stack.enter_context(one_torch_thread())
                stack.callback(pool.shutdown, cancel_futures=True)  # (first: on an error)
            for block in blocks:
                check_cancelled()
                incoming.append(block)
                total += block.shape[1]
                while next_k * hop + window + ctx <= total:
                    pending.append(next_k * hop)
                    next_k += 1
                if on_block is not None:
                    on_block(block.shape[1] / sr)
                drain(final=False)
            # the end: full windows the context held back, then the partial window's policy
            # (those already queued are the grid starts up to (next_k - 1) * hop)
            for s in window_starts(total, window, hop, windowing.last).tolist():
                if s > (next_k - 1) * hop:
                    pending.append(math.ceil(s / grid) * grid)  # an end window snaps to the frames
            pending[:] = sorted(set(pending))
            drain(final=True)
            scores_out[:] = [
                np.asarray(x.result() if isinstance(x, Future) else x) for x in scores_out
            ]
        starts = np.concatenate(starts_out) if starts_out else np.zeros(0, np.int64)
        n_classes = len(self.classes)
        scores = np.concatenate(scores_out) if scores_out else np.zeros((0, n_classes))
        return ScoreTrack(
            path=str(path),
            classes=list(self.classes),
            starts=starts / sr,
            window=window / sr,
            hop=hop / sr,
            scores=np.asarray(scores, dtype=np.float32),
            duration=total / sr,
        )


_ONE_THREAD_LOCK = threading.Lock()
_one_thread_users = 0
_threads_before = 0


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch's intra-op threads set to 1 for the block, so lanes each compute their batch's
    features on one core. With torch's default (one thread per core) each lane's FFTs and
    matrix products spread over every core and the lanes fight for them: the demo
    ``cnn``'s int8 scan of an hour took 2.2-2.4 s instead of 1.8-1.9 s on 2 cores.

    Torch's setting is global (threads started meanwhile take it), so blocks entered from
    several threads at once share it: the first sets 1 and the last to leave restores the
    count from before the first. Nothing to do when torch is not loaded (an ONNX model over
    waveforms runs without it)."""
    global _one_thread_users, _threads_before
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    with _ONE_THREAD_LOCK:
        if _one_thread_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users += 1
    try:
        yield
    finally:
        with _ONE_THREAD_LOCK:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                torch.set_num_threads(_threads_before)


class FileScores:
    """``predict_proba``, ``predict`` and ``evaluate`` of a model with ``classes_`` and
    ``predict_files`` (one definition for every model family, ensembles included)."""

    classes_: list[str]
    predict_files: Callable[..., list[Prediction]]  # a Predictor's, or an ensemble's own

    def predict_proba(self, inputs: str | Path | Manifest | Sequence[str | Path]) -> np.ndarray:
        """Pooled class scores ``[files, classes]`` (columns in ``classes_`` order); raises
        :class:`AudioError` for the first file that cannot be read."""
        return pooled_scores(self.predict_files(inputs, top_k=len(self.classes_)), self.classes_)

    def predict(self, inputs: str | Path | Manifest | Sequence[str | Path]) -> list[str]:
        """The most probable label of each file."""
        return [self.classes_[i] for i in np.argmax(self.predict_proba(inputs), axis=1)]

    def evaluate(
        self, data: Manifest | str | Path, *, on_file: Callable[[], None] | None = None
    ) -> Evaluation:
        """Metrics on the labelled files of ``data``, each file scored as ``predict`` scores
        it (:func:`evaluate_files`)."""
        return evaluate_files(self, data, on_file=on_file)


class UsesPredictor(FileScores):
    """Prediction through the model's :class:`Predictor` (its ``predictor`` attribute or
    property): what a :class:`earmark.Classifier` and an ONNX model share."""

    predictor: Predictor

    def predict_file(self, path: str | Path, *, top_k: int = 3) -> Prediction:
        """Classify one file of any length; raises :class:`AudioError` if it is unreadable."""
        return self.predictor.predict_file(path, top_k=top_k)

    def predict_files(
        self,
        inputs: str | Path | Manifest | Iterable[str | Path],
        *,
        top_k: int = 3,
        on_file: Callable[[], None] | None = None,
        batch_size: int = 256,
        workers: int | None = None,
    ) -> list[Prediction]:
        """Classify files, folders (every audio file inside) or a manifest; a file that cannot
        be read gives a :class:`Prediction` with ``error`` set
        (:meth:`Predictor.predict_files`)."""
        return self.predictor.predict_files(
            inputs, top_k=top_k, on_file=on_file, batch_size=batch_size, workers=workers
        )

    def score_track(
        self, path: str | Path, windowing: Windowing | None = None, **kw: Any
    ) -> ScoreTrack:
        """The scores of a long recording's sliding windows, streamed
        (:meth:`Predictor.score_track`)."""
        return self.predictor.score_track(path, windowing, **kw)


def evaluate_files(
    model: Any, data: Manifest | str | Path, *, on_file: Callable[[], None] | None = None
) -> Evaluation:
    """Metrics of ``model`` (anything with ``classes_`` and ``predict_files``) on the labelled
    files of ``data``, each file scored exactly as ``predict`` scores it. Unreadable files are
    left out and listed in ``Evaluation.skipped``."""
    from earmark.data.layouts import as_manifest
    from earmark.evaluation import evaluate  # scikit-learn: only when evaluating

    manifest = as_manifest(data)
    manifest = manifest.subset(manifest.labelled)
    classes = list(model.classes_)
    multi = bool(getattr(model, "multi_label_", False))
    if manifest.multi_label and not multi:
        raise EarmarkError(
            "multi-label data (several classes per file) needs a multi-label model; "
            "this one is single-label"
        )
    seen = manifest.classes if manifest.multi_label else manifest.frame["label"].astype(str)
    unseen = sorted(set(seen) - set(classes))
    if unseen:
        raise EarmarkError(f"labels never seen in training: {', '.join(unseen)}")
    preds = model.predict_files(manifest, top_k=len(classes), on_file=on_file)
    if multi:  # every row labelled: an empty label is a file where no class is present
        from earmark.evaluation import evaluate_multilabel

        truth = Manifest(manifest.frame, multi_label=True).targets(classes)
        kept = [k for k, p in enumerate(preds) if p.error is None]
        scores = pooled_scores([preds[k] for k in kept], classes)
        result = evaluate_multilabel(
            truth[kept], scores, classes, thresholds=getattr(model, "thresholds_", None)
        )
        result.skipped = [(p.path, p.error) for p in preds if p.error is not None]
        return result
    index = {c: i for i, c in enumerate(classes)}
    labels = manifest.frame["label"].astype(str).tolist()
    kept = [k for k, p in enumerate(preds) if p.error is None]
    y_true = np.array([index[labels[k]] for k in kept], dtype=np.int64)
    scores = pooled_scores([preds[k] for k in kept], classes)
    result = evaluate(y_true, scores, classes)
    result.skipped = [(p.path, p.error) for p in preds if p.error is not None]
    return result
