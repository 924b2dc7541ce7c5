"""Data sets: manifests, known layouts, leak-free splits, a caching torch Dataset.

The splits (scikit-learn) and ``AudioDataset`` (torch) load on first use: both take seconds
to import, and listing or checking a data set needs neither.
"""

from earmark._lazy import lazy_attributes
from earmark.data.layouts import (
    LAYOUTS,
    as_manifest,
    detect_layout,
    from_csv,
    from_folder,
    load,
    unlabelled_folder,
)
from earmark.data.manifest import Manifest
from earmark.data.scan import ScanReport, scan

_LAZY = {
    "AudioDataset": "dataset",
    "annotation_windows": "annotations",
    "load_windows": "segments",
    "windows_manifest": "segments",
    "read_annotations": "annotations",
    "Splits": "splits",
    "check_no_leak": "splits",
    "from_split_column": "splits",
    "hide_labels": "splits",
    "holdout": "splits",
    "kfold": "splits",
    "predefined_folds": "splits",
}
__getattr__, _lazy_dir = lazy_attributes(__name__, _LAZY)
__all__ = [
    "LAYOUTS",
    "Manifest",
    "ScanReport",
    "as_manifest",
    "detect_layout",
    "from_csv",
    "from_folder",
    "load",
    "scan",
    "unlabelled_folder",
    *_LAZY,
]


def __dir__() -> list[str]:
    return sorted(__all__)
