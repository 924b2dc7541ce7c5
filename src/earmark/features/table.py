"""Features of a whole data set as one table: computed in batches, saved as ``.npz``.

Files that cannot be decoded are skipped and listed, never the end of the run. The ``.npz``
holds only numeric and text arrays (loaded with ``allow_pickle=False``) and the exact audio
and feature settings as JSON, so the numbers can always be traced back to how they were made.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earmark.audio import AudioConfig, load_clip
from earmark.data.manifest import Manifest
from earmark.errors import AudioError, EarmarkError
from earmark.features.frontend import FeatureConfig, extract

__all__ = ["FeatureTable", "compute_features"]


@dataclass
class FeatureTable:
    """Features ``X`` (first axis: files), class ids ``y`` (-1: unlabelled) and provenance."""

    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    filepaths: list[str]
    groups: list[str]
    audio: AudioConfig
    features: FeatureConfig
    names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` atomically (temporary name, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        settings = {"audio": self.audio.to_dict(), "features": self.features.to_dict()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    X=self.X,
                    y=self.y,
                    classes=np.array(self.classes, dtype=str),
                    filepaths=np.array(self.filepaths, dtype=str),
                    groups=np.array(self.groups, dtype=str),
                    names=np.array(self.names, dtype=str),
                    settings=np.array(json.dumps(settings)),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureTable:
        """Read a table written by :meth:`save` (no pickle involved)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                settings = json.loads(str(z["settings"]))
                return cls(
                    X=z["X"],
                    y=z["y"],
                    classes=z["classes"].tolist(),
                    filepaths=z["filepaths"].tolist(),
                    groups=z["groups"].tolist(),
                    audio=AudioConfig.from_dict(settings["audio"]),
                    features=FeatureConfig.from_dict(settings["features"]),
                    names=z["names"].tolist(),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise EarmarkError(f"{path}: not a feature table written by earmark ({exc})") from None


def compute_features(
    manifest: Manifest,
    audio: AudioConfig,
    features: FeatureConfig,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    device: str = "cpu",
    on_file: Callable[[], None] | None = None,
) -> FeatureTable:
    """Decode, standardize and featurize every file of ``manifest``.

    Clips must share a length for the spectral kinds and ``waveform``: set
    ``audio.duration``. Unreadable files are skipped and listed in ``FeatureTable.skipped``.
    """
    if features.kind != "handcrafted" and audio.duration is None:
        raise EarmarkError(
            f"{features.kind} features of clips of different lengths cannot be stacked: "
            "set a clip duration (AudioConfig.duration / --duration)"
        )
    classes = manifest.classes
    ids = manifest.label_ids(classes)
    groups = manifest.groups if manifest.has_groups else None

    def decode(i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, load_clip(manifest.filepaths[i], audio), None
        except AudioError as exc:
            return i, None, str(exc)
        finally:
            if on_file is not None:
                on_file()

    outputs, kept, skipped = [], [], []
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(manifest), batch_size):
            batch = list(pool.map(decode, range(start, min(start + batch_size, len(manifest)))))
            good = [(i, y) for i, y, err in batch if err is None]
            skipped += [(manifest.filepaths[i], err) for i, _, err in batch if err is not None]
            if not good:
                continue
            kept += [i for i, _ in good]
            if audio.duration is None:  # handcrafted: one vector per clip, whatever its length
                outputs += [extract(y[None], audio.sample_rate, features) for _, y in good]
            else:
                stacked = np.stack([y for _, y in good])
                outputs.append(extract(stacked, audio.sample_rate, features, device=device))
    if not kept:
        raise EarmarkError(f"none of the {len(manifest)} files could be decoded")
    names = features.handcrafted(audio.sample_rate).names if features.kind == "handcrafted" else []
    return FeatureTable(
        X=np.concatenate(outputs).astype(np.float32),
        y=ids[kept],
        classes=classes,
        filepaths=[manifest.filepaths[i] for i in kept],
        groups=[str(groups[i]) for i in kept] if groups is not None else [],
        audio=audio,
        features=features,
        names=names,
        skipped=skipped,
    )
