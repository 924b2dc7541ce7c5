"""Plots and reports: a clip's waveform over its log-mel spectrogram (axes in s and Hz), the
confusion matrix, and the files an evaluation leaves behind.

Figures are built with matplotlib's object API (no pyplot global state, safe in threads and
servers) and written to a temporary name, then renamed into place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from earmark.atomic import atomic_text, atomic_write
from earmark.features.config import FeatureConfig

if TYPE_CHECKING:
    from earmark.evaluation import Evaluation

__all__ = [
    "plot_calibration",
    "plot_clip",
    "plot_confusion",
    "plot_detection",
    "save_figure",
    "write_calibration_report",
    "write_evaluation",
    "write_history",
]


def save_figure(fig: Figure, out: str | Path, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``out`` (format from the extension) atomically; return the path."""
    return atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight"))


def plot_clip(
    y: np.ndarray,
    sr: int,
    out: str | Path,
    *,
    features: FeatureConfig | None = None,
    title: str | None = None,
) -> Path:
    """Draw ``y`` (``[channels, samples]`` or ``[samples]`` at ``sr`` Hz): the waveform on top
    (time in s, amplitude), the log-mel spectrogram below (time in s, frequency in Hz on a
    mel scale, colour in dB). Multi-channel audio is averaged for the spectrogram."""
    import librosa.display
    import torch

    from earmark.features.spectral import logmel

    y = np.asarray(y, dtype=np.float32)
    wave = y if y.ndim == 2 else y[None, :]
    cfg = features or FeatureConfig()
    fmax = cfg.fmax or sr / 2
    mel = logmel(
        torch.from_numpy(wave.mean(axis=0)),
        sr,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=fmax,
        top_db=cfg.top_db,
    ).numpy()

    fig = Figure(figsize=(10, 6), layout="constrained")
    ax_wave, ax_mel = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    t = np.arange(wave.shape[1]) / sr
    for c, row in enumerate(wave):
        ax_wave.plot(t, row, lw=0.6, label=f"channel {c}" if wave.shape[0] > 1 else None)
    if wave.shape[0] > 1:
        ax_wave.legend(loc="upper right", fontsize="small")
    ax_wave.set_ylabel("amplitude")
    ax_wave.set_xlim(0, max(t[-1], 1 / sr) if t.size else 1 / sr)
    ax_wave.set_title(title or f"{wave.shape[1] / sr:.2f} s at {sr} Hz")
    img = librosa.display.specshow(
        mel,
        sr=sr,
        hop_length=cfg.hop_length,
        x_axis="time",
        y_axis="mel",
        fmin=cfg.fmin,
        fmax=fmax,
        ax=ax_mel,
        cmap="magma",
    )
    ax_mel.set_xlabel("time (s)")
    ax_mel.set_ylabel("frequency (Hz)")
    fig.colorbar(img, ax=ax_mel, format="%+.0f dB", label="level (dB)")
    return save_figure(fig, out)


