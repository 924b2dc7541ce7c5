"""Data sets: manifests, known layouts, leak-free splits, a caching torch Dataset."""

from earmark.data.dataset import AudioDataset, WaveformCache
from earmark.data.layouts import LAYOUTS, detect_layout, from_csv, from_folder, load
from earmark.data.manifest import Manifest
from earmark.data.scan import ScanReport, scan
from earmark.data.splits import (
    Splits,
    check_no_leak,
    from_split_column,
    holdout,
    kfold,
    predefined_folds,
)

__all__ = [
    "LAYOUTS",
    "AudioDataset",
    "Manifest",
    "ScanReport",
    "Splits",
    "WaveformCache",
    "check_no_leak",
    "detect_layout",
    "from_csv",
    "from_folder",
    "from_split_column",
    "holdout",
    "kfold",
    "load",
    "predefined_folds",
    "scan",
]
