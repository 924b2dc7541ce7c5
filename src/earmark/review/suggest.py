"""Active learning: which windows of unlabelled recordings a person should review next.

A trained model scores every window of the recordings (the detection scoring,
:func:`earmark.detection.score_file`: the same windows ``earmark detect`` scores). Each
window gets an *uncertainty* in [0, 1]:

* single-label models: ``entropy`` (of the class scores, over its largest possible value;
  the default) or ``margin`` (1 minus the gap between the two best class scores);
* multi-label models: ``threshold`` (how close the class nearest its decision threshold is
  to it: 1 on the threshold, 0 at the far end of [0, 1]; the run's calibrated thresholds
  when it has them, else 0.5) or ``entropy`` (the largest per-class binary entropy).

The ``pool`` x ``n`` most uncertain windows are the candidates (windows already reviewed
are left out first); from them ``n`` are picked *with diversity*, so that one ambiguous
sound heard in twenty overlapping windows, or twenty near-identical calls, do not take the
whole batch:

* ``spread``: two picks in one recording are never closer than ``spread`` seconds (default
  a window: picks never overlap), whatever the diversity rule;
* ``kmeans`` (default): the candidates clustered into ``n`` groups (k-means weighted by
  uncertainty, Zhdanov 2019, "Diverse mini-batch active learning"), the most uncertain of
  each group;
* ``kcenter``: greedy, uncertainty-weighted k-center: the most uncertain window first, then
  each time the window whose uncertainty times its distance to the nearest window picked
  so far is largest (distance over the largest such distance);
* ``none``: the most uncertain windows, only the ``spread`` rule between them.

Distances are taken in an embedding of the windows (``embedding``): ``features``, the
model's own input features of each window captured while it is scored (no second pass over
the audio: spectrogram frames summarised by their mean and standard deviation over time,
long vectors projected to 64 dimensions by a fixed random projection, which keeps
distances); ``scores``, the window's class scores; or ``aisfx``, the pretrained frontend's
embedding of the candidates' audio (read again, for the candidates only). A model without
a predictor of its own (an ensemble) falls back from ``features`` to ``scores``.

The defaults are what ``benchmarks/bench_review.py`` measured on the demo scenes' held-out
training recordings (never the test recordings; mean event F1 over five rounds of 20
reviews, five seeds, logistic regression on hand-crafted features): ``entropy`` / ``kmeans``
/ ``features`` 0.76, ``entropy`` / ``kcenter`` 0.74, ``margin`` / ``kmeans`` 0.73,
``margin`` / ``kcenter`` 0.73; uncertainty alone (``none``) 0.61-0.63, random windows 0.48.
Diversity matters most: without it a batch goes to the overlapping windows of a few
ambiguous sounds. The ``features`` embedding beats ``scores`` (0.73 against 0.66 with
``margin`` / ``kcenter``) because the candidates are by construction the windows whose
scores all sit near the decision boundary: their score vectors are alike whatever they hold,
their features are not. The two diversity rules are within the noise of each other.

Memory stays bounded whatever the corpus: recordings are scored one after the other and
only the ``pool`` x ``n`` most uncertain windows so far are kept. Picks are deterministic for
a seed (ties between equally uncertain windows are broken by a seeded random order).

The output (:func:`write_suggestions`) is a CSV ``file,start_s,end_s,label,score,
uncertainty``, the most useful first (k-center: in the order picked; the other rules: the
most uncertain first): ``label`` is the model's top
class (multi-label: the class nearest its threshold) and ``score`` its score.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from earmark.atomic import atomic_text
from earmark.config import JsonConfig
from earmark.detection.events import file_key
from earmark.detection.scores import ScoreTrack, score_file
from earmark.detection.windows import Windowing
from earmark.errors import AudioError, EarmarkError, ParameterError

__all__ = [
    "SUGGESTION_COLUMNS",
    "SuggestSettings",
    "Suggestion",
    "Suggestions",
    "check_settings",
    "read_reviewed",
    "suggest",
    "suggest_tracks",
    "uncertainty",
    "write_suggestions",
]

#: The columns of a suggestions table, in order.
SUGGESTION_COLUMNS = ("file", "start_s", "end_s", "label", "score", "uncertainty")
UNCERTAINTIES = ("auto", "margin", "entropy", "threshold")
DIVERSITIES = ("kmeans", "kcenter", "none")
EMBEDDINGS = ("features", "scores", "aisfx")
#: A window counts as reviewed when a reviewed span of its recording covers at least this
#: fraction of the shorter of the two (the annotation tables' 50 % rule: most of what the
#: window holds has been heard).
REVIEWED_OVERLAP = 0.5
#: Long feature vectors are projected to this many dimensions for distances.
EMBED_DIM = 64
#: The defaults, as measured by benchmarks/bench_review.py on the held-out part of the
#: demo scenes' training recordings (never the test recordings); see its results JSON.
DEFAULTS_MEASURED = {"uncertainty": "entropy", "diversity": "kmeans", "embedding": "features"}

Uncertainty = Literal["auto", "margin", "entropy", "threshold"]
Diversity = Literal["kcenter", "kmeans", "none"]
Embedding = Literal["features", "scores", "aisfx"]


@dataclass(frozen=True)
class SuggestSettings(JsonConfig):
    """How windows are picked (see the module doc).

    Args:
        n: windows to suggest (1 to 10,000).
        uncertainty: ``auto`` (``threshold`` for multi-label models, ``entropy`` for
            single-label), ``margin``, ``entropy`` or ``threshold`` (multi-label only).
        diversity: ``kmeans``, ``kcenter`` or ``none``.
        embedding: ``features``, ``scores`` or ``aisfx`` (the distances of the diversity rule).
        pool: the candidates are the ``pool`` x ``n`` most uncertain windows (>= 1).
        spread: seconds that two picks in one recording keep between their starts
            (``None``: one window; 0: no rule).
        seed: breaks ties and seeds k-means and the random projection.
    """

    n: int = 20
    uncertainty: Uncertainty = "auto"
    diversity: Diversity = "kmeans"
    embedding: Embedding = "features"
    pool: float = 5.0
    spread: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer):
            raise ParameterError(f"n must be a whole number of windows, got {self.n!r}")
        if not 1 <= self.n <= 10_000:
            raise ParameterError(f"n must be between 1 and 10000, got {self.n}")
        for name, allowed in (
            ("uncertainty", UNCERTAINTIES),
            ("diversity", DIVERSITIES),
            ("embedding", EMBEDDINGS),
        ):
            if getattr(self, name) not in allowed:
                raise ParameterError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if not _finite(self.pool) or self.pool < 1:
            raise ParameterError(f"pool must be a number >= 1, got {self.pool!r}")
        if self.spread is not None and (not _finite(self.spread) or self.spread < 0):
            raise ParameterError(f"spread must be >= 0 seconds, got {self.spread!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ParameterError(f"seed must be a whole number, got {self.seed!r}")

    @property
    def candidates(self) -> int:
        """How many of the most uncertain windows are kept as candidates."""
        return max(self.n, math.ceil(self.pool * self.n))


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class Suggestion:
    """One window to review: ``file`` (the recording's path), its span in seconds, the
    model's ``label`` for it with its ``score``, and its ``uncertainty`` (0 to 1)."""

    file: str
    start_s: float
    end_s: float
    label: str
    score: float
    uncertainty: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "start_s": round(self.start_s, 4),
            "end_s": round(self.end_s, 4),
            "label": self.label,
            "score": round(self.score, 6),
            "uncertainty": round(self.uncertainty, 6),
        }