def plot_detection(
    path: str | Path,
    track: Any,
    events: Sequence[Any],
    out: str | Path,
    *,
    sample_rate: int = 16_000,
    classes: Sequence[str] | None = None,
    max_frames: int = 4000,
) -> Path:
    """A recording's log-mel spectrogram (top) over its score track (bottom: one line per
    class in ``classes``, default the classes with events or the best-scoring three) with
    the detected ``events`` shaded; time in seconds. Long recordings are streamed and the
    spectrogram hop is widened so at most ``max_frames`` columns are drawn."""
    import torch

    from earmark import audio as audio_io
    from earmark.features.spectral import LogMel

    duration = max(float(track.duration), 1e-3)
    hop = max(256, int(np.ceil(duration * sample_rate / max_frames)))
    n_fft = 1024 if hop <= 1024 else 1 << int(np.ceil(np.log2(hop)))
    frontend = LogMel(sample_rate, n_fft=n_fft, hop_length=hop, n_mels=64, top_db=None)
    columns = []
    block = hop * 2048  # whole frames per block: the columns tile the recording
    with torch.inference_mode():
        for y in audio_io.stream(path, block / sample_rate, sr=sample_rate):
            mel = frontend(torch.from_numpy(y[0]))
            columns.append(mel.numpy()[:, : -(-y.shape[1] // hop)])
    mel = np.concatenate(columns, axis=1) if columns else np.zeros((64, 1))
    mel = np.maximum(mel, mel.max() - 80.0)

    names = list(track.classes)
    if classes is None:
        with_events = [c for c in names if any(ev.label == c for ev in events)]
        best = (
            [names[i] for i in np.argsort(-track.scores.max(axis=0))[:3]]
            if len(track.scores)
            else []
        )
        classes = with_events or best
    fig = Figure(figsize=(12, 6), layout="constrained")
    ax_mel, ax_score = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ax_mel.imshow(
        mel,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, mel.shape[1] * hop / sample_rate, 0, mel.shape[0]),
    )
    ax_mel.set_ylabel("mel band")
    ax_mel.set_title(f"{Path(str(path)).name}: {duration:.1f} s, {len(events)} events")
    centres = track.starts + track.window / 2
    for name in classes:
        ax_score.plot(centres, track.scores[:, names.index(name)], lw=0.9, label=name)
    colours = {name: f"C{k}" for k, name in enumerate(classes)}
    for ev in events:
        for ax in (ax_mel, ax_score):
            ax.axvspan(ev.start, ev.end, color=colours.get(ev.label, "grey"), alpha=0.25, lw=0)
    ax_score.set_ylim(0, 1.02)
    ax_score.set_ylabel("score")
    ax_score.set_xlabel("time (s)")
    ax_score.set_xlim(0, duration)
    if classes:
        ax_score.legend(loc="upper right", fontsize="small", ncols=min(4, len(classes)))
    return save_figure(fig, out)


def plot_confusion(evaluation: Evaluation, out: str | Path, *, title: str | None = None) -> Path:
    """The confusion matrix: colours are row-normalized (recall per true class), cells show
    counts, and labels are rotated so long class names stay readable. Multi-label: one row
    per class, its 2 x 2 matrix laid out as absent -> (absent, present), present ->
    (absent, present), each half normalized (:func:`_plot_confusion_multilabel`)."""
    if evaluation.multi_label:
        return _plot_confusion_multilabel(evaluation, out, title=title)
    classes = evaluation.classes
    n = len(classes)
    size = max(4.5, 0.55 * n + 2.5)
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.subplots()
    norm = evaluation.confusion_normalized
    img = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fontsize = 10 if n <= 12 else 8 if n <= 25 else 6
    for i in range(n):
        for j in range(n):
            count = int(evaluation.confusion[i, j])
            if count:
                colour = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=fontsize)
    acc = evaluation.metrics["accuracy"]
    ax.set_title(title or f"accuracy {acc:.1%} on {len(evaluation.y_true)} clips")
    fig.colorbar(img, ax=ax, label="fraction of the true class", shrink=0.8)
    return save_figure(fig, out)


def _plot_confusion_multilabel(
    evaluation: Evaluation, out: str | Path, *, title: str | None = None
) -> Path:
    """Per-class confusion of a multi-label evaluation at its thresholds: rows are classes,
    columns true negative, false positive, false negative, true positive; colours are the
    fraction of the clips without the class (first two) or with it (last two)."""
    classes = evaluation.classes
    n = len(classes)
    counts = evaluation.confusion.reshape(n, 4)
    norm = evaluation.confusion_normalized.reshape(n, 4)
    fig = Figure(figsize=(6.5, max(2.5, 0.45 * n + 1.5)), layout="constrained")
    ax = fig.subplots()
    img = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(4), ["TN", "FP", "FN", "TP"])
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("absent: predicted absent / present      present: predicted absent / present")
    for i in range(n):
        for j in range(4):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", color=colour)
    m = evaluation.metrics["map"]
    ax.set_title(title or f"mAP {m:.3f} on {len(evaluation.y_true)} clips")
    fig.colorbar(img, ax=ax, label="fraction of the true side", shrink=0.8)
    return save_figure(fig, out)


