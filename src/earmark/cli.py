"""The ``earmark`` command line: parses, calls the library, prints. Nothing else lives here.

Every command exits with one of :data:`EXIT_CODES` (0 ok, 1 error, 2 usage, 3 partial, 130
interrupted), takes ``--quiet``, and prints errors as one line on stderr. ``--json`` prints
one JSON document on stdout and nothing else there.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import earmark
from earmark import audio as audio_io
from earmark import data
from earmark.data.manifest import SPLIT_NAMES, Manifest
from earmark.errors import EarmarkError, Interrupted, ParameterError
from earmark.features import FEATURE_KINDS, FeatureConfig, compute_features
from earmark.settings import SettingsError

app = typer.Typer(
    name="earmark",
    help="Audio classification: labelled audio in, a trained, evaluated classifier out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_OK = 0
EXIT_ERROR = 1  # nothing (or nothing useful) was done: the error says why
EXIT_USAGE = 2  # a bad option, hyper-parameter or recipe setting; nothing was run
EXIT_PARTIAL = 3  # some input files could not be read; the rest was done and written
EXIT_INTERRUPTED = 130  # Ctrl-C; what can be resumed was kept
EXIT_CODES = {
    EXIT_OK: "ok",
    EXIT_ERROR: "error",
    EXIT_USAGE: "usage",
    EXIT_PARTIAL: "partial",
    EXIT_INTERRUPTED: "interrupted",
}
PARTIAL_EXIT = EXIT_PARTIAL  # the older name

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only results and errors.")]
NoCalibration = Annotated[
    bool,
    typer.Option(
        "--no-calibration",
        help="Raw model scores and default thresholds, not the run's `earmark calibrate` ones.",
    ),
]
AsJson = Annotated[
    bool, typer.Option("--json", help="Print the result as one JSON document (only that).")
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an earlier earmark output at --out (nothing else)."),
]
Runtime = Annotated[
    str,
    typer.Option(
        help="torch, onnx (the network's ONNX export, exported once and cached) or int8 "
        "(that export quantized, calibrated on the run's training data or the inputs)."
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Cores to use (default: all): torch's threads per call; with --runtime onnx or "
        "int8, that many batches at once, one thread each (serve: threads per call).",
    ),
]


def _load_for(
    run: Path,
    runtime: str,
    *,
    device: str = "cpu",
    threads: int | None = None,
    no_calibration: bool = False,
    spin: bool = True,
    inputs: list[str] | None = None,
) -> Any:
    """The model at ``run`` on ``runtime`` (:func:`earmark.runtimes.load_runtime`), its
    networks on ``device`` for the torch runtime; the ONNX runtimes run on the CPU, so
    ``--device cuda`` with them is refused. ``inputs``: audio to calibrate int8 on when the
    run's training data is gone."""
    from earmark.runtimes import RUNTIMES, load_runtime
    from earmark.training import resolve_device

    with _options():
        if runtime not in RUNTIMES:
            raise ParameterError(f"--runtime: use {', '.join(RUNTIMES)}, got {runtime!r}")
        if runtime != "torch" and device.startswith("cuda"):
            raise ParameterError(f"--runtime {runtime} runs on the CPU: use --device cpu or auto")
        resolve_device(device)
    if threads is not None and runtime == "torch":
        import torch

        torch.set_num_threads(threads)
    model = load_runtime(
        run,
        runtime,
        calibration=not no_calibration,
        threads=threads,
        spin=spin,
        calibration_data=inputs or (),
    )
    if runtime == "torch":
        for member in getattr(model, "members", [model]):
            family = getattr(member, "family", None)
            pretrained = getattr(getattr(member, "features", None), "pretrained", False)
            if family == "neural" or (family == "classical" and pretrained):
                member.to(device)  # a network, or a pretrained frontend before a classical one
    return model


DaskWorkers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Run on a local Dask cluster of N worker processes, one thread each, one task "
        "per file (pip install 'earmark\\[dask]'); default: in this process.",
    ),
]
DaskScheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run on the Dask cluster at this scheduler address (tcp://host:8786), one task "
        "per file; its workers must see the files (and the model) at these paths.",
    ),
]


def _error(message: object) -> None:
    err_console.print(
        f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True
    )


class OptionError(EarmarkError):
    """A command-line option's value is refused (NaN, infinite, out of range) before
    anything is read or written: one line on stderr, exit code 2."""


@contextmanager
def _options() -> Iterator[None]:
    """Check option values by building the library's settings objects: what they refuse
    (a :class:`ParameterError`) is a usage error, exit code 2."""
    try:
        yield
    except ParameterError as exc:
        raise OptionError(str(exc)) from None


def _check_numbers(func: Callable, kwargs: dict[str, Any]) -> None:
    """Refuse NaN and infinity in any number option of ``func``, naming the flag: no earmark
    option means "no limit" by infinity."""
    for name, value in kwargs.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise OptionError(f"{_flag(func, name)}: must be a finite number, got {v}")


def _flag(func: Callable, name: str) -> str:
    """The long flag of ``func``'s parameter ``name`` (``--merge-gap`` for ``merge_gap``,
    or what its ``typer.Option`` declares)."""
    import typing

    hint = typing.get_type_hints(func, include_extras=True).get(name)
    for info in getattr(hint, "__metadata__", ()):
        decls = [getattr(info, "default", None), *getattr(info, "param_decls", ())]
        longs = [d for d in decls if isinstance(d, str) and d.startswith("--")]
        if longs:
            return longs[0].split("/")[0]
    return "--" + name.replace("_", "-")


