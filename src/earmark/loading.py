"""``earmark.load``: any trained model from its artifact, dispatched on its family.

``earmark.json`` names the family: ``classical`` and ``neural`` artifacts load as an
:class:`earmark.Classifier`, ``ensemble`` as an :class:`earmark.ensembles.Ensemble`, and an
exported ``.onnx`` file (its settings inside the file) as an
:class:`earmark.onnx_model.OnnxClassifier`. Each loads only the libraries it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from earmark import artifact

__all__ = ["load"]


def load(path: str | Path, *, calibration: bool = True, **options: Any) -> Any:
    """Load a trained model: an artifact directory written by ``save`` / ``earmark train`` /
    ``earmark ensemble``, or an ``.onnx`` file written by ``earmark export``. ``options`` go
    to the ONNX runner (``threads``, ``spin``). A classifier's run calibrated by
    ``earmark calibrate`` scores with its calibration and thresholds unless
    ``calibration`` is false."""
    if Path(path).suffix.lower() == ".onnx" and not Path(path).is_dir():  # (a run named x.onnx)
        from earmark.onnx_model import OnnxClassifier

        return OnnxClassifier.load(path, **options)
    if options:
        raise TypeError(f"options {sorted(options)} apply to ONNX models only")
    family = artifact.read_meta(path)["family"]
    if family == "ensemble":
        from earmark.ensembles import Ensemble

        return Ensemble.load(path)
    if family in ("classical", "neural"):
        from earmark.classifier import Classifier

        return Classifier.load(path, calibration=calibration)
    raise artifact.ArtifactError(f"{path}: unknown model family {family!r}")
