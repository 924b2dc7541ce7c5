"""The ``earmark`` command line: parses, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import earmark
from earmark import audio as audio_io
from earmark import data
from earmark.errors import EarmarkError
from earmark.features import FEATURE_KINDS, FeatureConfig, compute_features

app = typer.Typer(
    name="earmark",
    help="Audio classification: labelled audio in, a trained, evaluated classifier out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results and errors.")]


def _friendly(func: Callable) -> Callable:
    """Turn earmark's own errors into one clear line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EarmarkError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


@contextmanager
def _progress(description: str, total: int, quiet: bool) -> Iterator[Callable[[], None]]:
    """A progress bar (on stderr) and the callback that advances it; silent when quiet."""
    if quiet:
        yield lambda: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def _version(value: bool) -> None:
    if value:
        console.print(f"earmark {earmark.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Audio classification: labelled audio in, a trained, evaluated classifier out."""


@app.command("demo-data")
@_friendly
def demo_data(
    out: Annotated[Path, typer.Argument(help="Folder to write the data set to.")],
    voices: Annotated[int, typer.Option(min=1, help="Number of voices (groups).")] = 60,
    sr: Annotated[int, typer.Option(help="Sample rate of the files (Hz).")] = 16_000,
    seed: Annotated[int, typer.Option(help="Seed for voices, levels and noise.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Speak the digits zero to nine in many espeak-ng voices: a folder per class."""
    from earmark.data.demo import make_demo_digits

    with _progress("speaking digits", voices * 10, quiet) as advance:
        manifest = make_demo_digits(out, n_voices=voices, sr=sr, seed=seed, on_clip=advance)
    console.print(f"wrote {voices * 10} clips by {voices} voices to {out} (manifest: {manifest})")


def _fmt_seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


@app.command()
@_friendly
def inspect(
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    layout: Annotated[
        str, typer.Option(help=f"Layout: auto or {', '.join(data.LAYOUTS)}.")
    ] = "auto",
    header_only: Annotated[
        bool, typer.Option("--header-only", help="Read headers only (fast; misses cut files).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Classes, counts, durations, sample rates, channels, and the files that cannot be read."""
    manifest = data.load(path, layout=layout)
    with _progress("checking files", len(manifest), quiet or as_json) as advance:
        report = data.scan(manifest, decode=not header_only, on_file=advance)
    summary = report.summary()
    summary["layout"] = manifest.layout
    summary["bad_files"] = report.bad.to_dict(orient="records")
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(
        f"[bold]{path}[/]: layout [cyan]{manifest.layout}[/], {summary['files']} files, "
        f"{len(summary['classes'])} classes, {summary['groups']} groups, "
        f"{_fmt_seconds(summary['duration_s']['total'])} of audio"
    )
    table = Table("class", "files", "total", "min", "mean", "max", title="per class")
    ok = report.table[report.table["error"].isna()]
    for label, rows in ok.groupby("label"):
        d = rows["duration"].astype(float)
        table.add_row(
            str(label),
            str(len(rows)),
            _fmt_seconds(d.sum()),
            f"{d.min():.2f}",
            f"{d.mean():.2f}",
            f"{d.max():.2f}",
        )
    console.print(table)
    for key, name in (
        ("sample_rates", "sample rates (Hz)"),
        ("channels", "channels"),
        ("formats", "formats"),
    ):
        parts = ", ".join(f"{k}: {v}" for k, v in summary[key].items())
        console.print(f"{name}: {parts or '-'}")
    if summary["unlabelled"]:
        console.print(f"unlabelled files: {summary['unlabelled']}")
    if len(report.bad):
        console.print(f"[bold yellow]{len(report.bad)} unreadable files[/] (skipped):")
        for row in report.bad.head(20).itertuples():
            console.print(f"  {row.filepath}: {row.error}", highlight=False, soft_wrap=True)
        if len(report.bad) > 20:
            console.print(f"  ... and {len(report.bad) - 20} more (see --json)")
    else:
        console.print("unreadable files: 0")


@app.command()
@_friendly
def features(
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz file.")],
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(FEATURE_KINDS)}.")] = "logmel",
    layout: Annotated[str, typer.Option(help="Layout: auto or a known one.")] = "auto",
    sr: Annotated[int, typer.Option(help="Sample rate to resample to (Hz).")] = 16_000,
    duration: Annotated[
        float | None,
        typer.Option(help="Clip length in seconds (pad/crop); default: the longest clip."),
    ] = None,
    crop: Annotated[str, typer.Option(help="Crop policy for long clips: start|center.")] = "center",
    n_fft: Annotated[int, typer.Option(help="FFT size (samples).")] = 512,
    win_length: Annotated[int, typer.Option(help="Window length (samples).")] = 400,
    hop_length: Annotated[int, typer.Option(help="Hop length (samples).")] = 160,
    n_mels: Annotated[int, typer.Option(help="Mel bands.")] = 64,
    n_mfcc: Annotated[int, typer.Option(help="MFCC coefficients.")] = 20,
    deltas: Annotated[int, typer.Option(min=0, max=2, help="MFCC deltas: 0, 1 or 2.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Compute features for every file into one .npz (X, y, classes, filepaths, settings)."""
    if kind not in FEATURE_KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {FEATURE_KINDS}", param_hint="--kind")
    if crop not in ("start", "center"):
        raise typer.BadParameter("use start or center", param_hint="--crop")
    manifest = data.load(path, layout=layout)
    if duration is None and kind != "handcrafted":
        with _progress("reading headers", len(manifest), quiet) as advance:
            report = data.scan(manifest, decode=False, on_file=advance)
        longest = report.table["duration"].dropna().astype(float).max()
        if math.isnan(longest):
            raise EarmarkError(f"{path}: none of the {len(manifest)} files can be read")
        duration = math.ceil(longest * 100) / 100
        if not quiet:
            err_console.print(f"clip length: {duration:.2f} s (the longest clip; set --duration)")
    audio_cfg = audio_io.AudioConfig(sample_rate=sr, duration=duration, crop=crop)
    feat_cfg = FeatureConfig(
        kind=kind,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop_length,
        n_mels=n_mels,
        n_mfcc=n_mfcc,
        deltas=deltas,
    )
    with _progress(f"{kind} features", len(manifest), quiet) as advance:
        table = compute_features(manifest, audio_cfg, feat_cfg, on_file=advance)
    table.save(out)
    for _path, problem in table.skipped:
        err_console.print(f"[yellow]skipped[/] {problem}", highlight=False, soft_wrap=True)
    console.print(
        f"wrote {out}: X {tuple(table.X.shape)} ({kind}), {len(table.classes)} classes, "
        f"{len(table.skipped)} files skipped"
    )


@app.command()
@_friendly
def plot(
    path: Annotated[Path, typer.Argument(help="An audio file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Image to write (.png, .svg, .pdf).")],
    offset: Annotated[float, typer.Option(help="Start (s).")] = 0.0,
    duration: Annotated[float | None, typer.Option(help="Length to draw (s).")] = None,
    sr: Annotated[int | None, typer.Option(help="Resample to this rate (Hz) first.")] = None,
    n_mels: Annotated[int, typer.Option(help="Mel bands.")] = 64,
) -> None:
    """Draw the waveform over the log-mel spectrogram (time in s, frequency in Hz)."""
    from earmark.report import plot_clip

    y, rate = audio_io.load(path, sr=sr, mono=False, offset=offset, duration=duration)
    plot_clip(y, rate, out, features=FeatureConfig(n_mels=n_mels), title=path.name)
    console.print(f"wrote {out}")


def main() -> None:
    """Entry point of the ``earmark`` console script."""
    app()