def _friendly(func: Callable) -> Callable:
    """Turn earmark's own errors into one clear line on stderr and the exit code for it:
    a bad option or setting 2, Ctrl-C 130, anything else earmark reports 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _check_numbers(func, kwargs)
            return func(*args, **kwargs)
        except (SettingsError, OptionError) as exc:
            _error(exc)
            raise typer.Exit(EXIT_USAGE) from None
        except Interrupted as exc:
            hint = f"; continue with --resume {exc.resume}" if exc.resume else ""
            err_console.print(
                f"[yellow]interrupted:[/] {escape(str(exc))}{escape(hint)}", highlight=False
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except EarmarkError as exc:
            _error(exc)
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper


def _emit_json(doc: Any) -> None:
    """One JSON document on stdout, nothing else (no colour, no wrapping)."""
    typer.echo(json.dumps(doc, indent=2, default=str))


def _one_format(**flags: bool) -> None:
    """Refuse output flags that exclude each other (``--json --csv``): a usage error."""
    given = [f"--{name}" for name, on in flags.items() if on]
    if len(given) > 1:
        raise typer.BadParameter(f"choose one of {' / '.join(given)}", param_hint=given[0])


def _list_unreadable(problems: list[str], *, total: int | None = None) -> None:
    """Every input that could not be read as one line on stderr, ``unreadable: PATH:
    PROBLEM`` (with --json and --quiet too: errors are always printed); ``total`` when the
    list was cut short."""
    for problem in problems:
        err_console.print(
            f"[red]unreadable:[/] {escape(str(problem))}", highlight=False, soft_wrap=True
        )
    if total is not None and total > len(problems):
        err_console.print(f"  ... and {total - len(problems)} more", highlight=False)


def _partial(skipped: int, done: int) -> None:
    """Exit 3 when some inputs were skipped and something was done, 1 when nothing was."""
    if skipped and not done:
        raise typer.Exit(EXIT_ERROR)
    if skipped:
        raise typer.Exit(EXIT_PARTIAL)


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


def _dask_engine(workers: int | None, scheduler: str | None) -> dict[str, Any] | None:
    """The Dask engine asked for (``--workers`` / ``--scheduler``) as the library's keyword
    arguments, or ``None`` for a run in this process. Both flags: a usage error; dask not
    installed: a one-line error saying how to install it, before any work."""
    if workers is None and scheduler is None:
        return None
    from earmark.distributed import check_address, check_engine, require_dask

    if workers is not None and scheduler is not None:
        raise OptionError("--workers starts a local Dask cluster, --scheduler uses one: not both")
    with _options():
        check_engine(workers, scheduler)
    require_dask()
    if scheduler is not None:
        with _options():
            check_address(scheduler)
    return {"workers": workers, "scheduler": scheduler}


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
    for c in (console, err_console):
        # Piped or captured output is read by programs: no wrapping at 80 columns.
        piped = not c.is_terminal
        c.soft_wrap = piped
        c.width = 10_000 if piped else None  # type: ignore[assignment]


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
    from earmark.artifact import check_out
    from earmark.data.demo import make_demo_digits

    check_out(out, into=True)
    with _progress("speaking digits", voices * 10, quiet) as advance:
        manifest = make_demo_digits(out, n_voices=voices, sr=sr, seed=seed, on_clip=advance)
    console.print(f"wrote {voices * 10} clips by {voices} voices to {out} (manifest: {manifest})")


@app.command("demo-scenes")
@_friendly
def demo_scenes(
    out: Annotated[Path, typer.Argument(help="Folder to write the scenes to.")],
    digits: Annotated[Path, typer.Option(help="The demo digits (`earmark demo-data`).")],
    target: Annotated[str, typer.Option(help="The digit to detect.")] = "seven",
    recordings: Annotated[int, typer.Option(min=1, help="Number of recordings.")] = 4,
    seconds: Annotated[float, typer.Option(help="Length of each recording (s).")] = 120.0,
    snr_db: Annotated[
        float | None,
        typer.Option(
            help="Digit level over the background (dB); with --multi the middle of "
            "a +-4 dB range drawn per word. Default 6 (8 with --multi)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for placement and noise.")] = 0,
    multi: Annotated[
        bool,
        typer.Option(
            "--multi",
            help="Multi-label field scenes: train/valid/test recordings with several target "
            "words, overlapping at times, distractors, and a Raven table per recording.",
        ),
    ] = False,
    targets: Annotated[
        str, typer.Option(help="With --multi: the target words, comma-separated.")
    ] = "seven,three,nine",
    splits: Annotated[
        str, typer.Option(help="With --multi: train,valid,test recording counts.")
    ] = "8,4,6",
    quiet: Quiet = False,
) -> None:
    """Long recordings with digits at known times over background noise, their truth table,
    and a training set for a detector of one digit (target / other / noise); with --multi,
    field soundscapes with several target words annotated in Raven tables."""
    from earmark.artifact import check_out
    from earmark.data.scenes import make_demo_scenes

    check_out(out, into=True)
    if multi:
        _demo_field_scenes(out, digits, targets, splits, seconds, snr_db, seed, quiet)
        return
    snr_db = 6.0 if snr_db is None else snr_db
    with _progress("building recordings", recordings, quiet) as advance:
        scenes = make_demo_scenes(
            out,
            digits,
            target=target,
            n_recordings=recordings,
            seconds=seconds,
            snr_db=snr_db,
            seed=seed,
            on_recording=advance,
        )
    console.print(
        f"wrote {recordings} recordings to {scenes.recordings}, truth {scenes.truth}, "
        f"training set {scenes.train} (classes {target}, other, noise)",
        soft_wrap=True,
    )


def _demo_field_scenes(
    out: Path,
    digits: Path,
    targets: str,
    splits: str,
    seconds: float,
    snr_db: float | None,
    seed: int,
    quiet: bool,
) -> None:
    from earmark.data.field import make_field_scenes

    words = tuple(w.strip() for w in targets.split(",") if w.strip())
    try:
        counts = tuple(int(v) for v in splits.split(","))
    except ValueError:
        raise OptionError(f"--splits takes three counts like 8,4,6, got {splits!r}") from None
    if len(counts) != 3:
        raise OptionError(f"--splits takes three counts like 8,4,6, got {splits!r}")
    mid = 8.0 if snr_db is None else snr_db
    with _progress("building field recordings", max(0, sum(counts)), quiet) as advance:
        scenes = make_field_scenes(
            out,
            digits,
            targets=words,
            n_recordings=counts,  # type: ignore[arg-type]
            seconds=seconds,
            snr_db=(mid - 4.0, mid + 4.0),
            seed=seed,
            on_recording=advance,
        )
    per_split = ", ".join(f"{n} {s}" for s, n in zip(scenes.recordings, counts, strict=True))
    console.print(
        f"wrote {sum(counts)} recordings ({per_split}) "
        f"with Raven tables under {out / 'recordings'}, truth per split under {out / 'truth'}, "
        f"targets {', '.join(scenes.targets)}",
        soft_wrap=True,
    )


def _fmt_seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


@app.command()
@_friendly
def inspect(
    path: Annotated[
        Path,
        typer.Argument(
            help="Data set folder, manifest CSV, annotation table (Raven, Audacity, CSV) or "
            "folder of tables."
        ),
    ],
    layout: Annotated[
        str, typer.Option(help=f"Layout: auto or {', '.join(data.LAYOUTS)}.")
    ] = "auto",
    header_only: Annotated[
        bool, typer.Option("--header-only", help="Read headers only (fast; misses cut files).")
    ] = False,
    recordings: Annotated[
        Path | None,
        typer.Option(
            help="Annotation tables: the folder of the recordings (default: the tables' "
            "folder); its recordings that no table covers are listed."
        ),
    ] = None,
    label_column: Annotated[
        str | None,
        typer.Option(help="Raven tables: the label column (default: Annotation, Label, ...)."),
    ] = None,
    table_format: Annotated[
        str,
        typer.Option(
            "--format", help="Annotation tables: auto, raven, audacity, csv or crowsetta:<name>."
        ),
    ] = "auto",
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Classes, counts, durations, sample rates, channels, and the files that cannot be read
    (exit code 3 when there are any). On annotation tables over long recordings: classes,
    counts and durations of the annotations, overlapping annotations, annotations outside
    their file and recordings without annotations."""
    from earmark.data import annotations

    if (
        recordings is not None
        or label_column is not None
        or table_format != "auto"
        or (layout == "auto" and annotations.is_annotation_source(path))
    ):
        _inspect_annotations(path, recordings, label_column, table_format, as_json, quiet)
        return
    manifest = data.load(path, layout=layout)
    with _progress("checking files", len(manifest), quiet or as_json) as advance:
        report = data.scan(manifest, decode=not header_only, on_file=advance)
    summary = report.summary()
    summary["layout"] = manifest.layout
    summary["bad_files"] = report.bad.to_dict(orient="records")
    _list_unreadable([f"{row.filepath}: {row.error}" for row in report.bad.itertuples()])
    if as_json:
        _emit_json(summary)
        _partial(summary["unreadable"], summary["readable"])
        return
    console.print(
        f"[bold]{path}[/]: layout [cyan]{manifest.layout}[/], {summary['files']} files "
        f"({summary['readable']} readable, {summary['unreadable']} unreadable), "
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
    if not quiet:
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
        console.print(f"[bold yellow]{len(report.bad)} unreadable files[/] (listed on stderr)")
    else:
        console.print("unreadable files: 0")
    _partial(summary["unreadable"], summary["readable"])


def _inspect_annotations(
    path: Path,
    recordings: Path | None,
    label_column: str | None,
    table_format: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """``inspect`` on annotation tables: the summary of
    :meth:`earmark.data.annotations.Annotations.summary`; exit code 3 when some recordings
    cannot be read."""
    from earmark.data.annotations import check_format, read_annotations

    with _options():
        check_format(table_format)
    ann = read_annotations(
        path, recordings=recordings, format=table_format, label_column=label_column
    )
    summary = ann.summary()
    bad = summary["unreadable"]
    _list_unreadable([f"{b['recording']}: {b['error']}" for b in bad])
    readable = summary["recordings"] - len(bad)
    if as_json:
        _emit_json(summary)
        _partial(len(bad), readable)
        return
    console.print(
        f"[bold]{path}[/]: {summary['tables']} annotation tables, {summary['recordings']} "
        f"recordings ({_fmt_seconds(summary['recorded_s'])}), {summary['annotations']} "
        f"annotations, {len(summary['classes'])} classes",
        soft_wrap=True,
    )
    table = Table("class", "count", "recordings", "total", "mean", "min", "max", title="per class")
    for label, c in summary["classes"].items():
        table.add_row(
            label,
            str(c["count"]),
            str(c["recordings"]),
            _fmt_seconds(c["total_s"]),
            f"{c['mean_s']:.2f}",
            f"{c['min_s']:.2f}",
            f"{c['max_s']:.2f}",
        )
    if not quiet:
        console.print(table)
    o = summary["overlaps"]
    console.print(
        f"overlapping annotations: {o['same_class']} pairs of the same class, "
        f"{o['different_classes']} of different classes"
    )
    console.print(f"annotations outside their file: {len(summary['outside'])}")
    for row in summary["outside"][: 0 if quiet else 20]:
        console.print(
            f"  {row['table']}: line {row['line']}: {row['label']} {row['start_s']:g}-"
            f"{row['end_s']:g} s, the recording lasts {row['duration_s']:g} s",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"recordings without annotations: {len(summary['without_annotations'])}")
    if not quiet:
        for rec in summary["without_annotations"][:20]:
            console.print(f"  {rec}", soft_wrap=True, highlight=False)
    if summary["skipped_files"]:
        console.print(f"text files that are not tables: {len(summary['skipped_files'])}")
    _partial(len(bad), readable)


@app.command()
@_friendly
def features(
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz file.")],
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(FEATURE_KINDS)}.")] = "logmel",
    layout: Annotated[str, typer.Option(help="Layout: auto or a known one.")] = "auto",
    sr: Annotated[
        int | None,
        typer.Option(help="Sample rate to resample to (Hz); default 16000, a frontend's own."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="Clip length in seconds (pad/crop); default: the longest clip."),
    ] = None,
    crop: Annotated[str, typer.Option(help="Crop policy for long clips: start|center.")] = "center",
    n_fft: Annotated[int, typer.Option(help="FFT size (samples).")] = 512,
    win_length: Annotated[int, typer.Option(help="Window length (samples).")] = 400,
    hop_length: Annotated[int, typer.Option(help="Hop length (samples).")] = 160,
    n_mels: Annotated[
        int | None, typer.Option(help="Mel bands (default: 64; hand-crafted 40).")
    ] = None,
    n_mfcc: Annotated[
        int | None, typer.Option(help="MFCC coefficients (default: 20; hand-crafted 13).")
    ] = None,
    deltas: Annotated[int, typer.Option(min=0, max=2, help="MFCC deltas: 0, 1 or 2.")] = 0,
    workers: DaskWorkers = None,
    scheduler: DaskScheduler = None,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Compute features for every file into one .npz (X, y, classes, filepaths, settings);
    unreadable files are skipped and listed (exit code 3). With --workers / --scheduler each
    file is a Dask task; the table is the same."""
    from earmark.artifact import check_out

    if kind not in FEATURE_KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {FEATURE_KINDS}", param_hint="--kind")
    if crop not in ("start", "center"):
        raise typer.BadParameter("use start or center", param_hint="--crop")
    sr = _feature_rate(kind, sr, quiet or as_json)
    with _options():  # refused values are usage errors, before any file is read
        audio_io.AudioConfig(sample_rate=sr, duration=duration, crop=crop)
        feat_cfg = FeatureConfig(
            kind=kind,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            n_mels=n_mels,
            n_mfcc=n_mfcc,
            deltas=deltas,
        )
    dask = _dask_engine(workers, scheduler)
    check_out(out, overwrite=overwrite, file=True)
    quiet = quiet or as_json
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
    with _progress(f"{kind} features", len(manifest), quiet) as advance:
        if dask is None:
            table = compute_features(manifest, audio_cfg, feat_cfg, on_file=advance)
        else:
            from earmark import distributed

            table = distributed.compute_features(
                manifest, audio_cfg, feat_cfg, on_file=advance, **dask
            )
    table.save(out)
    _list_unreadable([problem for _path, problem in table.skipped])
    if as_json:
        _emit_json(
            {
                "out": str(out),
                "shape": list(table.X.shape),
                "kind": kind,
                "classes": list(table.classes),
                "files": len(table.filepaths),
                "skipped": [{"path": p, "error": e} for p, e in table.skipped],
            }
        )
    else:
        console.print(
            f"wrote {out}: X {tuple(table.X.shape)} ({kind}), {len(table.classes)} classes, "
            f"{len(table.skipped)} files skipped"
        )
    _partial(len(table.skipped), len(table.filepaths))


def _feature_rate(kind: str, sr: int | None, quiet: bool) -> int:
    """The sample rate of ``kind`` features: a pretrained frontend's own (a different
    ``--sr`` is replaced, saying so), else ``--sr`` or 16000."""
    from earmark.features.pretrained import info, is_frontend

    if not is_frontend(kind):
        return 16_000 if sr is None else sr
    rate = info(kind).sample_rate
    if sr is not None and sr != rate:
        err_console.print(
            f"[yellow]note:[/] the {kind} frontend takes {rate} Hz audio: decoding at {rate} Hz,"
            f" not the {sr} Hz asked for",
            highlight=False,
        )
    return rate


@app.command()
@_friendly
def embed(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files, folders or manifest CSVs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Table to write: .parquet (or .npz).")],
    frontend: Annotated[
        str, typer.Option(help="Pretrained frontend (see `earmark models`).")
    ] = "aisfx",
    window: Annotated[
        float | None, typer.Option(help="Window (s); default: the frontend's own.")
    ] = None,
    hop: Annotated[
        float | None, typer.Option(help="Seconds between windows; default: the window.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows embedded at once.")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    workers: DaskWorkers = None,
    scheduler: DaskScheduler = None,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Embed every window of audio files with a pretrained frontend into one table: a row
    per window (file, start_s, end_s, embedding). Long files are streamed; unreadable files
    are skipped and listed (exit code 3). With --workers / --scheduler each file is a Dask
    task; the table is the same."""
    from earmark.artifact import check_out
    from earmark.detection.windows import Windowing
    from earmark.features import pretrained
    from earmark.features.pretrained.embed import FORMATS
    from earmark.predict import input_files
    from earmark.training import resolve_device

    with _options():  # refused values are usage errors, before any file is read
        pretrained.info(frontend)
        Windowing(window=window, hop=hop)
        resolve_device(device)
        if out.suffix.lower() not in FORMATS:
            raise ParameterError(f"{out}: the output name must end in .parquet or .npz")
    dask = _dask_engine(workers, scheduler)
    check_out(out, overwrite=overwrite, file=True)
    paths = input_files(inputs)
    if not paths:
        raise EarmarkError(f"no audio files in {', '.join(map(str, inputs))}")
    quiet = quiet or as_json
    options = {"window": window, "hop": hop, "batch_size": batch_size, "device": device}
    with _progress(f"{frontend} embeddings", len(paths), quiet) as advance:
        if dask is None:
            table = pretrained.embed_files(paths, frontend, on_file=advance, **options)
        else:
            from earmark import distributed

            table = distributed.embed_files(paths, frontend, on_file=advance, **options, **dask)
    if len(table):
        table.save(out)
    _list_unreadable([problem for _path, problem in table.skipped])
    done = table.embedded_files
    if as_json:
        _emit_json(
            {
                "out": str(out) if len(table) else None,
                "frontend": frontend,
                "rows": len(table),
                "dim": int(table.vectors.shape[1]),
                "window_s": table.window_seconds,
                "hop_s": table.hop_seconds,
                "files": done,
                "unreadable": len(table.skipped),
                "skipped": [{"path": p, "error": e} for p, e in table.skipped],
            }
        )
    elif len(table):
        console.print(
            f"wrote {out}: {len(table)} windows of {done} files, {table.vectors.shape[1]}-d "
            f"{frontend} embeddings, {len(table.skipped)} files skipped"
        )
    _partial(len(table.skipped), done)


@app.command("index")
@_friendly
def index_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files, folders or manifest CSVs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to write.")],
    frontend: Annotated[
        str, typer.Option(help="Pretrained frontend (see `earmark models`).")
    ] = "aisfx",
    hop: Annotated[
        float | None, typer.Option(help="Seconds between windows; default: the window.")
    ] = None,
    dtype: Annotated[str, typer.Option(help="Stored vectors: f16, f32 or i8.")] = "f16",
    batch_size: Annotated[int, typer.Option(min=1, help="Windows embedded at once.")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted index at --out.")
    ] = False,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Embed every window of a corpus with a pretrained frontend into a similarity index
    (`earmark search`, `earmark serve --index`). Long files are streamed; unreadable files
    are skipped and listed (exit code 3); an interrupted run continues with --resume."""
    from earmark.features import pretrained
    from earmark.predict import input_files
    from earmark.review.index import DTYPES, build_index

    with _options():  # refused values are usage errors, before any file is read
        pretrained.info(frontend)
        if dtype not in DTYPES:
            raise ParameterError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if resume and overwrite:
            raise ParameterError("give --resume or --overwrite, not both")
    quiet = quiet or as_json
    total = len(input_files(inputs))
    with _progress(f"{frontend} index", total, quiet) as advance:
        summary = build_index(
            inputs,
            out,
            frontend=frontend,
            hop=hop,
            dtype=dtype,
            batch_size=batch_size,
            device=device,
            overwrite=overwrite,
            resume=resume,
            on_file=advance,
        )
    _list_unreadable([problem for _path, problem in summary.skipped])
    done = summary.files - len(summary.skipped)
    if as_json:
        _emit_json(
            {
                "out": str(out),
                "windows": summary.windows,
                "files": done,
                "embedded": summary.embedded,
                "resumed": summary.resumed,
                "unreadable": len(summary.skipped),
                "skipped": [{"path": p, "error": e} for p, e in summary.skipped],
                "wall_s": round(summary.wall_seconds, 2),
            }
        )
    else:
        resumed = f" ({summary.resumed} from the interrupted run)" if summary.resumed else ""
        console.print(
            f"wrote {out}: {summary.windows} windows of {done} files{resumed}, "
            f"{len(summary.skipped)} files skipped",
            highlight=False,
        )
    _partial(len(summary.skipped), done)


@app.command()
@_friendly
def search(
    index: Annotated[Path, typer.Argument(help="Index folder written by `earmark index`.")],
    query: Annotated[Path, typer.Argument(help="An audio clip to find windows like.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="Hits to show.")] = 10,
    exact: Annotated[
        bool, typer.Option("--exact", help="Scan every window instead of the graph.")
    ] = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """The windows of the indexed corpus nearest to a query clip (the mean of its windows'
    embeddings), nearest first, with the cosine distance (--quiet: the table alone)."""
    from earmark.review.index import open_index

    result = open_index(index).search_file(query, k=k, exact=exact or None)
    if as_json:
        _emit_json({"query": str(query), **result.to_dict()})
        return
    table = Table("rank", "distance", "file", "start_s", "end_s")
    for hit in result.hits:
        table.add_row(
            str(hit.rank),
            f"{hit.distance:.4f}",
            escape(hit.file),
            f"{hit.start_s:.2f}",
            f"{hit.end_s:.2f}",
        )
    console.print(table)
    if not quiet:
        how = "exact scan" if result.exact else "approximate"
        console.print(
            f"{len(result.hits)} hits in {result.took_ms:.0f} ms ({how})", highlight=False
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
    events: Annotated[
        Path | None,
        typer.Option(help="A folder written by `earmark detect`: draw its score track and events."),
    ] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Draw the waveform over the log-mel spectrogram (time in s, frequency in Hz); with
    --events, the recording's spectrogram over its score track and detected events."""
    from earmark.artifact import check_out
    from earmark.report import plot_clip

    check_out(out, overwrite=overwrite, file=True)
    if events is not None:
        from earmark.detection.tables import read_events, read_tracks
        from earmark.detection.truth import file_key
        from earmark.report import plot_detection

        key = file_key(str(path))
        track = next((t for t in read_tracks(events) if file_key(t.path) == key), None)
        if track is None:
            raise EarmarkError(f"{events}: no score track for {path.name}")
        found = [ev for ev in read_events(events / "events.csv") if file_key(ev.file) == key]
        plot_detection(path, track, found, out)
        if not quiet:
            console.print(f"wrote {out} ({len(found)} events)")
        return
    with _options():  # the span or rate asked for is refused before anything is decoded
        y, rate = audio_io.load(path, sr=sr, mono=False, offset=offset, duration=duration)
    plot_clip(y, rate, out, features=FeatureConfig(n_mels=n_mels), title=path.name)
    if not quiet:
        console.print(f"wrote {out}")


# -- training, evaluation, prediction ----------------------------------------------------------

SPLITS = (*SPLIT_NAMES, "all")
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Hyper-parameter NAME=VALUE (repeatable), e.g. -p C=1."),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(help="Feature cache folder (default: $EARMARK_CACHE or ~/.cache/earmark)."),
]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Compute features without a cache.")]
Workers = Annotated[
    int | None,
    typer.Option(
        help="Processes / threads computing features on this machine (default: all cores); "
        "not Dask workers (detect, predict, embed and features take those)."
    ),
]


