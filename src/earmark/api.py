"""Top-level functions that match the command line: ``earmark.detect``,
``earmark.cross_validate``, ``earmark.tune``, ``earmark.ensemble`` and ``earmark.export``.

Each takes what the command takes (a model directory or a loaded model, data, an output) and
calls the library, so a script does what ``earmark detect`` / ``cv`` / ``tune`` /
``ensemble`` / ``export`` do, with the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from earmark.loading import load

if TYPE_CHECKING:
    from earmark.audio import AudioConfig
    from earmark.data.manifest import Manifest
    from earmark.detection.run import DetectionSummary
    from earmark.ensembles import Ensemble, Method
    from earmark.evaluation import CVResult
    from earmark.training import TrainConfig
    from earmark.tuning import TuneResult

__all__ = ["cross_validate", "detect", "ensemble", "export", "tune"]


def _model(model: Any) -> Any:
    return load(model) if isinstance(model, (str, Path)) else model


def detect(
    model: Any,
    inputs: str | Path | Iterable[str | Path],
    out: str | Path,
    **options: Any,
) -> DetectionSummary:
    """Find and count events in long recordings (``earmark detect``): ``model`` is a model
    directory, an ``.onnx`` file or a loaded model; ``inputs`` recordings or folders of
    them; the tables go to ``out``. ``options`` go to :func:`earmark.detection.run.detect`
    (``windowing``, ``rules``, ``settings``, ``resume``, ``decode_ahead``, callbacks).
    ``workers=N`` (a local Dask cluster), ``scheduler=ADDRESS`` or ``engine`` run it on
    Dask, one task per recording (:func:`earmark.distributed.detect`): ``model`` must then
    be the model's path, which the workers load."""
    from earmark.detection.run import detect as run_detect
    from earmark.errors import EarmarkError, ParameterError
    from earmark.predict import input_files

    if any(options.get(k) is not None for k in ("workers", "scheduler", "engine")):
        if not isinstance(model, (str, Path)):
            raise ParameterError(
                "on Dask the workers load the model from its folder: give its path"
            )
        from earmark.distributed import detect as dask_detect

        return dask_detect(model, inputs, out, **options)
    options = {k: v for k, v in options.items() if k not in ("workers", "scheduler", "engine")}
    paths = input_files(inputs)
    if not paths:
        raise EarmarkError(f"no audio files in {inputs}")
    return run_detect(_model(model), paths, out, **options)


def cross_validate(
    data: Manifest | str | Path,
    model: str = "svm",
    *,
    features: str | None = None,
    params: dict[str, Any] | None = None,
    audio: AudioConfig | None = None,
    folds: int | None = None,
    group: bool | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    train: TrainConfig | None = None,
    on_file: Callable[[], None] | None = None,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
) -> CVResult:
    """Cross-validate a model's settings on ``data`` (``earmark cv``): the data set's own
    folds, else ``folds``-fold, grouped whenever the data has groups. A network (``train``:
    its training settings) trains once per fold, as ``earmark train`` trains it."""
    from earmark.classifier import Classifier
    from earmark.workflows import run_cv

    clf = Classifier(
        model,
        features=features,
        audio=audio,
        params=params,
        seed=seed,
        cache_dir=cache_dir,
        train=train,
    )
    result, _skipped = run_cv(
        data, clf, folds=folds, group=group, seed=seed, on_file=on_file, on_fold=on_fold
    )
    return result


def tune(
    data: Manifest | str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    recipe: str | Path | dict[str, Any] | None = None,
    space: str | Path | dict[str, Any] | None = None,
    trials: int = 20,
    **options: Any,
) -> TuneResult:
    """Search hyper-parameters (``earmark tune``) around the settings of ``recipe`` (a YAML
    file or a dict in its shape) and ``model``, over ``space`` (a YAML file, a dict in its
    shape, or the model's default space), into the study folder ``out``; a second call
    continues it. ``options`` go to :func:`earmark.tuning.tune` (``folds``, ``metric``,
    ``seed``, ``prune``, ``overwrite``, ``cache_dir``, callbacks). ``out/best.yaml`` is the
    best setting as a recipe for ``earmark train --config``."""
    from earmark.settings import read_recipe, train_settings
    from earmark.tuning import read_space, space_from_dict
    from earmark.tuning import tune as run_tune

    if isinstance(recipe, str | Path):
        recipe = read_recipe(recipe)
    settings = train_settings(recipe, {"model": model})
    if isinstance(space, str | Path):
        space = read_space(space, settings)
    elif space is not None:
        space = space_from_dict(space, settings)
    return run_tune(data, settings, out, trials=trials, space=space, **options)


def ensemble(
    runs: Sequence[str | Path],
    *,
    method: Method = "mean",
    weights: Sequence[float] | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> Ensemble:
    """Combine saved models (``earmark ensemble``) by ``mean``, ``weighted`` mean or
    ``vote``; saved to ``out`` when given (with the split record the members share). An
    existing ``out`` is replaced only when it is an earlier earmark output and ``overwrite``
    is set (:func:`earmark.artifact.check_out`), checked before the members load."""
    from earmark.artifact import check_out
    from earmark.ensembles import Ensemble

    if out is not None:
        check_out(out, overwrite=overwrite)
    ens, extra = Ensemble.from_runs(runs, method=method, weights=weights)
    if out is not None:
        ens.save(out, extra=extra)
    return ens


def export(model: Any, out: str | Path, *, overwrite: bool = False) -> Path:
    """Export a network (a model directory or a loaded :class:`earmark.Classifier`) to one
    ONNX file, its settings inside (``earmark export``); returns the path."""
    from earmark.onnx_export import export_onnx

    return export_onnx(_model(model), out, overwrite=overwrite)