@dataclass
class Suggestions:
    """What :func:`suggest` picked (``items``, the most useful first) and what it looked
    at: recordings scored, windows scored, windows left out as reviewed, recordings that
    could not be read (path, why), the settings and the embedding actually used."""

    items: list[Suggestion]
    files: int = 0
    windows: int = 0
    excluded: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    settings: SuggestSettings = field(default_factory=SuggestSettings)
    embedding: str = "features"

    def __len__(self) -> int:
        return len(self.items)


# -- uncertainty ------------------------------------------------------------------------------


def uncertainty(
    scores: np.ndarray,
    *,
    measure: str,
    thresholds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The uncertainty (``[windows]``, 0 to 1) of window scores ``[windows, classes]`` by
    ``measure`` (``margin``, ``entropy``, ``threshold``; see the module doc), and the class
    each window's label is (the top class; for ``threshold`` and multi-label ``entropy``,
    the class nearest its threshold: give ``thresholds`` ``[classes]`` for those)."""
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ParameterError(f"scores must be [windows, classes], got shape {p.shape}")
    if len(p) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    p = np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0)
    k = p.shape[1]
    if measure == "margin":
        top = np.argmax(p, axis=1)
        if k == 1:
            return 1.0 - np.abs(2 * p[:, 0] - 1), top
        two = -np.partition(-p, 1, axis=1)[:, :2]
        return np.clip(1.0 - (two[:, 0] - two[:, 1]), 0.0, 1.0), top
    if measure == "entropy" and thresholds is None:  # one distribution over the classes
        q = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        h = -(q * np.log(np.maximum(q, 1e-12))).sum(axis=1)
        return np.clip(h / math.log(k) if k > 1 else h, 0.0, 1.0), np.argmax(p, axis=1)
    if thresholds is None:
        raise ParameterError(f"{measure} uncertainty needs the per-class thresholds")
    t = np.asarray(thresholds, dtype=np.float64).reshape(1, k)
    if measure == "entropy":  # each class a yes / no of its own
        q = np.clip(p, 1e-12, 1 - 1e-12)
        per = -(q * np.log(q) + (1 - q) * np.log(1 - q)) / math.log(2)
    elif measure == "threshold":
        room = np.maximum(np.maximum(t, 1.0 - t), 1e-12)  # the farthest a score can be
        per = 1.0 - np.abs(p - t) / room
    else:
        raise ParameterError(f"unknown uncertainty {measure!r}")
    nearest = np.argmax(per, axis=1)
    return np.clip(per[np.arange(len(p)), nearest], 0.0, 1.0), nearest


def _measure(settings: SuggestSettings, multi_label: bool) -> str:
    measure = settings.uncertainty
    if measure == "auto":
        return "threshold" if multi_label else "entropy"
    if multi_label and measure == "margin":
        raise ParameterError(
            "margin uncertainty is for single-label models; this one is multi-label "
            "(use threshold or entropy)"
        )
    if not multi_label and measure == "threshold":
        raise ParameterError(
            "threshold uncertainty is for multi-label models; this one is single-label "
            "(use margin or entropy)"
        )
    return measure


def check_settings(model: Any, settings: SuggestSettings) -> None:
    """Refuse settings ``model`` cannot take (a ``threshold`` uncertainty for a single-label
    model, ``margin`` for a multi-label one): one :class:`ParameterError` line."""
    _measure(settings, bool(getattr(model, "multi_label_", False)))


# -- reviewed windows -------------------------------------------------------------------------

Span = tuple[str, float, float]
#: Column names a table of reviewed windows may use (those annotation CSVs accept).
_TABLE_COLUMNS = {
    "file": ("file", "filepath", "path", "filename", "recording", "audio"),
    "start": ("start_s", "start", "onset", "onset_s", "begin", "begin time (s)"),
    "end": ("end_s", "end", "offset", "offset_s", "stop", "end time (s)"),
}


def read_reviewed(source: str | Path | Iterable[Any]) -> list[Span]:
    """Spans already reviewed, as ``(file, start_s, end_s)``: from a list of such tuples (or
    of mappings with ``file`` / ``start_s`` / ``end_s``), from a table (CSV with columns
    ``file, start_s, end_s``: an annotation table, an ``earmark reviews export`` or a
    suggestions table; the annotation tables' column aliases are accepted), or from a
    reviews database (``.sqlite`` / ``.db``: :class:`earmark.review.store.ReviewStore`); a
    table that is not CSV is read as an annotation table (Raven, Audacity)."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ParameterError(f"{path}: no such table of reviewed windows")
        suffix = path.suffix.lower()
        if suffix in (".sqlite", ".sqlite3", ".db"):
            return _store_spans(path)
        if suffix != ".csv":  # a Raven or Audacity table (``earmark reviews export``'s too)
            from earmark.data.annotations import read_annotations

            frame = read_annotations(path).frame
            return [
                (str(r.recording), float(r.start_s), float(r.end_s))
                for r in frame.itertuples(index=False)
            ]
        return _table_spans(path)
    spans = []
    for k, row in enumerate(source):
        try:
            if isinstance(row, dict):
                file, start, end = row["file"], row["start_s"], row["end_s"]
            else:
                file, start, end = row
            spans.append((str(file), float(start), float(end)))
        except (KeyError, TypeError, ValueError):
            raise ParameterError(
                f"reviewed window {k}: expected (file, start_s, end_s), got {row!r}"
            ) from None
    return spans


def _table_spans(path: Path) -> list[Span]:
    """The ``file, start_s, end_s`` of each row of a CSV table (column names as the
    annotation tables accept them; a relative path is taken from the table's folder when
    the file is there)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{path}: cannot read the table of reviewed windows ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = {name.strip().lower(): name for name in reader.fieldnames or []}
    columns = {}
    for key in ("file", "start", "end"):
        found = next((header[a] for a in _TABLE_COLUMNS[key] if a in header), None)
        if found is None:
            raise ParameterError(
                f"{path}: a table of reviewed windows needs a {key} column "
                f"({' / '.join(_TABLE_COLUMNS[key][:3])})"
            )
        columns[key] = found
    spans = []
    for line, row in enumerate(reader, start=2):
        try:
            start, end = float(row[columns["start"]]), float(row[columns["end"]])
        except (TypeError, ValueError):
            raise ParameterError(f"{path}: line {line}: start and end must be numbers") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ParameterError(f"{path}: line {line}: start and end must be finite")
        file = str(row[columns["file"]])
        if not Path(file).is_absolute() and (path.parent / file).exists():
            file = str(path.parent / file)
        spans.append((file, start, end))
    return spans


def _store_spans(path: Path) -> list[Span]:
    """The spans of every item reviewed in a reviews database (whatever the verdict: the
    window has been heard), read with the reviews module's store."""
    try:
        from earmark.review.store import ReviewStore  # type: ignore[import-not-found]
    except ImportError:
        raise ParameterError(
            f"{path}: reading reviews from a database needs earmark.review.store, which this "
            "installation lacks; export the reviews to a table and give that"
        ) from None
    store = ReviewStore(path)
    try:
        reviews = store.latest()  # the review that counts for each item
    finally:
        store.close()
    return [(r.path or r.recording, float(r.start_s), float(r.end_s)) for r in reviews]


class _Reviewed:
    """Reviewed spans by recording: matched by resolved path, or by name (without folders
    and audio extension) for a span whose file does not exist as written."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self.by_path: dict[str, list[tuple[float, float]]] = {}
        self.by_name: dict[str, list[tuple[float, float]]] = {}
        for file, start, end in spans:
            p = Path(file)
            if p.exists():
                self.by_path.setdefault(str(p.resolve()), []).append((start, end))
            else:
                self.by_name.setdefault(file_key(file), []).append((start, end))

    def mask(self, path: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Which windows (``starts`` / ``ends`` in seconds) of ``path`` count as reviewed."""
        spans = self.by_path.get(str(Path(path).resolve()), []) + self.by_name.get(
            file_key(path), []
        )
        out = np.zeros(len(starts), dtype=bool)
        if not spans or not len(starts):
            return out
        s = np.asarray(spans, dtype=np.float64)
        overlap = np.minimum(ends[:, None], s[None, :, 1]) - np.maximum(
            starts[:, None], s[None, :, 0]
        )
        shorter = np.minimum((ends - starts)[:, None], (s[:, 1] - s[:, 0])[None, :])
        # a microsecond of tolerance, as the annotation windows' rule
        return (overlap >= REVIEWED_OVERLAP * shorter - 1e-6).any(axis=1) & (overlap > 0).any(
            axis=1
        )


# -- embeddings -------------------------------------------------------------------------------


class _Projection:
    """A fixed, seeded random projection of vectors longer than :data:`EMBED_DIM` (Johnson-
    Lindenstrauss: distances are kept up to a small factor): one matrix per input width, so
    every window of a run is projected alike."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.matrices: dict[int, np.ndarray] = {}

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim >= 3:  # [n, (channels,) bins, frames]: each bin's mean and spread over time
            frames = X.reshape(len(X), -1, X.shape[-1])
            X = np.concatenate([frames.mean(axis=-1), frames.std(axis=-1)], axis=1)
        X = X.reshape(len(X), -1)
        d = X.shape[1]
        if d <= EMBED_DIM:
            return X
        m = self.matrices.get(d)
        if m is None:
            rng = np.random.default_rng([self.seed, d])
            m = (rng.standard_normal((d, EMBED_DIM)) / math.sqrt(EMBED_DIM)).astype(np.float32)
            self.matrices[d] = m
        return X @ m


class _Capturing:
    """A model that scores tracks exactly as the given one does, keeping a summary of each
    window's model input on the way (the embedding ``features``): the model's own
    predictor with its scoring function wrapped."""

    def __init__(self, model: Any, project: _Projection) -> None:
        self.batches: list[np.ndarray] = []
        self.predictor = copy.copy(model.predictor)
        inner = self.predictor.score

        def score(X: Any) -> np.ndarray:
            self.batches.append(project(np.asarray(X)))
            return inner(X)

        self.predictor.score = score

    def score_track(self, path: str | Path, windowing: Windowing | None = None, **kw: Any):
        self.batches = []
        return self.predictor.score_track(path, windowing, **kw)

    def take(self, n: int) -> np.ndarray:
        rows = np.concatenate(self.batches) if self.batches else np.zeros((0, 0), np.float32)
        self.batches = []
        if len(rows) != n:
            raise EarmarkError(
                f"the model scored {n} windows but gave features for {len(rows)}; "
                "use embedding='scores' with this model"
            )
        return rows


def _aisfx_embeddings(
    files: Sequence[str], starts: np.ndarray, ends: np.ndarray, batch: int = 32
) -> np.ndarray:
    """The aisfx embedding of each candidate window's audio (read again, at its rate)."""
    from earmark import audio as audio_io
    from earmark.features import pretrained

    embed = pretrained.load("aisfx")
    sr = pretrained.info("aisfx").sample_rate
    width = max(1, round(float(np.max(ends - starts)) * sr)) if len(starts) else 1
    out = []
    for lo in range(0, len(files), batch):
        waves = np.zeros((min(batch, len(files) - lo), width), dtype=np.float32)
        for k in range(len(waves)):
            i = lo + k
            y, _ = audio_io.load(
                files[i],
                sr=sr,
                mono=True,
                offset=float(starts[i]),
                duration=float(ends[i] - starts[i]),
                max_duration=None,
            )
            y = np.asarray(y, dtype=np.float32).reshape(-1)[:width]
            waves[k, : y.size] = y
        out.append(np.asarray(embed(waves), dtype=np.float32))
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


# -- picking ----------------------------------------------------------------------------------


@dataclass
class _Pool:
    """The candidates kept so far (the most uncertain windows)."""

    files: list[str] = field(default_factory=list)
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ties: np.ndarray = field(default_factory=lambda: np.zeros(0))
    emb: np.ndarray | None = None

    def add(self, other: _Pool, keep: int) -> None:
        """Merge ``other`` in and keep the ``keep`` most uncertain (ties: seeded order)."""
        files = self.files + other.files
        cat = {
            name: np.concatenate([getattr(self, name), getattr(other, name)])
            for name in ("starts", "ends", "labels", "scores", "unc", "ties")
        }
        emb = None
        if other.emb is not None:
            emb = other.emb if self.emb is None else np.concatenate([self.emb, other.emb])
        order = np.lexsort((cat["ties"], -cat["unc"]))[:keep]
        self.files = [files[i] for i in order]
        for name, values in cat.items():
            setattr(self, name, values[order])
        self.emb = emb[order] if emb is not None else None


def _standardized(emb: np.ndarray) -> np.ndarray:
    """Each dimension centred and scaled to unit spread over the candidates (a constant one
    dropped), so no one feature's scale decides the distances."""
    emb = np.asarray(emb, dtype=np.float64)
    spread = emb.std(axis=0)
    keep = spread > 1e-9
    if not keep.any():
        return np.zeros((len(emb), 1))
    return (emb[:, keep] - emb[:, keep].mean(axis=0)) / spread[keep]


def _pick(pool: _Pool, settings: SuggestSettings, spread: float) -> list[int]:
    """Indices into ``pool`` of the windows picked, in the order picked."""
    n, u = settings.n, pool.unc
    eligible = np.ones(len(u), dtype=bool)
    picked: list[int] = []
    _, recording = np.unique(np.asarray(pool.files, dtype=object), return_inverse=True)

    def take(i: int) -> None:
        picked.append(i)
        eligible[i] = False
        if spread > 0:  # the candidates within spread seconds of it in its recording
            near = np.abs(pool.starts - pool.starts[i]) < spread - 1e-9
            eligible[(recording == recording[i]) & near] = False

    if settings.diversity == "none" or pool.emb is None or len(u) <= 1:
        for i in range(len(u)):  # already in order of uncertainty
            if len(picked) == n:
                break
            if eligible[i]:
                take(i)
        return picked
    emb = _standardized(pool.emb)
    if settings.diversity == "kmeans":
        from sklearn.cluster import KMeans

        k = min(n, len(u))
        km = KMeans(n_clusters=k, n_init=3, random_state=settings.seed)
        groups = km.fit_predict(emb, sample_weight=np.maximum(u, 1e-6))
        sizes = np.bincount(groups, minlength=k)
        for g in np.argsort(-sizes, kind="stable"):
            members = np.flatnonzero((groups == g) & eligible)
            if len(members) and len(picked) < n:
                take(int(members[0]))  # members are in order of uncertainty
        for i in range(len(u)):  # a group emptied by the spread rule: the next most uncertain
            if len(picked) == n:
                break
            if eligible[i]:
                take(i)
        return sorted(picked)  # candidates are in order of uncertainty
    # greedy k-center weighted by uncertainty
    dist = np.full(len(u), np.inf)
    while len(picked) < n and eligible.any():
        if not picked:
            i = int(np.flatnonzero(eligible)[0])  # the most uncertain
        else:
            d = np.where(eligible, dist, -1.0)
            top = d.max()
            gain = np.where(eligible, u * (d / top if top > 0 else 1.0), -1.0)
            i = int(np.argmax(gain))  # ties: the first, i.e. the more uncertain
        take(i)
        dist = np.minimum(dist, np.sqrt(((emb - emb[i]) ** 2).sum(axis=1)))
    return picked


# -- the whole run ----------------------------------------------------------------------------


def suggest(
    model: Any,
    data: str | Path | Any,
    settings: SuggestSettings | None = None,
    *,
    windowing: Windowing | None = None,
    reviewed: str | Path | Iterable[Any] | None = None,
    on_file: Callable[[], None] | None = None,
) -> Suggestions:
    """Score every window of the recordings in ``data`` (a file, a folder, a manifest or a
    list of them) with ``model`` (anything :func:`earmark.load` returns) and pick the
    ``settings.n`` windows to review next (see the module doc).

    ``windowing``: the windows scored (default: the model's clip length, half-overlapping,
    as ``earmark detect``). ``reviewed``: windows already reviewed, left out (see
    :func:`read_reviewed`). Unreadable recordings are skipped and listed in ``errors``;
    ``on_file`` is called after each recording. Raises :class:`EarmarkError` when no
    recording could be read."""
    from earmark.evaluation import resolve_thresholds
    from earmark.predict import input_files

    settings = settings or SuggestSettings()
    windowing = windowing or Windowing()
    multi = bool(getattr(model, "multi_label_", False))
    check_settings(model, settings)  # before any scoring
    classes = list(model.classes_)
    thresholds = resolve_thresholds(classes, getattr(model, "thresholds_", None))
    spans = read_reviewed(reviewed) if reviewed is not None else []
    paths = input_files(data)
    if not paths:
        raise EarmarkError(f"no audio files in {data}")
    capture = None
    if settings.embedding == "features":
        if getattr(model, "predictor", None) is None:
            settings = dataclasses.replace(settings, embedding="scores")  # an ensemble
        else:
            capture = _Capturing(model, _Projection(settings.seed))
    errors: list[tuple[str, str]] = []

    def tracks() -> Iterator[tuple[ScoreTrack, np.ndarray | None]]:
        for path in paths:
            try:
                track = score_file(capture or model, path, windowing)
            except AudioError as exc:
                errors.append((str(path), str(exc)))
            else:
                yield track, capture.take(len(track.starts)) if capture is not None else None
            if on_file is not None:
                on_file()

    result = suggest_tracks(
        tracks(),
        settings,
        classes=classes,
        multi_label=multi,
        thresholds=thresholds,
        reviewed=spans,
    )
    result.errors = errors
    if result.files == 0:
        raise EarmarkError(f"none of the {len(paths)} recordings could be read: {errors[0][1]}")
    return result


def suggest_tracks(
    tracks: Iterable[ScoreTrack | tuple[ScoreTrack, np.ndarray | None]],
    settings: SuggestSettings | None = None,
    *,
    classes: Sequence[str] | None = None,
    multi_label: bool = False,
    thresholds: np.ndarray | dict[str, float] | None = None,
    reviewed: str | Path | Iterable[Any] | None = None,
) -> Suggestions:
    """:func:`suggest` from score tracks already computed (a detection run's, read back
    with :func:`earmark.detection.tables.read_tracks`, or a cache of them): each item a
    :class:`ScoreTrack` or ``(track, embedding)`` with the ``[windows, dim]`` embedding the
    ``features`` rule needs. ``classes``: the tracks' (default: the first track's);
    ``multi_label`` / ``thresholds``: the model's (thresholds as :func:`earmark.evaluation.
    resolve_thresholds` takes them; default 0.5)."""
    from earmark.evaluation import resolve_thresholds

    settings = settings or SuggestSettings()
    measure = _measure(settings, multi_label)
    done = _Reviewed(read_reviewed(reviewed) if reviewed is not None else [])
    embedding = settings.embedding
    if embedding == "aisfx":
        from earmark.features import pretrained

        if not pretrained.available("aisfx"):
            pretrained.load("aisfx")  # the one-line install error
    rng = np.random.default_rng(settings.seed)
    pool = _Pool()
    result = Suggestions([], settings=settings, embedding=embedding)
    spread = settings.spread
    project = _Projection(settings.seed)
    t = None
    for item in tracks:
        track, emb = item if isinstance(item, tuple) else (item, None)
        if classes is None:
            classes = list(track.classes)
        if t is None:
            t = resolve_thresholds(classes, thresholds if thresholds is not None else None)
        if list(track.classes) != list(classes):
            raise EarmarkError(f"{track.path}: scored for {track.classes}, not {list(classes)}")
        if spread is None:
            spread = track.window
        n = len(track.starts)
        result.files += 1
        result.windows += n
        if embedding == "features":
            if emb is None:
                raise ParameterError(
                    f"{track.path}: the features embedding needs each window's features; "
                    "give (track, features) or use embedding='scores'"
                )
            emb = project(emb)
            if len(emb) != n:
                raise ParameterError(f"{track.path}: {len(emb)} embeddings for {n} windows")
        elif embedding == "scores":
            emb = np.asarray(track.scores, dtype=np.float32)
        else:
            emb = None
        unc, label = uncertainty(
            track.scores,
            measure=measure,
            thresholds=t if measure == "threshold" or multi_label else None,
        )
        ends = track.ends
        reviewed_mask = done.mask(track.path, track.starts, ends)
        result.excluded += int(reviewed_mask.sum())
        keep = np.flatnonzero(~reviewed_mask)
        ties = rng.random(n)
        resolved = str(Path(track.path).resolve())
        chunk = _Pool(
            files=[resolved] * len(keep),
            starts=np.asarray(track.starts, dtype=np.float64)[keep],
            ends=np.asarray(ends, dtype=np.float64)[keep],
            labels=label[keep],
            scores=np.asarray(track.scores, dtype=np.float64)[keep, label[keep]],
            unc=unc[keep],
            ties=ties[keep],
            emb=emb[keep] if emb is not None else None,
        )
        pool.add(chunk, settings.candidates)
    if embedding == "aisfx" and len(pool.starts):
        pool.emb = _aisfx_embeddings(pool.files, pool.starts, pool.ends)
    picked = _pick(pool, settings, float(spread or 0.0))
    names = list(classes or [])
    result.items = [
        Suggestion(
            file=pool.files[i],
            start_s=float(pool.starts[i]),
            end_s=float(pool.ends[i]),
            label=names[int(pool.labels[i])],
            score=float(pool.scores[i]),
            uncertainty=float(pool.unc[i]),
        )
        for i in picked
    ]
    return result


# -- the table --------------------------------------------------------------------------------


def write_suggestions(path: str | Path, suggestions: Suggestions | Sequence[Suggestion]) -> Path:
    """Write the suggestions as a CSV of :data:`SUGGESTION_COLUMNS`, atomically."""
    items = suggestions.items if isinstance(suggestions, Suggestions) else list(suggestions)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, SUGGESTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(s.to_dict() for s in items)
    return atomic_text(path, buf.getvalue())