#: The options of `train` and `cv` by the settings they set, for one-line errors.
OPTION_NAMES = {
    "recipe": "--config",
    "model": "--model",
    "features.kind": "--features",
    "audio.sample_rate": "--sr",
    "audio.duration": "--duration",
    "train.epochs": "--epochs",
    "train.batch_size": "--batch-size",
    "train.lr": "--lr",
    "train.augment": "--augment",
    "train.background": "--background",
    "train.patience": "--patience",
    "train.loss": "--loss",
    "train.focal_gamma": "--focal-gamma",
    "train.device": "--device",
    "split.test_size": "--test-size",
    "split.group": "--group",
    "seed": "--seed",
    "unlabeled": "--unlabeled",
    "label_fraction": "--label-fraction",
}


def _cache(cache_dir: Path | None, no_cache: bool) -> Path | None:
    from earmark.cache import default_cache_dir

    return None if no_cache else (cache_dir or default_cache_dir())


def _metrics_table(metrics: dict[str, float], title: str) -> Table:
    table = Table("metric", "value", title=title)
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}")
    return table


def _report_skipped(
    skipped: list[tuple[str, str]] | list[dict], quiet: bool, *, total: int | None = None
) -> None:
    """The unreadable files on stderr: their count (``total`` when the list is cut short)
    and the first of them."""
    total = len(skipped) if total is None else total
    if not total:
        return
    if not quiet:
        err_console.print(f"[yellow]{total} unreadable files skipped[/]:")
    problems = [item["error"] if isinstance(item, dict) else item[1] for item in skipped]
    _list_unreadable(problems, total=total)


@app.command()
@_friendly
def train(
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Model directory to write.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see `earmark models`).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML recipe; options given here win.")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the interrupted run in this directory.")
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(help="Feature kind (or a pretrained frontend: aisfx); default: the model's."),
    ] = None,
    params: Params = None,
    sr: Annotated[
        int | None,
        typer.Option(
            help="Sample rate to resample to (Hz); default 16000, a pretrained frontend's own."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Clip length in seconds (pad/crop).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (networks).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Batch size (networks).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (networks).")] = None,
    augment: Annotated[
        str | None,
        typer.Option(
            help="Augmentation: none, default, strong, or robust (new recording conditions: "
            "EQ or telephone band, reverb, codec, speed, noise) (networks)."
        ),
    ] = None,
    background: Annotated[
        Path | None,
        typer.Option(help="Folder of noise files mixed in by --augment strong or robust."),
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience in epochs; 0: off.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Train a network in this many processes (PyTorch DDP: gloo on the CPU, one "
            "GPU each with cuda); --batch-size stays the global batch. Under torchrun: leave "
            "it out.",
        ),
    ] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            help="auto (cross-entropy; binary cross-entropy for multi-label data) or focal "
            "(networks)."
        ),
    ] = None,
    focal_gamma: Annotated[
        float | None, typer.Option(help="Focal loss exponent (--loss focal; default 2).")
    ] = None,
    unlabeled: Annotated[
        Path | None,
        typer.Option(help="Folder of unlabelled audio (semi-supervised models: sgan)."),
    ] = None,
    label_fraction: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Keep the labels of this fraction of each class's training files; the rest "
            "count as unlabelled (experiments).",
        ),
    ] = None,
    test_size: Annotated[
        float | None, typer.Option(help="Fraction held out for testing (default 0.2).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the split and the model.")] = None,
    group: Annotated[
        bool | None,
        typer.Option("--group/--no-group", help="Keep groups on one side (default: if any)."),
    ] = None,
    annotations: AnnotationsFlag = False,
    recordings: Recordings = None,
    window: Window = None,
    hop: Hop = None,
    min_overlap: MinOverlapOption = None,
    complete: Complete = False,
    reviews: Annotated[
        Path | None,
        typer.Option(
            "--reviews",
            help="Reviews database (`earmark serve`, `earmark reviews add`): add the reviewed "
            "windows to training, cut from their recordings (correct / relabelled: positives; "
            "wrong: hard negatives).",
        ),
    ] = None,
    negative_label: Annotated[
        str | None,
        typer.Option(
            "--negative-label",
            help="With --reviews on single-label data: the class of hard negatives (a "
            "background class of the data; default 'background').",
        ),
    ] = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    workers: Workers = None,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Train on a split of the data, evaluate on its test part, save the model, its report and
    its settings. --resume RUN continues a network's interrupted run with the run's own
    settings (written to RUN unless --out says otherwise); Ctrl-C keeps the checkpoint.
    --reviews DB adds reviewed windows to the training part (the test part is the data's).
    --nproc N trains a network in N processes (or run `torchrun --nproc-per-node N -m
    earmark train ...`); the model saved is the one a single process saves."""
    from earmark.ddp import is_main_process
    from earmark.settings import parse_params, read_recipe, train_settings
    from earmark.workflows import train_run

    if out is None and resume is None:
        raise typer.BadParameter("give --out (or --resume RUN)", param_hint="--out")
    if negative_label is not None and reviews is None:
        raise typer.BadParameter("goes with --reviews DB", param_hint="--negative-label")
    if reviews is not None and not reviews.is_file():
        raise typer.BadParameter(f"{reviews}: no such reviews database", param_hint="--reviews")
    options = {
        "model": model,
        "params": parse_params(params or []),
        "features": {"kind": features},
        "audio": {"sample_rate": sr, "duration": duration},
        "train": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "augment": augment,
            "background": str(background) if background else None,
            "patience": patience,
            "device": device,
            "loss": loss,
            "focal_gamma": focal_gamma,
        },
        "split": {"test_size": test_size, "group": group},
        "seed": seed,
        "unlabeled": str(unlabeled) if unlabeled else None,
        "label_fraction": label_fraction,
    }
    recipe = read_recipe(config) if config is not None else None
    settings = train_settings(recipe, options, resume=resume, names=OPTION_NAMES)
    out = out or resume
    clf = _classifier(settings, cache_dir=_cache(cache_dir, no_cache), workers=workers)
    if nproc is not None and clf.family != "neural":  # before any audio is read
        raise typer.BadParameter(
            f"only networks train in several processes; {clf.model} is {clf.family}",
            param_hint="--nproc",
        )
    manifest = _load_data(
        path,
        annotations=annotations,
        recordings=recordings,
        window=window,
        hop=hop,
        min_overlap=min_overlap,
        complete=complete,
    )
    main = is_main_process()  # under torchrun, rank 0 reports; the others train quietly
    distributed = {"nproc": nproc} if nproc is not None else {}
    with _training_progress(len(manifest), clf.family, quiet or as_json or not main) as hooks:
        result = train_run(
            manifest,
            clf,
            out,
            split=settings.split,
            overwrite=overwrite,
            resume=resume,
            reviews=reviews,
            negative_label=negative_label,
            **hooks,
            **distributed,
            **settings.fit_options(),
        )
    if result is None:  # a torchrun process other than rank 0: it trained its share
        return
    ev = result.evaluation
    if result.reviews is not None and not (quiet or as_json):
        from earmark.review.training import SKIP_REASONS

        added = result.reviews
        console.print(
            f"reviews: {added['positives']} positive and {added['negatives']} hard-negative "
            "windows added to training",
            highlight=False,
        )
        for reason, n in added["skipped"].items():
            console.print(f"  {n} reviewed spans left out: {SKIP_REASONS[reason]}")
    skipped = clf.training_.get("skipped_files", []) + [
        {"path": p, "error": e} for p, e in ev.skipped
    ]
    n_skipped = clf.training_.get("skipped", 0) + len(ev.skipped)
    _report_skipped(skipped, quiet or as_json, total=n_skipped)
    if as_json:
        _emit_json(
            {
                "model": settings.model,
                "out": str(result.out),
                "train_files": clf.training_["files"],
                "classes": list(clf.classes_),
                "test_files": len(ev.y_true),
                "metrics": ev.metrics,
                "unreadable": n_skipped,
                "skipped": skipped,
                "reviews": result.reviews,
            }
        )
    else:
        console.print(
            f"trained [bold]{settings.model}[/] on {clf.training_['files']} files "
            f"({len(clf.classes_)} classes), tested on {len(ev.y_true)} held-out files"
            + (f" ({n_skipped} unreadable files skipped)" if n_skipped else "")
        )
        console.print(_metrics_table(ev.metrics, f"test split: {len(ev.y_true)} files"))
        console.print(f"model and report in {result.out}")
    _partial(n_skipped, clf.training_["files"])


AnnotationsFlag = Annotated[
    bool,
    typer.Option(
        "--annotations",
        help="PATH is annotation tables (Raven, Audacity, CSV; a table or a folder of them "
        "beside their recordings): train on their windows, read from the recordings.",
    ),
]
Recordings = Annotated[
    Path | None,
    typer.Option(help="Folder of the recordings the annotation tables name (default: theirs)."),
]
Window = Annotated[
    float | None,
    typer.Option("--window", help="Annotation windows: length in seconds (required for tables)."),
]
Hop = Annotated[
    float | None,
    typer.Option("--hop", help="Annotation windows: step in seconds (default: the window)."),
]
MinOverlapOption = Annotated[
    str | None,
    typer.Option(
        "--min-overlap",
        help="Annotation windows: overlap that makes a window positive, seconds (0.2) or a "
        "fraction of the shorter of window and call ('50%', the default).",
    ),
]
Complete = Annotated[
    bool,
    typer.Option(
        "--complete",
        help="The tables list every call: unannotated windows are negatives (class 'background').",
    ),
]


def _load_data(
    path: Path,
    *,
    annotations: bool = False,
    recordings: Path | None = None,
    window: float | None = None,
    hop: float | None = None,
    min_overlap: str | None = None,
    complete: bool = False,
) -> Manifest:
    """The data set at ``path``, or, for annotation tables, the manifest of their windows
    (segment rows read from the recordings: :func:`earmark.data.load_windows`). Tables are
    taken as tables with ``--annotations``, any window option, or when ``path`` is a Raven or
    Audacity table or a folder of them (a CSV of ``file,start_s,end_s,label`` without these
    options is read as a manifest of segments)."""
    given = window is not None or hop is not None or min_overlap is not None or complete
    if not (annotations or given or recordings is not None):
        from earmark.data.annotations import is_annotation_source

        auto = is_annotation_source(path) and not (path.is_file() and path.suffix == ".csv")
        if not auto:
            return data.load(path)
    if window is None:
        raise typer.BadParameter(
            "annotation tables are cut into windows: give their length in seconds",
            param_hint="--window",
        )
    from earmark.data.segments import load_windows

    manifest = load_windows(
        path,
        window_s=window,
        hop_s=hop,
        min_overlap=min_overlap if min_overlap is not None else "50%",
        complete=complete,
        recordings=recordings,
    )
    unreadable = manifest.frame.attrs.get("unreadable") or {}
    _list_unreadable([f"{p}: {e}" for p, e in unreadable.items()])
    return manifest


def _classifier(settings: Any, **kw: Any) -> Any:
    """The settings' classifier; what it says about them (a pretrained frontend's own
    sample rate replacing the one asked for) as one line on stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = settings.classifier(**kw)
    for w in caught:
        err_console.print(f"[yellow]note:[/] {escape(str(w.message))}", highlight=False)
    return clf


