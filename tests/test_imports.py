"""`import earmark` stays cheap: torch loads only when a torch feature is used."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_import_earmark_loads_nothing_heavy() -> None:
    mods = _modules_after("import earmark")
    assert not {"torch", "sklearn", "librosa", "pandas"} & mods


def test_classical_training_path_does_not_need_torch() -> None:
    mods = _modules_after(
        "import earmark\n"
        "from earmark.classifier import Classifier\n"
        "from earmark.workflows import train_run\n"
        "earmark.features.handcrafted, earmark.data.load, earmark.data.holdout\n"
        "import earmark.cli"
    )
    assert "sklearn" in mods and "torch" not in mods


def test_torch_features_load_on_first_use() -> None:
    mods = _modules_after("import earmark\nearmark.features.logmel")
    assert "torch" in mods
