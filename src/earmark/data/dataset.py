"""A torch ``Dataset`` of standardized waveforms, decoded once and cached.

Decoding and resampling dominate input cost, so each file's standardized waveform (channels,
rate and normalization applied; length not yet fixed) is kept in memory and, optionally, on
disk under a key made of the file's content hash and the audio settings: a renamed file hits
the cache, an edited one misses it. Cropping to the training length happens per item, so a
random crop differs between epochs but is repeatable for a given seed and epoch.

A segment row (``start_s`` / ``end_s``) is decoded alone (the file is seeked, not read
whole), and cached under its span too: each window of a recording is its own entry.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from earmark.audio import AudioConfig, fix_length, load_clip
from earmark.cache import ArrayCache, file_digest, segment_key
from earmark.data.manifest import Manifest

__all__ = ["AudioDataset"]


class AudioDataset(Dataset):
    """Items are ``(waveform [channels, samples] float32 tensor, class id)``; -1 if unlabelled.
    For a multi-label manifest the target is its multi-hot row (float32 tensor ``[classes]``).

    Args:
        manifest: the files and labels.
        audio: standardization settings; ``audio.duration`` fixes every item's length.
        classes: label order for class ids (default: the manifest's sorted labels).
        cache_dir: folder for the on-disk waveform cache (``None``: memory only).
        memory_cache: keep decoded waveforms in memory across epochs.
        seed: seeds the random crops (``audio.crop == 'random'``) with :meth:`set_epoch`.

    A file that cannot be decoded raises its :class:`earmark.errors.AudioError` from
    ``__getitem__``; use :func:`earmark.data.scan` first to drop such files.
    """

    def __init__(
        self,
        manifest: Manifest,
        audio: AudioConfig,
        *,
        classes: list[str] | None = None,
        cache_dir: str | Path | None = None,
        memory_cache: bool = True,
        seed: int = 0,
    ) -> None:
        self.manifest = manifest
        self.audio = audio
        self.classes = list(manifest.classes if classes is None else classes)
        self.targets = manifest.targets(self.classes)  # ids, or multi-hot rows
        self.paths = manifest.filepaths
        self.spans = manifest.spans
        self._digests: dict[str, str] = {}  # one hash per recording, however many segments
        self.disk = ArrayCache(cache_dir) if cache_dir is not None else None
        self.memory: dict[int, np.ndarray] | None = {} if memory_cache else None
        self.seed = seed
        self.epoch = 0
        # What is cached: every setting except the length policy, applied per item.
        self._base = replace(audio, duration=None)

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Random crops depend on (seed, epoch, index): call once per epoch for new crops."""
        self.epoch = epoch

    def waveform(self, index: int) -> np.ndarray:
        """The standardized waveform of item ``index`` at its natural length (cached)."""
        if self.memory is not None and index in self.memory:
            return self.memory[index]
        path, span = self.paths[index], self.spans[index]
        key = segment_key(self._base.key(), span)
        digest = None
        if self.disk is not None:
            digest = self._digests.get(path)
            if digest is None:
                digest = self._digests[path] = file_digest(path)
        y = self.disk.get(digest, key) if self.disk is not None else None
        if y is None:
            offset, duration = span if span is not None else (0.0, None)
            y = load_clip(path, self._base, offset=offset, duration=duration)
            if self.disk is not None:
                self.disk.put(digest, key, y)
        if self.memory is not None:
            self.memory[index] = y
        return y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        y = self.waveform(index)
        n = self.audio.n_samples
        if n is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            y = fix_length(y, n, crop=self.audio.crop, pad=self.audio.pad, rng=rng)
        target = self.targets[index]
        if target.ndim:  # multi-hot
            return torch.from_numpy(np.ascontiguousarray(y)), torch.from_numpy(target.copy())
        return torch.from_numpy(np.ascontiguousarray(y)), int(target)