@contextmanager
def _training_progress(files: int, family: str, quiet: bool) -> Iterator[dict[str, Any]]:
    """The progress hooks of a training run: files decoded, then (networks) steps and one
    line per epoch, on stderr; none when quiet."""
    if family != "neural":
        with _progress("decoding / features", files, quiet) as advance:
            yield {"on_file": advance}
        return
    if quiet:
        yield {}
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=err_console, transient=True) as bar:
        decoding = bar.add_task("decoding", total=files)
        task = bar.add_task("training", total=None, visible=False)
        last = {"acc": ""}

        def step_done(done: int, total: int, loss: float) -> None:
            bar.update(decoding, visible=False)
            desc = f"training: loss {loss:.3f}{last['acc']}"
            bar.update(task, completed=done, total=total, description=desc, visible=True)

        def epoch_line(r: dict[str, float]) -> None:
            acc = r.get("valid_accuracy")
            last["acc"] = f", valid acc. {acc:.3f}" if acc is not None else ""
            bar.console.print(
                f"epoch {int(r['epoch'])}: loss {r['train_loss']:.4f}"
                f"{last['acc']}, {r['clips_per_s']:.0f} clips/s"
            )
            if r.get("mode_collapse"):
                bar.console.print(
                    f"[yellow]warning[/]: possible mode collapse (generated patches "
                    f"{r['gen_diversity']:.2f} as diverse as real ones)"
                )

        yield {
            "on_file": lambda: bar.advance(decoding),
            "on_step": step_done,
            "on_epoch": epoch_line,
        }


