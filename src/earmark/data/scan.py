"""Check every file of a manifest: what it holds, or why it cannot be used.

One bad file among thousands is listed and counted, never the end of the run. Files are
decoded in a thread pool: libsndfile and ffmpeg release the GIL while they decode.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd

from earmark.audio import info, read_through
from earmark.data.manifest import Manifest
from earmark.errors import AudioError

__all__ = ["ScanReport", "scan"]


@dataclass
class ScanReport:
    """Per-file facts (``table``), the usable files (``good``) and the unusable ones (``bad``)."""

    table: pd.DataFrame
    good: Manifest
    bad: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """Counts and ranges for people: classes, durations (s), rates (Hz), channels."""
        ok = self.table[self.table["error"].isna()]
        dur = ok["duration"].astype(float)
        return {
            "files": len(self.table),
            "readable": len(ok),
            "unreadable": len(self.bad),
            "classes": self.good.counts(),
            "unlabelled": int((~self.good.labelled).sum()),
            "groups": int(self.good.frame["group"].nunique()) if self.good.has_groups else 0,
            "duration_s": {
                "total": float(dur.sum()),
                "min": float(dur.min()) if len(dur) else 0.0,
                "mean": float(dur.mean()) if len(dur) else 0.0,
                "max": float(dur.max()) if len(dur) else 0.0,
            },
            "sample_rates": {int(k): int(v) for k, v in ok["sample_rate"].value_counts().items()},
            "channels": {int(k): int(v) for k, v in ok["channels"].value_counts().items()},
            "formats": {str(k): int(v) for k, v in ok["format"].value_counts().items()},
        }


def _check(path: str, decode: bool) -> dict[str, Any]:
    try:
        meta = info(path)
        row = {
            "sample_rate": meta.sample_rate,
            "channels": meta.channels,
            "duration": meta.duration,
            "format": meta.format,
            "codec": meta.codec,
        }
        if decode:  # all of it, block by block: memory does not follow the file's size
            frames, peak = read_through(path)
            row["duration"] = frames / meta.sample_rate
            row["peak"] = peak
        return {**row, "error": None}
    except AudioError as exc:
        return {"error": f"{type(exc).__name__}: {exc.problem}"}


def scan(
    manifest: Manifest,
    *,
    decode: bool = True,
    workers: int | None = None,
    on_file: Callable[[], None] | None = None,
) -> ScanReport:
    """Read every file's header (and decode it fully when ``decode``, which also catches
    files cut short and NaN samples). ``on_file`` is called after each file (progress)."""
    workers = workers or min(8, os.cpu_count() or 1)
    paths = manifest.filepaths

    # each file once: the segment rows of one recording share its checks
    rows_of = Counter(paths)
    unique = list(rows_of)

    def one(path: str) -> dict[str, Any]:
        out = _check(path, decode)
        if on_file is not None:
            for _ in range(rows_of[path]):  # progress counts rows
                on_file()
        return out

    with ThreadPoolExecutor(max_workers=workers) as pool:
        checked = dict(zip(unique, pool.map(one, unique), strict=True))
    rows = [checked[p] for p in paths]
    cols = ["sample_rate", "channels", "duration", "format", "codec", "peak", "error"]
    facts = pd.DataFrame(rows, columns=cols)
    table = pd.concat([manifest.frame.reset_index(drop=True), facts], axis=1)
    bad_mask = table["error"].notna().to_numpy()
    return ScanReport(
        table=table,
        good=manifest.subset(~bad_mask),
        bad=table.loc[bad_mask, ["filepath", "label", "error"]].reset_index(drop=True),
    )