def write_evaluation(
    out_dir: str | Path,
    evaluation: Evaluation,
    *,
    title: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``per_class.csv``, ``confusion.png`` and a short ``report.md``
    into ``out_dir``; return their paths. ``details`` (model, data, split...) go into the
    JSON and the report as they are."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out / "metrics.json",
        "per_class": out / "per_class.csv",
        "confusion": out / "confusion.png",
        "report": out / "report.md",
    }
    atomic_text(paths["metrics"], json.dumps({**(details or {}), **evaluation.to_dict()}, indent=2))
    atomic_text(paths["per_class"], evaluation.per_class.to_csv(index=False, float_format="%.4f"))
    plot_confusion(evaluation, paths["confusion"], title=title)
    m = evaluation.metrics
    lines = [f"# {title}", ""]
    for key, value in (details or {}).items():
        lines.append(f"- **{key}**: {value if not isinstance(value, dict) else json.dumps(value)}")
    # The same count as the console's and the per-class supports: the files scored.
    lines.append(f"- **files evaluated**: {len(evaluation.y_true)}")
    if evaluation.skipped:
        lines.append(f"- **unreadable files skipped**: {len(evaluation.skipped)}")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in m.items()]
    if evaluation.multi_label:
        lines += [
            "",
            "| class | AP | ROC-AUC | threshold | precision | recall | f1 | support |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in evaluation.per_class.itertuples():
            lines.append(
                f"| {row._1} | {row.ap:.3f} | {row.roc_auc:.3f} | {row.threshold:.3f} | "
                f"{row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} | {row.support} |"
            )
        lines += ["", "![per-class confusion](confusion.png)", ""]
        atomic_text(paths["report"], "\n".join(lines))
        return paths
    lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for row in evaluation.per_class.itertuples():
        lines.append(
            f"| {row._1} | {row.precision:.3f} | {row.recall:.3f} | {row.f1:.3f} | {row.support} |"
        )
    pairs = [
        (evaluation.confusion[i, j], evaluation.classes[i], evaluation.classes[j])
        for i in range(len(evaluation.classes))
        for j in range(len(evaluation.classes))
        if i != j and evaluation.confusion[i, j]
    ]
    if pairs:
        lines += ["", "Most frequent confusions (true -> predicted):", ""]
        lines += [f"- {t} -> {p}: {int(c)}" for c, t, p in sorted(pairs, reverse=True)[:5]]
    lines += ["", "![confusion matrix](confusion.png)", ""]
    atomic_text(paths["report"], "\n".join(lines))
    return paths


def write_history(out_dir: str | Path, history: list[dict[str, float]]) -> dict[str, Path]:
    """``history.csv`` (one row per epoch) and ``curves.png`` (losses and validation accuracy
    against epochs) in ``out_dir``."""
    import pandas as pd

    out = Path(out_dir)
    frame = pd.DataFrame(history)
    paths = {"history": out / "history.csv", "curves": out / "curves.png"}
    atomic_text(paths["history"], frame.to_csv(index=False, float_format="%.6g"))
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for col, label in (("train_loss", "train"), ("valid_loss", "validation")):
        if col in frame:
            ax_loss.plot(frame["epoch"], frame[col], marker=".", label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.legend()
    if "valid_accuracy" in frame:
        ax_acc.plot(frame["epoch"], frame["valid_accuracy"], marker=".", label="accuracy")
        ax_acc.plot(frame["epoch"], frame["valid_f1_macro"], marker=".", label="macro F1")
        ax_acc.set_ylim(0, 1)
        ax_acc.legend()
    ax_acc.set_xlabel("epoch")
    ax_acc.set_title("validation")
    save_figure(fig, paths["curves"])
    return paths


def plot_calibration(
    name: str,
    raw: np.ndarray,
    calibrated: np.ndarray,
    truth: np.ndarray,
    choice: dict[str, Any],
    out: str | Path,
    *,
    target: float | None = None,
    bins: int = 10,
) -> Path:
    """One class's calibration on its validation data: the precision-recall curve of the
    calibrated scores with the chosen threshold marked (and the target precision), and the
    reliability diagram (fraction of positives against mean score per bin) before and after
    calibration, the diagonal being perfect calibration."""
    from sklearn.metrics import precision_recall_curve

    from earmark.calibration import reliability

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_pr, ax_rel = fig.subplots(1, 2)
    if truth.any():
        precision, recall, _ = precision_recall_curve(truth, calibrated)
        ax_pr.plot(recall, precision, lw=1.2, label="calibrated scores")
        ax_pr.plot(
            [choice["recall"]],
            [choice["precision"]],
            "o",
            color="C3",
            label=f"threshold {choice['threshold']:.3g}",
        )
    if target is not None:
        ax_pr.axhline(target, color="grey", ls="--", lw=0.8, label=f"target {target:g}")
    ax_pr.set_xlim(0, 1.02)
    ax_pr.set_ylim(0, 1.02)
    ax_pr.set_xlabel("recall")
    ax_pr.set_ylabel("precision")
    ax_pr.set_title(f"{name}: precision-recall (validation)")
    ax_pr.legend(loc="lower left", fontsize="small")
    ax_rel.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
    for scores, label in ((raw, "raw"), (calibrated, "calibrated")):
        conf, frac, counts = reliability(scores, truth, bins=bins)
        used = counts > 0
        ax_rel.plot(conf[used], frac[used], marker="o", ms=3, label=label)
    ax_rel.set_xlim(0, 1)
    ax_rel.set_ylim(0, 1)
    ax_rel.set_xlabel("mean score")
    ax_rel.set_ylabel("fraction positive")
    ax_rel.set_title(f"{name}: reliability")
    ax_rel.legend(loc="upper left", fontsize="small")
    return save_figure(fig, out)


def write_calibration_report(
    out_dir: str | Path,
    calibration: Any,
    raw: np.ndarray,
    targets: np.ndarray,
) -> dict[str, Path]:
    """A calibration's report in ``out_dir``: ``thresholds.csv`` (per class: threshold,
    validation precision / recall / F1, reached or why not) and one figure per class
    (:func:`plot_calibration`, named ``NN-<class>.png``); returns their paths by name."""
    import re

    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calibrated = calibration.apply(np.asarray(raw, dtype=np.float32)).astype(np.float64)
    rows = [{"class": c, **calibration.per_class[c]} for c in calibration.classes]
    paths = {"thresholds": out / "thresholds.csv"}
    atomic_text(paths["thresholds"], pd.DataFrame(rows).to_csv(index=False, float_format="%.6g"))
    for i, name in enumerate(calibration.classes):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60]
        paths[name] = plot_calibration(
            name,
            raw[:, i],
            calibrated[:, i],
            targets[:, i],
            calibration.per_class[name],
            out / f"{i:02d}-{safe}.png",
            target=calibration.target_precision,
        )
    return paths