@app.command()
@_friendly
def evaluate(
    run: Annotated[Path, typer.Argument(help="A model directory written by `earmark train`.")],
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    split: Annotated[str, typer.Option(help=f"Which files: {', '.join(SPLITS)}.")] = "test",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for the report (default: in the model)."),
    ] = None,
    annotations: AnnotationsFlag = False,
    recordings: Recordings = None,
    window: Window = None,
    hop: Hop = None,
    min_overlap: MinOverlapOption = None,
    complete: Complete = False,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Metrics table, per-class table and confusion matrix of a saved model on a data split;
    unreadable files are skipped and listed (exit code 3)."""
    from earmark.artifact import check_out
    from earmark.workflows import evaluate_run

    if split not in SPLITS:
        raise typer.BadParameter(f"use one of {SPLITS}", param_hint="--split")
    if out is not None:
        check_out(out, overwrite=overwrite)
    manifest = _load_data(
        path,
        annotations=annotations,
        recordings=recordings,
        window=window,
        hop=hop,
        min_overlap=min_overlap,
        complete=complete,
    )
    with _progress("evaluating", len(manifest), quiet or as_json) as advance:
        result = evaluate_run(run, manifest, split=split, out=out, on_file=advance)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(warning))}")
    ev = result.evaluation
    _report_skipped(ev.skipped, quiet or as_json)
    if as_json:
        _emit_json(
            {
                "split": split,
                "files": len(ev.y_true),
                "unreadable": len(ev.skipped),
                **ev.to_dict(),
                "warnings": result.warnings,
                "written": {k: str(v) for k, v in result.files.items()},
            }
        )
        _partial(len(ev.skipped), len(ev.y_true))
        return
    console.print(_metrics_table(ev.metrics, f"{split} split: {len(ev.y_true)} files"))
    ranked = ("ap", "roc_auc", "threshold") if ev.multi_label else ()  # multi-label: + AP...
    table = Table("class", *ranked, "precision", "recall", "f1", "support", title="per class")
    for row in ev.per_class.itertuples():
        scores = [f"{getattr(row, k):.3f}" for k in (*ranked, "precision", "recall", "f1")]
        table.add_row(str(row._1), *scores, str(row.support))
    if not quiet:
        console.print(table)
    console.print(f"confusion matrix: {result.files['confusion']}")
    _partial(len(ev.skipped), len(ev.y_true))


Model = Annotated[str | None, typer.Option(help="Model name (see `earmark models`).")]
Recipe = Annotated[
    Path | None, typer.Option("--config", help="YAML recipe; options given here win.")
]
Epochs = Annotated[int | None, typer.Option(min=1, help="Epochs (networks).")]
BatchSize = Annotated[int | None, typer.Option(min=1, help="Batch size (networks).")]
LearningRate = Annotated[float | None, typer.Option(help="Peak learning rate (networks).")]
Augment = Annotated[
    str | None, typer.Option(help="Augmentation: none, default, strong (networks).")
]
Patience = Annotated[
    int | None, typer.Option(help="Early-stopping patience in epochs; 0: off (networks).")
]
Device = Annotated[str | None, typer.Option(help="auto, cpu or cuda (networks).")]
Group = Annotated[
    bool | None,
    typer.Option("--group/--no-group", help="Group k-fold (default: when the data has groups)."),
]


def _cv_settings(
    config: Path | None, options: dict[str, Any], train: dict[str, Any]
) -> Any:  # -> earmark.settings.TrainSettings
    """The settings `cv` and `tune` start from: a recipe, then the options given."""
    from earmark.settings import read_recipe, train_settings

    recipe = read_recipe(config) if config is not None else None
    return train_settings(recipe, {**options, "train": train}, names=OPTION_NAMES)


def _fold_hooks(
    family: str, n_folds: int, quiet: bool
) -> tuple[dict[str, Any], list[tuple[int, dict[str, float]]]]:
    """The hooks of :func:`earmark.workflows.run_cv` that print a line per fold (and, for
    networks, per epoch of each fold's training) on stderr unless quiet, and the list they
    collect the folds' metrics in."""
    lines: list[tuple[int, dict[str, float]]] = []

    def fold_done(i: int, m: dict[str, float]) -> None:
        lines.append((i, m))
        if not quiet:
            acc, f1 = m["accuracy"], m["f1_macro"]
            ranked = f"mAP {m['map']:.4f}, " if "map" in m else ""  # multi-label
            err_console.print(
                f"fold {i + 1}/{n_folds}: {ranked}accuracy {acc:.4f}, macro F1 {f1:.4f}"
            )

    def epoch_line(i: int, r: dict[str, float]) -> None:
        acc = r.get("valid_accuracy")
        valid = f", valid acc. {acc:.3f}" if acc is not None else ""
        err_console.print(
            f"fold {i + 1}/{n_folds}, epoch {int(r['epoch'])}: loss {r['train_loss']:.4f}{valid}",
            highlight=False,
        )

    hooks: dict[str, Any] = {"on_fold": fold_done}
    if family == "neural" and not quiet:
        hooks["on_epoch"] = epoch_line
    return hooks, lines


def _cv_options(
    model: str | None,
    params: list[str] | None,
    features: str | None,
    sr: int | None,
    duration: float | None,
    seed: int | None,
    **train: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings and training options `cv` and `tune` take from their command line (the
    options not given are None: a recipe's or the defaults apply)."""
    from earmark.settings import parse_params

    options = {
        "model": model,
        "params": parse_params(params or []),
        "features": {"kind": features},
        "audio": {"sample_rate": sr, "duration": duration},
        "seed": seed,
    }
    return options, train


@app.command()
@_friendly
def cv(
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    model: Model = None,
    config: Recipe = None,
    folds: Annotated[
        int | None,
        typer.Option(min=2, help="Number of folds; default: the data set's own folds, else 5."),
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Feature kind (default: the model's).")
    ] = None,
    params: Params = None,
    sr: Annotated[
        int | None,
        typer.Option(
            help="Sample rate (Hz); default 16000, or the rate a frontend or model takes."
        ),
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Clip length (s).")] = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    augment: Augment = None,
    patience: Patience = None,
    device: Device = None,
    group: Group = None,
    seed: Annotated[int | None, typer.Option(help="Seed for folds and model (default 0).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the results as JSON.")
    ] = None,
    annotations: AnnotationsFlag = False,
    recordings: Recordings = None,
    window: Window = None,
    hop: Hop = None,
    min_overlap: MinOverlapOption = None,
    complete: Complete = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    workers: Workers = None,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Cross-validate: per-fold metrics and mean ± std; group-aware when groups exist;
    unreadable files are skipped and listed (exit code 3). Networks train once per fold,
    as `train` trains them, with early-stopping data from the fold's training part."""
    from earmark.artifact import check_out
    from earmark.atomic import atomic_text
    from earmark.workflows import run_cv

    options, train = _cv_options(
        model, params, features, sr, duration, seed,
        epochs=epochs, batch_size=batch_size, lr=lr, augment=augment, patience=patience,
        device=device,
    )  # fmt: skip
    settings = _cv_settings(config, options, train)
    if out is not None:
        check_out(out, overwrite=overwrite, file=True)
    clf = _classifier(settings, cache_dir=_cache(cache_dir, no_cache), workers=workers)
    quiet = quiet or as_json
    manifest = _load_data(
        path,
        annotations=annotations,
        recordings=recordings,
        window=window,
        hop=hop,
        min_overlap=min_overlap,
        complete=complete,
    )
    n_folds = folds or (manifest.frame["fold"].nunique() if manifest.has_folds else 5)
    hooks, lines = _fold_hooks(clf.family, n_folds, quiet)
    with _progress("features", len(manifest), quiet or clf.family == "neural") as advance:
        result, skipped = run_cv(
            manifest, clf, folds=folds, group=group, seed=settings.seed, on_file=advance, **hooks
        )
    record = {"model": settings.model, "files": sum(result.fold_sizes), **result.to_dict()}
    if out is not None:
        atomic_text(out, json.dumps(record, indent=2) + "\n")
    _report_skipped(skipped, quiet)
    if as_json:
        _emit_json({**record, "unreadable": len(skipped)})
        _partial(len(skipped), record["files"])
        return
    # multi-label folds report ranking metrics (mAP, ROC-AUC) and F1 at the thresholds
    multi = "map" in result.mean
    keys = ("map", "roc_auc_macro", "f1_macro") if multi else ("accuracy", "balanced_accuracy")
    keys = keys if multi else (*keys, "f1_macro")
    heads = ("mAP", "ROC-AUC", "macro F1") if multi else ("accuracy", "balanced acc.", "macro F1")
    per_fold = Table("fold", "n", *heads, title=f"{settings.model}: {result.kind}")
    for (i, m), n in zip(lines, result.fold_sizes, strict=True):
        cells = [f"{m[k]:.4f}" for k in keys]
        per_fold.add_row(str(i + 1), str(n), *cells)
    console.print(per_fold)
    mean, std = result.mean, result.std
    for key in keys:
        console.print(f"{key}: {mean[key]:.4f} ± {std[key]:.4f}")
    if out is not None:
        console.print(f"wrote {out}")
    _partial(len(skipped), record["files"])


@app.command()
@_friendly
def tune(
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder of the search: study.db, trials.csv, best.yaml."),
    ],
    model: Model = None,
    trials: Annotated[
        int, typer.Option(min=1, help="Trials the study should hold in all (a rerun continues).")
    ] = 20,
    folds: Annotated[
        int | None,
        typer.Option(min=2, help="Folds per trial; default: the data set's own folds, else 3."),
    ] = None,
    metric: Annotated[str, typer.Option(help="What to maximize: a cv metric.")] = "f1_macro",
    space: Annotated[
        Path | None,
        typer.Option(help="YAML search space (default: the model's; see `earmark tune --help`)."),
    ] = None,
    config: Recipe = None,
    features: Annotated[
        str | None, typer.Option(help="Feature kind (default: the model's).")
    ] = None,
    params: Params = None,
    sr: Annotated[int | None, typer.Option(help="Sample rate (Hz; default 16000).")] = None,
    duration: Annotated[float | None, typer.Option(help="Clip length (s).")] = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: LearningRate = None,
    augment: Augment = None,
    patience: Patience = None,
    device: Device = None,
    group: Group = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for the sampler, folds and models (default 0).")
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune",
            help="Stop a trial whose running fold mean is below the median of finished ones.",
        ),
    ] = True,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    workers: Workers = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start a new study in a folder that holds one.")
    ] = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Search hyper-parameters (Optuna TPE, seeded) scored by grouped k-fold
    cross-validation; bad trials are pruned after a fold. The study is kept in OUT/study.db:
    run the same command again to continue an interrupted search (--trials is the total).
    Writes OUT/trials.csv and OUT/best.yaml, a recipe for `earmark train --config`.

    A search space file maps settings to a range or choices, e.g.
    `params: {C: {low: 0.01, high: 100, log: true}, kernel: [rbf, linear]}`
    `train: {lr: {low: 1.0e-4, high: 1.0e-2, log: true}, epochs: {low: 10, high: 40}}`."""
    from earmark.evaluation import METRICS
    from earmark.tuning import read_space
    from earmark.tuning import tune as run_tune

    if metric not in METRICS:
        raise typer.BadParameter(f"use one of {', '.join(METRICS)}", param_hint="--metric")
    options, train = _cv_options(
        model, params, features, sr, duration, seed,
        epochs=epochs, batch_size=batch_size, lr=lr, augment=augment, patience=patience,
        device=device,
    )  # fmt: skip
    if model is None and config is None:
        raise SettingsError("--model", "give the model to tune (or a --config recipe naming it)")
    settings = _cv_settings(config, options, train)
    search_space = read_space(space, settings) if space is not None else None
    quiet = quiet or as_json
    manifest = data.load(path)

    def trial_line(r: Any, total: int) -> None:
        if quiet:
            return
        what = {
            "complete": f"{metric} {r.score:.4f} ± {r.std:.4f}",
            "pruned": f"pruned after {r.folds} fold{'s' * (r.folds != 1)} "
            f"({metric} {r.score or 0:.4f})",
            "failed": f"failed: {r.error}",
        }.get(r.state, r.state)
        took = f", {r.duration_s:.1f} s" if r.duration_s is not None else ""
        err_console.print(
            f"trial {r.number} ({min(total, r.number + 1)}/{total}): {escape(what)}{took}  "
            f"[dim]{escape(_values_text(r.values))}[/]",
            highlight=False,
            soft_wrap=True,
        )

    def fold_line(number: int, fold: int, m: dict[str, float]) -> None:
        if not quiet:
            err_console.print(
                f"  trial {number}, fold {fold + 1}: {metric} {m[metric]:.4f}", highlight=False
            )

    with _progress("features", len(manifest), quiet or settings.train is not None) as advance:
        result = run_tune(
            manifest,
            settings,
            out,
            trials=trials,
            folds=folds,
            metric=metric,
            space=search_space,
            group=group,
            prune=prune,
            overwrite=overwrite,
            cache_dir=_cache(cache_dir, no_cache),
            workers=workers,
            on_trial=trial_line,
            on_fold=fold_line,
            on_file=advance,
        )
    _report_skipped(result.skipped, quiet)
    counts = {s: sum(t.state == s for t in result.trials) for s in ("complete", "pruned", "failed")}
    best = result.best
    if as_json:
        _emit_json(
            {
                "out": str(out),
                "model": settings.model,
                "metric": metric,
                "folds": result.fold_kind,
                "trials": len(result.trials),
                **counts,
                "best": None
                if best is None
                else {"number": best.number, "score": best.score, "std": best.std, **best.values},
                "unreadable": len(result.skipped),
                "written": {k: str(v) for k, v in result.files.items()},
            }
        )
    else:
        table = Table(
            "rank", "trial", metric, "±", "settings", "s",
            title=f"best trials of {len(result.trials)}: {settings.model}, {result.fold_kind}",
        )  # fmt: skip
        for rank, r in enumerate(result.ranked(5), 1):
            took = f"{r.duration_s:.1f}" if r.duration_s is not None else ""
            table.add_row(
                str(rank), str(r.number), f"{r.score:.4f}", f"{r.std:.4f}",
                escape(_values_text(r.values)), took,
            )  # fmt: skip
        console.print(table)
        console.print(
            f"{counts['complete']} complete, {counts['pruned']} pruned, "
            f"{counts['failed']} failed; trials in {result.files['trials']}"
        )
        if "best" in result.files:
            console.print(f"best settings: {result.files['best']}")
    if best is None:
        raise EarmarkError(f"no trial completed; see {result.files['trials']}")
    _partial(len(result.skipped), len(manifest))


def _values_text(values: dict[str, Any]) -> str:
    """``params.C=3.2, train.lr=0.001`` (numbers to 4 significant digits)."""

    def short(v: Any) -> str:
        return (
            f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if not isinstance(v, str) else v
        )

    return ", ".join(f"{k}={short(v)}" for k, v in values.items())


@app.command()
@_friendly
def predict(
    run: Annotated[Path, typer.Argument(help="A model directory written by `earmark train`.")],
    inputs: Annotated[list[Path], typer.Argument(help="Audio files, folders or manifest CSVs.")],
    top_k: Annotated[
        int, typer.Option(min=1, help="Labels to show per file (at most the classes).")
    ] = 3,
    as_json: AsJson = False,
    as_jsonl: Annotated[
        bool, typer.Option("--jsonl", help="Print one JSON object per file (JSON Lines).")
    ] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    windows: Annotated[
        bool, typer.Option(help="Include window scores (--json / --jsonl).")
    ] = False,
    pooling: Annotated[str | None, typer.Option(help="Pool window scores by mean or max.")] = None,
    runtime: Runtime = "torch",
    device: Annotated[str, typer.Option(help="Where networks run: auto, cpu or cuda.")] = "auto",
    threads: Threads = None,
    no_calibration: NoCalibration = False,
    workers: DaskWorkers = None,
    scheduler: DaskScheduler = None,
    quiet: Quiet = False,
) -> None:
    """Top-k labels with scores for each file; long audio is windowed and pooled. A
    multi-label model also lists every class at or above its threshold (``present``; the
    run's calibrated thresholds, else 0.5). Unreadable files are listed on stderr (exit code
    3; 1 when none could be read). With --workers / --scheduler each file is a Dask task
    (the torch runtime on each worker)."""
    from earmark.predict import input_files

    _one_format(json=as_json, jsonl=as_jsonl, csv=as_csv)
    if pooling is not None and pooling not in ("mean", "max"):
        raise typer.BadParameter("use mean or max", param_hint="--pooling")
    dask = _dask_engine(workers, scheduler)
    if dask is not None and runtime != "torch":
        raise OptionError(f"--runtime {runtime} runs in this process: Dask workers run torch")
    paths = input_files(inputs)
    if not paths:
        raise EarmarkError(f"no audio files in {', '.join(map(str, inputs))}")
    clf = _load_for(
        run,
        runtime,
        device=device,
        threads=threads,
        no_calibration=no_calibration,
        inputs=paths,
    )
    if pooling is not None:
        for member in getattr(clf, "members", [clf]):
            member.pooling = pooling
    top_k = min(top_k, len(clf.classes_))
    machine = as_json or as_jsonl or as_csv
    multi = bool(getattr(clf, "multi_label_", False))
    with _progress("predicting", len(paths), quiet or machine) as advance:
        if dask is None:
            preds = clf.predict_files(paths, top_k=top_k, on_file=advance)
        else:
            from earmark import distributed

            preds = distributed.predict_files(
                run,
                paths,
                top_k=top_k,
                calibration=not no_calibration,
                pooling=pooling,
                on_file=advance,
                **dask,
            )
    failed = [p for p in preds if p.error is not None]
    if as_json:
        _emit_json(
            {
                "model": str(run),
                "top_k": top_k,
                "files": len(preds),
                "unreadable": len(failed),
                "predictions": [p.to_dict(windows=windows) for p in preds],
            }
        )
    elif as_jsonl:
        for p in preds:
            typer.echo(json.dumps(p.to_dict(windows=windows)))
    elif as_csv:
        import csv
        import sys

        writer = csv.writer(sys.stdout)
        present = ["present"] if multi else []  # multi-label: 1 where the label is present
        writer.writerow(["path", "rank", "label", "score", *present, "duration_s", "error"])
        for p in preds:
            if p.error is not None:
                writer.writerow([p.path, "", "", "", *([""] if multi else []), "", p.error])
            for rank, (label, score) in enumerate(zip(p.labels, p.scores, strict=True), 1):
                flag = [int(label in (p.present or []))] if multi else []
                writer.writerow(
                    [p.path, rank, label, f"{score:.6f}", *flag, f"{p.duration:.3f}", ""]
                )
    elif len(failed) < len(preds) and multi:
        table = Table("file", "present", *(f"#{k}" for k in range(1, top_k + 1)), "s")
        for p in preds:
            if p.error is not None:
                continue
            top = [f"{lab} {sc:.2f}" for lab, sc in zip(p.labels, p.scores, strict=True)]
            top += [""] * (top_k - len(top))
            table.add_row(
                Path(p.path).name, ", ".join(p.present or []) or "-", *top, f"{p.duration:.2f}"
            )
        console.print(table)
    elif len(failed) < len(preds):  # an empty table says nothing
        table = Table("file", "label", "score", *(f"#{k}" for k in range(2, top_k + 1)), "s")
        for p in preds:
            if p.error is not None:
                continue
            rest = [f"{lab} {sc:.2f}" for lab, sc in zip(p.labels[1:], p.scores[1:], strict=True)]
            rest += [""] * (top_k - 1 - len(rest))
            table.add_row(
                Path(p.path).name, p.labels[0], f"{p.scores[0]:.3f}", *rest, f"{p.duration:.2f}"
            )
        console.print(table)
    _list_unreadable([str(p.error) for p in failed])
    _partial(len(failed), len(preds) - len(failed))


@app.command()
@_friendly
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Model directories to combine.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Ensemble directory to write.")],
    method: Annotated[str, typer.Option(help="mean, weighted or vote.")] = "mean",
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated member weights (method weighted).")
    ] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Combine saved models (neural or classical) into one ensemble model."""
    from earmark.artifact import check_out

    if method not in ("mean", "weighted", "vote"):
        raise typer.BadParameter("use mean, weighted or vote", param_hint="--method")
    try:
        w = [float(x) for x in weights.split(",")] if weights else None
    except ValueError:
        raise typer.BadParameter(f"not numbers: {weights}", param_hint="--weights") from None
    check_out(out, overwrite=overwrite)
    from earmark.ensembles import Ensemble

    ens, record = Ensemble.from_runs(runs, method=method, weights=w)
    ens.save(out, extra=record)
    if not quiet:
        console.print(f"wrote {out}: {len(runs)} members ({method}), {len(ens.classes_)} classes")
    if not record and not quiet:
        err_console.print(
            "[yellow]note:[/] the members were split differently; "
            "evaluate the ensemble with --split all on data none of them saw"
        )


# -- detection in long recordings ----------------------------------------------------------------


@app.command()
@_friendly
def detect(
    run: Annotated[Path, typer.Argument(help="A model directory (any family, or an ensemble).")],
    inputs: Annotated[list[Path], typer.Argument(help="Recordings, or folders of them.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the tables.")],
    window: Annotated[
        float | None, typer.Option(help="Window (s); default: the model's clip length.")
    ] = None,
    hop: Annotated[
        float | None, typer.Option(help="Seconds between windows; default: half a window.")
    ] = None,
    overlap: Annotated[
        float | None, typer.Option(help="Fraction windows share (instead of --hop).")
    ] = None,
    last: Annotated[
        str | None, typer.Option(help="Partial last window: pad (default), end or drop.")
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(help="Score to fire: a number (default 0.5), or a CSV/JSON per class."),
    ] = None,
    smooth: Annotated[
        int | None, typer.Option(min=1, help="Median filter (windows, odd; default 1).")
    ] = None,
    merge_gap: Annotated[
        float | None, typer.Option(help="Merge events this close (s; default 0).")
    ] = None,
    min_duration: Annotated[
        float | None, typer.Option(help="Drop shorter events (s; default 0).")
    ] = None,
    top_n: Annotated[int | None, typer.Option(help="Classes that may fire per window.")] = None,
    background: Annotated[
        list[str] | None, typer.Option(help="A class never reported (repeatable).")
    ] = None,
    bounds: Annotated[
        str | None,
        typer.Option(help="An event spans its windows' centres (center, default) or all (window)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in --out with its recorded settings, skipping recordings "
            "done; an option that differs from the record is refused."
        ),
    ] = False,
    decode_ahead: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Recordings decoded ahead in background threads (a run in this process; "
            "default 1).",
        ),
    ] = None,
    workers: DaskWorkers = None,
    scheduler: DaskScheduler = None,
    runtime: Runtime = "torch",
    device: Annotated[str, typer.Option(help="Where networks run: auto, cpu or cuda.")] = "auto",
    threads: Threads = None,
    no_calibration: NoCalibration = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Find and count events in long recordings with sliding windows; writes events.csv /
    .json, counts.csv, scores.parquet, Raven and Audacity tables per recording, errors.csv,
    and the run's settings (detection.json, which --resume reads). With --workers /
    --scheduler each recording is a Dask task; the tables are the same."""
    from earmark.detection.events import EventRules, load_thresholds
    from earmark.detection.run import (
        RULES_SETTINGS,
        WINDOWING_SETTINGS,
        SettingConflict,
        read_record,
        resolve_settings,
        show_setting,
    )
    from earmark.detection.windows import Windowing
    from earmark.predict import input_files

    # only the options given: the library fills in the defaults, or the record's on --resume
    given: dict[str, Any] = {
        name: value
        for name, value in {
            "window": window,
            "hop": hop,
            "overlap": overlap,
            "last": last,
            "smooth": smooth,
            "merge_gap": merge_gap,
            "min_duration": min_duration,
            "top_n": top_n,
            "background": tuple(background) if background else None,
            "bounds": bounds,
        }.items()
        if value is not None
    }
    with _options():  # a value the settings refuse: a usage error, before the model loads
        if threshold is not None:
            try:
                given |= {"threshold": float(threshold), "thresholds": {}}
            except ValueError:
                given |= {"threshold": 0.5, "thresholds": load_thresholds(threshold)}
        Windowing(**{k: v for k, v in given.items() if k in WINDOWING_SETTINGS})
        EventRules(**{k: v for k, v in given.items() if k in RULES_SETTINGS})
    dask = _dask_engine(workers, scheduler)
    if dask is not None and decode_ahead is not None:
        raise OptionError(
            "--decode-ahead is for a run in this process: each Dask worker reads its own recording"
        )
    if dask is not None and runtime != "torch":
        raise OptionError(f"--runtime {runtime} runs in this process: Dask workers run torch")
    if dask is not None:
        dask |= {"run": run, "calibration": not no_calibration, "device": device}
    quiet = quiet or as_json
    paths = input_files(inputs)
    if not paths:
        raise EarmarkError(f"no audio files in {', '.join(map(str, inputs))}")
    model = _load_for(
        run,
        runtime,
        device=device,
        threads=threads,
        no_calibration=no_calibration,
        inputs=paths,
    )
    record = read_record(out) if resume else None
    try:  # refuse a differing option before anything is read
        windowing, rules = resolve_settings(model, out, settings=given, resume=resume)
        summary = _run_detection(model, paths, out, given, resume, decode_ahead, quiet, dask)
    except SettingConflict as exc:
        setting = "threshold" if exc.setting == "thresholds" else exc.setting
        flag = "--" + setting.replace("_", "-")
        raise EarmarkError(
            f"{flag} {show_setting(exc.given)} differs from the run resumed in {out} "
            f"({exc.setting} = {show_setting(exc.recorded)} in {exc.record.name}); leave "
            f"{flag} out to keep the run's settings, or write to a new --out"
        ) from None
    if resume and not quiet:
        shown = {**windowing.to_dict(), **rules.to_dict()}
        err_console.print(
            f"no run to resume in {out}: started one"
            if record is None
            else f"resumed with the settings in {out / 'detection.json'}: "
            + ", ".join(f"{k} {show_setting(v)}" for k, v in shown.items()),
            highlight=False,
            soft_wrap=True,
        )
    labels: dict[str, int] = {}
    for ev in summary.events:
        labels[ev.label] = labels.get(ev.label, 0) + 1
    if as_json:
        _emit_json(
            {
                "out": str(out),
                "files": summary.files,
                "scored": summary.scored,
                "resumed": summary.resumed,
                "unreadable": summary.failed,
                "audio_seconds": summary.audio_seconds,
                "wall_seconds": summary.wall_seconds,
                "events": len(summary.events),
                "events_per_label": dict(sorted(labels.items())),
                "errors": [{"path": p, "error": e} for p, e in summary.errors],
            }
        )
        _list_unreadable([error for _path, error in summary.errors])
        _partial(summary.failed, summary.scored + summary.resumed)
        return
    table = Table("label", "events")
    for label, n in sorted(labels.items()):
        table.add_row(label, str(n))
    if not quiet:
        console.print(table)
    console.print(
        f"{summary.files} recordings ({summary.resumed} already done, {summary.scored} "
        f"scored, {summary.failed} unreadable), {summary.audio_seconds / 3600:.2f} h scored in "
        f"{summary.wall_seconds:.1f} s ({summary.realtime_factor:,.0f}x real time); "
        f"{len(summary.events)} events -> {out}",
        soft_wrap=True,
    )
    _list_unreadable([error for _path, error in summary.errors])
    if summary.partial:
        err_console.print(f"[yellow]partial:[/] see {out / 'errors.csv'}")
    _partial(summary.failed, summary.scored + summary.resumed)


def _run_detection(model, paths, out, given, resume, decode_ahead, quiet, dask=None):
    """The detection run with a progress bar over hours of audio (files, real-time factor);
    ``given``: the settings given on the command line (the library fills in the rest);
    ``dask``: :func:`earmark.distributed.detect`'s engine and model arguments, for a run
    on Dask (the bar then moves a recording at a time)."""
    import time

    options: dict[str, Any] = {"settings": given, "resume": resume}
    if dask is None:
        from earmark.detection.run import detect as run_detect

        job = functools.partial(run_detect, model, decode_ahead=decode_ahead or 1)
    else:  # the same run, its recordings scored on Dask (the model loaded from its folder)
        from earmark import distributed

        engine = dict(dask)
        job = functools.partial(distributed.detect, engine.pop("run"), **engine)
    if quiet:
        return job(paths, out, **options)
    total = 0.0
    for p in paths:
        with suppress(EarmarkError):  # unreadable: reported by the run itself
            total += audio_io.info(p).duration
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[files]} files, {task.completed:,.0f}/{task.total:,.0f} s"),
        TextColumn("{task.fields[rtf]}"),
        TimeRemainingColumn(),
    )
    t0 = time.perf_counter()
    done = {"files": 0}
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("detecting", total=max(total, 1e-9), files=f"0/{len(paths)}", rtf="")

        def on_audio(seconds: float) -> None:
            bar.advance(task, seconds)
            rate = bar.tasks[0].completed / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, rtf=f"{rate:,.0f}x real time")

        def on_file(path: str, seconds: float) -> None:
            done["files"] += 1
            bar.update(task, files=f"{done['files']}/{len(paths)}")

        return job(paths, out, on_file=on_file, on_audio=on_audio, **options)


@app.command()
@_friendly
def suggest(
    run: Annotated[Path, typer.Argument(help="A model directory (any family, or an ensemble).")],
    inputs: Annotated[
        list[Path], typer.Argument(help="Recordings, folders of them, or a manifest CSV.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="CSV to write: file,start_s,end_s,label,...")
    ],
    n: Annotated[int, typer.Option("--n", help="Windows to suggest.")] = 20,
    window: Annotated[
        float | None, typer.Option(help="Window (s); default: the model's clip length.")
    ] = None,
    hop: Annotated[
        float | None, typer.Option(help="Seconds between windows; default: half a window.")
    ] = None,
    exclude: Annotated[
        list[Path] | None,
        typer.Option(
            help="Windows already reviewed, left out: a table with file,start_s,end_s "
            "(an export of reviews, an earlier suggestions CSV) or a reviews database "
            "(repeatable)."
        ),
    ] = None,
    uncertainty: Annotated[
        str,
        typer.Option(
            help="auto (entropy; threshold for multi-label), margin, entropy or threshold."
        ),
    ] = "auto",
    diversity: Annotated[str, typer.Option(help="kmeans, kcenter or none.")] = "kmeans",
    embedding: Annotated[
        str, typer.Option(help="Distances for diversity: features, scores or aisfx.")
    ] = "features",
    pool: Annotated[
        float, typer.Option(help="Candidates: the pool x n most uncertain windows.")
    ] = 5.0,
    spread: Annotated[
        float | None,
        typer.Option(help="Seconds between two picks in a recording; default: a window."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for ties and k-means.")] = 0,
    device: Annotated[str, typer.Option(help="Where networks run: auto, cpu or cuda.")] = "cpu",
    no_calibration: NoCalibration = False,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Pick the windows of recordings to review next (active learning): the windows the
    model is least sure of, spread over different sounds; writes them as a CSV the server's
    review queue reads (`earmark serve RUN --suggestions FILE`). Unreadable recordings are
    skipped and listed (exit code 3)."""
    from earmark.artifact import check_out
    from earmark.detection.windows import Windowing
    from earmark.loading import load
    from earmark.predict import input_files
    from earmark.review.suggest import (
        SuggestSettings,
        read_reviewed,
        write_suggestions,
    )
    from earmark.review.suggest import suggest as pick_windows
    from earmark.training import resolve_device

    with _options():  # refused values are usage errors, before the model loads
        settings = SuggestSettings(
            n=n,
            uncertainty=uncertainty,  # type: ignore[arg-type]
            diversity=diversity,  # type: ignore[arg-type]
            embedding=embedding,  # type: ignore[arg-type]
            pool=pool,
            spread=spread,
            seed=seed,
        )
        windowing = Windowing(window=window, hop=hop)
        resolve_device(device)
        reviewed = [span for table in exclude or [] for span in read_reviewed(table)]
    check_out(out, overwrite=overwrite, file=True)
    model = load(run, calibration=not no_calibration)
    for member in getattr(model, "members", [model]):
        family = getattr(member, "family", None)
        pretrained = getattr(getattr(member, "features", None), "pretrained", False)
        if family == "neural" or (family == "classical" and pretrained):
            member.to(device)
    paths = input_files(inputs)
    if not paths:
        raise EarmarkError(f"no audio files in {', '.join(map(str, inputs))}")
    quiet = quiet or as_json
    with _options():  # a measure the model cannot take (threshold for a single-label one)
        from earmark.review.suggest import check_settings

        check_settings(model, settings)
    with _progress("scoring windows", len(paths), quiet) as advance:
        result = pick_windows(
            model, paths, settings, windowing=windowing, reviewed=reviewed, on_file=advance
        )
    write_suggestions(out, result)
    _list_unreadable([problem for _path, problem in result.errors])
    if as_json:
        _emit_json(
            {
                "out": str(out),
                "suggestions": len(result),
                "files": result.files,
                "windows": result.windows,
                "excluded": result.excluded,
                "embedding": result.embedding,
                "unreadable": len(result.errors),
                "items": [s.to_dict() for s in result.items],
            }
        )
    else:
        console.print(
            f"wrote {out}: {len(result)} windows to review, picked from {result.windows} "
            f"windows of {result.files} recordings ({result.excluded} already reviewed)",
            soft_wrap=True,
        )
    _partial(len(result.errors), result.files)


@app.command("score-events")
@_friendly
def score_events_cmd(
    events: Annotated[Path, typer.Argument(help="events.csv written by `earmark detect`.")],
    truth: Annotated[
        Path, typer.Argument(help="Reference events: CSV, a Raven table, or a folder of them.")
    ],
    tolerance: Annotated[float, typer.Option(help="Onset tolerance (s).")] = 0.5,
    sweep: Annotated[
        bool, typer.Option(help="Precision / recall for a range of thresholds (from scores).")
    ] = False,
    segment: Annotated[
        float, typer.Option(help="Segment length (s) of the segment-based scores; 0: none.")
    ] = 1.0,
    psds: Annotated[
        bool, typer.Option("--psds", help="Also PSDS (DCASE) from the run's window scores.")
    ] = False,
    scores: Annotated[
        Path | None,
        typer.Option(help="Window scores for --psds (default: scores.parquet beside EVENTS)."),
    ] = None,
    dtc: Annotated[float, typer.Option(help="PSDS detection tolerance criterion.")] = 0.7,
    gtc: Annotated[float, typer.Option(help="PSDS ground-truth intersection criterion.")] = 0.7,
    cttc: Annotated[float, typer.Option(help="PSDS cross-trigger tolerance criterion.")] = 0.3,
    alpha_ct: Annotated[float, typer.Option(help="PSDS cross-trigger weight.")] = 0.0,
    alpha_st: Annotated[float, typer.Option(help="PSDS weight of the class spread.")] = 1.0,
    max_efpr: Annotated[
        float, typer.Option(help="PSDS: false positives per hour the ROC goes up to.")
    ] = 100.0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Event-based precision, recall and F1 (onset within --tolerance), per class and
    overall, the count error per file, segment-based F1 (--segment seconds) and, with
    --psds, the polyphonic sound detection score from the window scores."""
    from earmark.detection.psds import PsdsSettings
    from earmark.detection.scoring import score_run

    if tolerance < 0:
        raise OptionError(f"--tolerance must be >= 0 seconds, got {tolerance}")
    if segment < 0:
        raise OptionError(f"--segment must be >= 0 seconds (0: no segment scores), got {segment}")
    if scores is not None and not psds:
        raise OptionError("--scores is for --psds; add --psds")
    with _options():  # refused before anything is read
        settings = PsdsSettings(dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr) if psds else None
    run = score_run(
        events,
        truth,
        tolerance=tolerance,
        sweep=sweep,
        segment=segment or None,
        psds=settings,
        scores=scores,
    )
    result = run.scores
    if as_json:  # one document, the sweep, segment scores and PSDS inside it
        doc = result.to_dict()
        if sweep:
            doc["sweep"] = run.sweep
        if run.segments is not None:
            doc["segment"] = run.segments.to_dict()
        if run.psds is not None:
            doc["psds"] = run.psds.to_dict()
        _emit_json(doc)
        return
    else:
        table = Table("label", "true", "detected", "precision", "recall", "F1", title="events")
        for label, m in result.per_class.items():
            table.add_row(
                label,
                str(m["tp"] + m["fn"]),
                str(m["tp"] + m["fp"]),
                f"{m['precision']:.3f}",
                f"{m['recall']:.3f}",
                f"{m['f1']:.3f}",
            )
        o = result.overall
        table.add_row(
            "[bold]overall",
            str(o["tp"] + o["fn"]),
            str(o["tp"] + o["fp"]),
            f"{o['precision']:.3f}",
            f"{o['recall']:.3f}",
            f"[bold]{o['f1']:.3f}",
        )
        console.print(table)
        counts = Table("file", "label", "true", "detected", "error", title="counts")
        for c in result.counts:
            counts.add_row(
                str(c["file"]),
                str(c["label"]),
                str(c["true"]),
                str(c["detected"]),
                f"{int(c['error']):+d}",
            )  # type: ignore[call-overload]
        if not quiet:
            console.print(counts)
        console.print(f"count error (mean absolute, per file and class): {o['count_mae']:.3f}")
    if run.segments is not None:
        _print_segments(run.segments)
    if sweep:
        _print_sweep(run.sweep, run.best)
    if run.psds is not None:
        _print_psds(run.psds)


def _print_segments(seg: Any) -> None:
    table = Table(
        "label",
        "true",
        "detected",
        "precision",
        "recall",
        "F1",
        title=f"segments ({seg.segment:g} s, {seg.segments} per class)",
    )
    for label, m in seg.per_class.items():
        table.add_row(
            label,
            str(m["tp"] + m["fn"]),
            str(m["tp"] + m["fp"]),
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
        )
    mi, ma = seg.micro, seg.macro
    table.add_row(
        "[bold]micro",
        str(mi["tp"] + mi["fn"]),
        str(mi["tp"] + mi["fp"]),
        f"{mi['precision']:.3f}",
        f"{mi['recall']:.3f}",
        f"[bold]{mi['f1']:.3f}",
    )
    table.add_row(
        "[bold]macro", "", "", f"{ma['precision']:.3f}", f"{ma['recall']:.3f}", f"{ma['f1']:.3f}"
    )
    console.print(table)


def _print_psds(result: Any) -> None:
    s = result.settings
    table = Table("class", "PSDS", title="PSDS (per class: its own ROC)")
    for label, value in result.per_class.items():
        table.add_row(label, f"{value:.3f}")
    table.add_row("[bold]all", f"[bold]{result.psds:.3f}")
    console.print(table)
    console.print(
        f"PSDS {result.psds:.4f} over {len(result.classes)} classes, {result.files} recordings "
        f"({result.hours:.2f} h): dtc {s.dtc:g}, gtc {s.gtc:g}, cttc {s.cttc:g}, "
        f"alpha_ct {s.alpha_ct:g}, alpha_st {s.alpha_st:g}, max eFPR {s.max_efpr:g}/h",
        soft_wrap=True,
    )
    if result.no_reference:
        err_console.print(
            f"[yellow]not in PSDS:[/] {', '.join(result.no_reference)} (no reference events)"
        )


def _print_sweep(rows: list[dict[str, float]], best: dict[str, float] | None) -> None:
    table = Table("threshold", "precision", "recall", "F1", title="threshold sweep (all classes)")
    for r in rows:
        table.add_row(
            f"{r['threshold']:.2f}",
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['f1']:.3f}",
            style="bold" if r is best else None,
        )
    console.print(table)


@app.command()
@_friendly
def segments(
    events: Annotated[Path, typer.Argument(help="events.csv (or .json) of `earmark detect`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the cut files.")],
    margin: Annotated[float, typer.Option(help="Seconds added on both sides.")] = 0.5,
    label: Annotated[list[str] | None, typer.Option(help="Only these labels.")] = None,
    min_score: Annotated[float, typer.Option(help="Only events scoring at least this.")] = 0.0,
    root: Annotated[
        Path | None, typer.Option(help="Folder relative recording paths start from.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Cut each detected event (with a margin) into a WAV file named by recording, time,
    label and score, for listening through them."""
    from earmark.artifact import check_out
    from earmark.detection.segments import cut_segments
    from earmark.detection.tables import read_events

    if margin < 0:
        raise OptionError(f"--margin must be >= 0 seconds, got {margin}")
    chosen = [
        ev
        for ev in read_events(events)
        if (not label or ev.label in label) and ev.score >= min_score
    ]
    check_out(out, into=True)
    with _progress("cutting", len(chosen), quiet) as advance:
        written, failed = cut_segments(chosen, out, margin=margin, root=root, on_event=advance)
    console.print(f"wrote {len(written)} clips to {out}")
    for _ev, error in failed:
        err_console.print(f"[red]skipped:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    _partial(len(failed), len(written))


@app.command()
@_friendly
def export(
    run: Annotated[Path, typer.Argument(help="A network's model directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="Only onnx for now.")] = "onnx",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an earlier earmark export at --out.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Export a network to one ONNX graph from waveform to probabilities (the frontend
    inside, the settings in the file's metadata); `earmark predict model.onnx ...` runs it
    with onnxruntime."""
    if fmt != "onnx":
        raise typer.BadParameter("only onnx is supported", param_hint="--format")
    path = earmark.export(run, out, overwrite=overwrite)
    if not quiet:
        console.print(f"wrote {path}")


@app.command()
@_friendly
def serve(
    run: Annotated[Path, typer.Argument(help="A model directory or an exported .onnx file.")],
    host: Annotated[str, typer.Option(help="Interface to bind (default: this machine only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload (MB).")] = 50.0,
    max_duration: Annotated[float, typer.Option(help="Longest audio (s).")] = 600.0,
    timeout: Annotated[float, typer.Option(help="Longest prediction (s).")] = 30.0,
    concurrency: Annotated[int, typer.Option(min=1, help="Predictions at once.")] = 8,
    queue: Annotated[int, typer.Option(min=0, help="Predictions waiting before 503.")] = 16,
    batch_ms: Annotated[
        float,
        typer.Option(help="Wait up to this long (ms) for requests decoding, to batch; 0: off."),
    ] = 5.0,
    runtime: Runtime = "torch",
    device: Annotated[str, typer.Option(help="Where networks run: auto, cpu or cuda.")] = "auto",
    threads: Threads = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="EARMARK_API_KEY",
            show_default=False,
            help="Require this key (Authorization: Bearer KEY, or X-API-Key: KEY) for /v1/*, "
            "/metrics and /docs; /healthz and the page stay open. Prefer the environment "
            "variable: a command line is visible to other users of the machine.",
        ),
    ] = None,
    reviews: Annotated[
        Path | None,
        typer.Option(
            "--reviews",
            help="Reviews database the page and /v1/reviews write to (default: reviews.sqlite "
            "here); analysed uploads are kept beside it in <db-stem>-audio/.",
        ),
    ] = None,
    no_reviews: Annotated[
        bool, typer.Option("--no-reviews", help="Keep no reviews and no uploads.")
    ] = False,
    suggestions: Annotated[
        Path | None,
        typer.Option(
            "--suggestions",
            help="The windows to review next (`earmark suggest` CSV), walked through by the "
            "page (/v1/suggestions).",
        ),
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option("--index", help="A similarity index (`earmark index`) for POST /v1/search."),
    ] = None,
    no_calibration: NoCalibration = False,
    quiet: Quiet = False,
) -> None:
    """Serve the model over HTTP: the page at /, POST /v1/predict, /v1/detect, reviews
    (/v1/reviews; on by default, into reviews.sqlite), GET /v1/model, /healthz, /readyz,
    /metrics, and the OpenAPI schema at /docs (with --index, POST /v1/search too)."""
    from earmark.serve import ServeSettings, create_app, exposure_warning
    from earmark.serve import run as serve_app

    if reviews is not None and no_reviews:
        raise typer.BadParameter(
            "choose one of --reviews DB / --no-reviews", param_hint="--reviews"
        )
    to_review = None
    if suggestions is not None:
        from earmark.review.suggestions import load_suggestions

        to_review = load_suggestions(suggestions)
        if to_review.missing:
            line, name = to_review.missing[0]
            err_console.print(
                f"[yellow]note:[/] {len(to_review.missing)} suggestions left out: their recording "
                f"is missing (e.g. line {line}: {escape(name)})",
                highlight=False,
                soft_wrap=True,
            )
    # the ONNX runtimes: exported once into the cache, the run's calibration applied; their
    # threads sleep between calls (the HTTP side needs those cores)
    model = _load_for(
        run, runtime, device=device, threads=threads, no_calibration=no_calibration, spin=False
    )
    digest = None
    if not no_reviews:
        from earmark.review.store import artifact_sha256

        digest = artifact_sha256(run)  # what each review records as the model reviewed
    settings = ServeSettings(
        batch_wait=batch_ms / 1000,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_duration=max_duration,
        timeout=timeout,
        max_concurrency=concurrency,
        max_queue=queue,
        api_key=api_key or None,
    )
    search_index = None
    if index is not None:
        from earmark.review.index import open_index

        search_index = open_index(index)
    store = recordings = None
    if not no_reviews:
        from earmark.review.store import ReviewStore
        from earmark.serve import Recordings

        db = reviews if reviews is not None else Path("reviews.sqlite")
        store = ReviewStore(db)
        recordings = Recordings(db.parent / f"{db.stem}-audio")
    app_ = create_app(
        model,
        settings,
        name=run.name,
        recordings=recordings,
        reviews=store,
        suggestions=to_review,
        model_sha256=digest,
        index=search_index,
    )
    # Everything loaded so far (torch, the model, FastAPI: ~235,000 objects) lives as long as
    # the process. A full garbage collection walks all of it (70-140 ms measured here) and
    # stalls every request in flight; frozen, it is skipped and collections stay small.
    import gc

    gc.collect()
    gc.freeze()
    warning = exposure_warning(host, settings.api_key)
    if warning is not None:  # even when quiet: the server is open to other machines
        err_console.print(warning, highlight=False, soft_wrap=True, markup=False)
    if not quiet:
        console.print(f"serving {run} on http://{host}:{port} (Ctrl-C stops)")
        if store is not None and recordings is not None:
            console.print(
                f"reviews: saved to {store.path}, analysed uploads kept in "
                f"{recordings.keep_dir}/ (--no-reviews: neither)",
                highlight=False,
                soft_wrap=True,
            )
        if to_review is not None:
            console.print(f"suggestions: {len(to_review)} windows to review from {suggestions}")
    try:
        serve_app(app_, host=host, port=port)
    finally:
        if store is not None:
            store.close()


@app.command("sgan-samples")
@_friendly
def sgan_samples(
    run: Annotated[Path, typer.Argument(help="An sgan model directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("samples.png"),
    n: Annotated[int, typer.Option("--n", min=1, max=256, help="How many samples.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Draw log-mel patches from an sgan's generator as a grid: what it learned."""
    from earmark.artifact import check_out
    from earmark.models.sgan import sample, save_grid

    check_out(out, overwrite=overwrite, file=True)
    path = save_grid(sample(run, n, seed=seed), out)
    if not quiet:
        console.print(f"wrote {n} generated log-mel patches to {path}")


@app.command()
@_friendly
def models(
    name: Annotated[str | None, typer.Argument(help="A model: list its hyper-parameters.")] = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """List the models earmark can train (networks: parameters and multiply-adds for one
    second of 16 kHz audio through their default frontend; a head on embeddings: of one
    second at its frontend's rate, frontend included) and the pretrained frontends (rate,
    window, embedding size, license, whether installed); with NAME, that model's
    hyper-parameters: type, default and meaning (set them with -p NAME=VALUE)."""
    from earmark.models import registry
    from earmark.settings import type_name

    if name is not None:
        if name not in registry.names():
            known = ", ".join(registry.names())
            raise typer.BadParameter(f"unknown model {name!r}; one of {known}", param_hint="NAME")
        spec = registry.get(name)
        rows = [
            {"name": p.name, "type": type_name(p.type), "default": p.default, "help": p.help}
            for p in spec.params
        ]
        if as_json:
            _emit_json(
                {
                    "name": name,
                    "family": spec.family,
                    "description": spec.description,
                    "features": spec.default_features,
                    "params": rows,
                }
            )
            return
        if not quiet:
            console.print(f"[bold]{name}[/] ({spec.family}): {spec.description}", highlight=False)
        table = Table("parameter", "type", "default", "meaning", title=None if quiet else name)
        for r in rows:
            cells = (r["name"], r["type"], json.dumps(r["default"]), r["help"])
            table.add_row(*(escape(c) for c in cells))
        console.print(table)
        return
    rows = []
    for model_name in registry.names():
        spec = registry.get(model_name)
        size: dict[str, Any] = {"parameters": None, "macs_per_s": None}
        if spec.family == "neural":
            size = _network_size(model_name)
        rows.append(
            {
                "name": model_name,
                "family": spec.family,
                "features": spec.default_features["kind"],
                **size,
                "description": spec.description,
            }
        )
    frontends = _frontend_rows()
    if as_json:
        _emit_json({"models": rows, "frontends": frontends})
        return
    table = Table("name", "family", "features", "parameters", "MACs / s", "description")
    for r in rows:
        n, macs = r["parameters"], r["macs_per_s"]
        table.add_row(
            r["name"],
            r["family"],
            r["features"],
            f"{n:,}" if n is not None else "",
            f"{macs / 1e6:.1f} M" if macs is not None else "",
            r["description"],
        )
    console.print(table)
    table = Table(
        "frontend", "rate", "window", "dim", "license", "installed", title="pretrained frontends"
    )
    for f in frontends:
        cells = (
            f["name"],
            f"{f['sample_rate']} Hz",
            f"{f['window_seconds']:g} s",
            str(f["dim"]),
            f["license"],
            "yes" if f["installed"] else f"no: {f['install']}",
        )
        table.add_row(*(escape(c) for c in cells))
    console.print(table)


def _frontend_rows() -> list[dict[str, Any]]:
    """The pretrained frontends: what each is, its license, whether it is installed."""
    from earmark.features import pretrained

    rows = []
    for name in pretrained.FRONTENDS:
        meta = pretrained.info(name)
        rows.append(
            {
                "name": name,
                "sample_rate": meta.sample_rate,
                "window_seconds": meta.window_seconds,
                "dim": meta.dim,
                "license": meta.license,
                "attribution": meta.attribution,
                "runtime": meta.runtime,
                "installed": pretrained.available(name),
                "install": meta.install,
                "description": meta.description,
            }
        )
    return rows


def _network_size(name: str) -> dict[str, Any]:
    """Parameters and multiply-adds per second of audio of a network's defaults: 16 kHz
    spectrograms; a waveform network's own rate; for a head on embeddings, one second at its
    frontend's rate, the frontend's multiply-adds included (a torch frontend, counted with
    untrained weights: none are needed to count; pretrained weights are never read)."""
    import torch

    from earmark.features import pretrained
    from earmark.models import registry
    from earmark.models.neural import NeuralModel, count_macs, count_parameters

    spec = registry.get(name)
    if spec.embedding_input:
        meta = pretrained.info(spec.default_features["kind"])
        net = NeuralModel(name, {}, 10, 1, n_bins=meta.dim).network
        macs = count_macs(net, torch.zeros(1, meta.dim))
        if meta.runtime == "torch" and meta.name == "aisfx":
            from earmark.features.pretrained.aisfx import AisfxEmbedding

            frontend = AisfxEmbedding(pretrained=False)
            macs += count_macs(frontend, torch.zeros(1, meta.sample_rate))
        return {"parameters": count_parameters(net), "macs_per_s": macs}
    net = NeuralModel(name, {}, 10, 1, pretrained=False).network
    if spec.default_features["kind"] == "waveform":
        example = torch.zeros(1, 1, spec.sample_rate or 16_000)
    else:
        example = torch.zeros(1, 1, spec.default_features["n_mels"], 51)
    return {"parameters": count_parameters(net), "macs_per_s": count_macs(net, example)}


# -- calibration ---------------------------------------------------------------------------------


@app.command()
@_friendly
def calibrate(
    run: Annotated[Path, typer.Argument(help="A classifier's directory (`earmark train`).")],
    path: Annotated[Path, typer.Argument(help="Data set folder or manifest CSV.")],
    split: Annotated[
        str, typer.Option(help="Which files: valid (default), test, train or all.")
    ] = "valid",
    method: Annotated[str, typer.Option(help="temperature or platt.")] = "temperature",
    target_precision: Annotated[
        float | None,
        typer.Option(help="Per-class thresholds reaching this precision (default 0.9)."),
    ] = None,
    best_f1: Annotated[
        bool, typer.Option("--best-f1", help="Per-class thresholds of the best F1 instead.")
    ] = False,
    min_support: Annotated[
        int, typer.Option(min=1, help="Examples a threshold must keep to count (precision).")
    ] = 5,
    annotations: AnnotationsFlag = False,
    recordings: Recordings = None,
    window: Window = None,
    hop: Hop = None,
    min_overlap: MinOverlapOption = None,
    complete: Complete = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Fit per-class calibration (temperature or Platt scaling) and thresholds on a split of
    DATA and write them into the run (calibration.json; a report in calibration/): predict,
    detect and serve then use them unless given --no-calibration or a --threshold."""
    from earmark.calibration import METHODS
    from earmark.workflows import SPLITS, calibrate_run

    if split not in SPLITS:
        raise typer.BadParameter(f"use one of {', '.join(SPLITS)}", param_hint="--split")
    if method not in METHODS:
        raise typer.BadParameter(f"use one of {', '.join(METHODS)}", param_hint="--method")
    if best_f1 and target_precision is not None:
        raise typer.BadParameter("give --target-precision or --best-f1, not both")
    if target_precision is not None and not 0 < target_precision <= 1:
        raise typer.BadParameter("a precision in (0, 1]", param_hint="--target-precision")
    manifest = _load_data(
        path,
        annotations=annotations,
        recordings=recordings,
        window=window,
        hop=hop,
        min_overlap=min_overlap,
        complete=complete,
    )
    with _progress("scoring", len(manifest), quiet or as_json) as advance:
        result = calibrate_run(
            run,
            manifest,
            split=split,
            method=method,
            target_precision=0.9 if target_precision is None else target_precision,
            best_f1=best_f1,
            min_support=min_support,
            on_file=advance,
        )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(warning))}")
    cal = result.calibration
    _report_skipped(result.skipped, quiet or as_json)
    missed = {c: row["note"] for c, row in cal.per_class.items() if not row["reached"]}
    for name, note in missed.items():
        err_console.print(f"[yellow]{escape(name)}:[/] {escape(note)}", soft_wrap=True)
    if as_json:
        _emit_json(
            {
                "split": split,
                **cal.to_dict(),
                "written": str(result.path),
                "report": {k: str(v) for k, v in result.files.items()},
                "skipped": [{"path": p, "error": e} for p, e in result.skipped],
                "warnings": result.warnings,
            }
        )
        _partial(len(result.skipped), cal.validation["examples"])
        return
    goal = "best F1" if cal.criterion == "f1" else f"precision >= {cal.target_precision:g}"
    table = Table(
        "class", "threshold", "precision", "recall", "positives", "reached",
        title=f"{cal.method} scaling; thresholds for {goal} on {cal.validation['examples']} "
        f"{split} files",
    )  # fmt: skip
    for name in cal.classes:
        row = cal.per_class[name]
        table.add_row(
            name,
            f"{row['threshold']:.4g}",
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            str(row["positives"]),
            "yes" if row["reached"] else "[yellow]no[/]",
        )
    if not quiet:
        console.print(table)
    v = cal.validation
    console.print(
        f"calibration error (ECE) {v['ece_before']:.4f} -> {v['ece_after']:.4f}; wrote "
        f"{result.path}",
        highlight=False,
        soft_wrap=True,
    )
    if not quiet:
        console.print(f"report: {result.path.parent / 'calibration'}", highlight=False)
        for name in sorted(str(p) for p in result.files.values()):
            console.print(f"  {name}", highlight=False, soft_wrap=True)
    _partial(len(result.skipped), v["examples"])


reviews_app = typer.Typer(
    name="reviews",
    help="Reviews of a model's output (correct / wrong / relabel) in a SQLite database: add, "
    "list, delete, export as an annotation table.",
    no_args_is_help=True,
)
app.add_typer(reviews_app)
ReviewsDb = Annotated[Path, typer.Argument(help="The reviews database (SQLite).")]


def _review_line(r: Any) -> str:
    change = f" -> {r.new_label}" if r.new_label else ""
    return f"{r.id}: {r.verdict}{change}: {r.label or '-'} at {r.name} {r.start_s:g}-{r.end_s:g} s"


@reviews_app.command("add")
@_friendly
def reviews_add(
    db: Annotated[Path, typer.Argument(help="The reviews database (created when missing).")],
    verdict: Annotated[
        str, typer.Option("--verdict", help="correct, wrong, or relabel (with --new-label).")
    ],
    events: Annotated[
        Path | None,
        typer.Option(
            "--events", help="A detection run's events table (events.csv / .json) or folder."
        ),
    ] = None,
    row: Annotated[
        list[int] | None,
        typer.Option(
            "--row",
            help="Event to review: its row in --events, 1 = the first (repeat for several).",
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Or: the recording of a span to review.")
    ] = None,
    start: Annotated[float | None, typer.Option("--start", help="With --file: seconds.")] = None,
    end: Annotated[float | None, typer.Option("--end", help="With --file: seconds.")] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="With --file: the label the model gave it.")
    ] = None,
    new_label: Annotated[
        str | None, typer.Option("--new-label", help="The right class (--verdict relabel).")
    ] = None,
    source: Annotated[
        str, typer.Option(help="With --file: detection, prediction, search or suggestion.")
    ] = "detection",
    reviewer: Annotated[str | None, typer.Option(help="Who reviewed.")] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="The run whose output this is (its SHA-256 is recorded)."),
    ] = None,
    recordings: Annotated[
        Path | None,
        typer.Option(help="Folder where the recordings --events names are (default: found)."),
    ] = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Mark events of a detection run (--events DIR/events.csv --row N) or a span of a file
    (--file F --start S --end E --label L) as correct, wrong, or relabelled."""
    from earmark.review.marking import event_reviews, span_review
    from earmark.review.store import ReviewStore

    if (events is None) == (file is None):
        raise typer.BadParameter("give --events (with --row) or --file", param_hint="--events")
    with _options():
        if events is not None:
            if start is not None or end is not None or label is not None:
                raise OptionError("--start, --end and --label go with --file, not --events")
            todo = event_reviews(
                events,
                row or [],
                verdict=verdict,
                new_label=new_label,
                reviewer=reviewer,
                model=model,
                recordings=recordings,
            )
        else:
            if start is None or end is None:
                raise OptionError("--file needs --start and --end (seconds)")
            if row:
                raise OptionError("--row goes with --events")
            todo = [
                span_review(
                    file,  # type: ignore[arg-type]
                    start,
                    end,
                    label,
                    verdict=verdict,
                    new_label=new_label,
                    source=source,
                    reviewer=reviewer,
                    model=model,
                )
            ]
    with ReviewStore(db) as store:
        added = store.add_many(todo)
    if as_json:
        _emit_json({"reviews": [r.to_dict(with_path=True) for r in added]})
        return
    if not quiet:
        for r in added:
            console.print(_review_line(r), highlight=False, markup=False, soft_wrap=True)
    console.print(f"{len(added)} reviews added to {db}", highlight=False)


@reviews_app.command("list")
@_friendly
def reviews_list(
    db: ReviewsDb,
    source: Annotated[str | None, typer.Option(help="Only reviews of this source.")] = None,
    verdict: Annotated[str | None, typer.Option(help="Only this verdict.")] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Only the review that counts for each item.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (newest first).")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """The reviews, newest first: what was said of which span, by whom, of which model
    (--quiet: the rows without the table's title)."""
    from earmark.review.store import opened

    with _options(), opened(db) as store:
        rows, total = store.list(
            source=source, verdict=verdict, latest=latest, limit=limit, offset=offset
        )
    if as_json:
        _emit_json({"reviews": [r.to_dict(with_path=True) for r in rows], "total": total})
        return
    table = Table("id", "when (UTC)", "recording", "span (s)", "label", "verdict", "reviewer",
                  "model", title=None if quiet else f"{len(rows)} of {total} reviews")  # fmt: skip
    for r in rows:
        verdict_text = f"relabel -> {r.new_label}" if r.verdict == "relabel" else r.verdict
        table.add_row(
            str(r.id),
            (r.created_at or "").replace("T", " ").rstrip("Z"),
            escape(r.name),
            f"{r.start_s:g}-{r.end_s:g}",
            escape(r.label or "-"),
            escape(verdict_text),
            escape(r.reviewer or ""),
            escape(r.model or ""),
        )
    console.print(table)


@reviews_app.command("delete")
@_friendly
def reviews_delete(
    db: ReviewsDb,
    review_id: Annotated[int, typer.Argument(help="The review's id (`earmark reviews list`).")],
    quiet: Quiet = False,
) -> None:
    """Remove a review (undo): an earlier review of the same item counts again."""
    from earmark.review.store import opened

    with opened(db) as store:
        if not store.delete(review_id):
            raise EarmarkError(f"{db}: no review {review_id}")
    if not quiet:
        console.print(f"review {review_id} removed", highlight=False)


@reviews_app.command("export")
@_friendly
def reviews_export(
    db: ReviewsDb,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The table to write: .csv, or .txt (Raven).")
    ],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or raven (default: from the suffix).")
    ] = None,
    negative_label: Annotated[
        str,
        typer.Option(
            "--negative-label",
            help="Label of the spans reviewed wrong (hard negatives): the data's background class.",
        ),
    ] = "background",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Write the reviews as an annotation table `earmark train --annotations` reads: correct
    spans with their label, relabelled ones with the new label, wrong ones as
    --negative-label rows (hard negatives). The verdict that counts is each item's latest."""
    from earmark.review.export import export_reviews

    if out.exists() and not overwrite:
        raise OptionError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise OptionError(f"{out} is a folder; name the table file")
    with _options():
        summary = export_reviews(db, out, format=fmt, negative_label=negative_label)
    if summary.missing:
        err_console.print(
            f"[yellow]note:[/] {summary.missing} reviewed spans left out: their recording is "
            "missing",
            highlight=False,
        )
    if not quiet:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.labels.items()))
        console.print(f"{summary.rows} rows ({escape(counts)})", highlight=False)
    console.print(f"wrote {out}", highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point of the ``earmark`` console script."""
    app()
