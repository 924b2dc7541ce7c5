from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from signals import SR, tone

from earmark import data
from earmark.audio import AudioConfig
from earmark.data import dataset as dataset_module
from earmark.errors import AudioError


@pytest.fixture
def small_set(tmp_path: Path, write_wav) -> data.Manifest:
    for i, freq in enumerate((300.0, 600.0, 900.0)):
        write_wav(f"low/{i}.wav", tone(freq, 0.5 + 0.25 * i))
        write_wav(f"high/{i}.wav", tone(freq * 4, 0.5 + 0.25 * i))
    return data.load(tmp_path)


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = dataset_module.load_clip

    def counting(path, config, **kw):
        calls.append(str(path))
        return real(path, config, **kw)

    monkeypatch.setattr(dataset_module, "load_clip", counting)
    return calls


def test_items_are_fixed_length_tensors_with_class_ids(small_set: data.Manifest) -> None:
    ds = data.AudioDataset(small_set, AudioConfig(sample_rate=8_000, duration=0.6))
    x, _ = ds[0]
    assert isinstance(x, torch.Tensor) and x.shape == (1, 4_800) and x.dtype == torch.float32
    assert ds.classes == ["high", "low"] and {ds[i][1] for i in range(len(ds))} == {0, 1}
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 1, 4_800) and yb.shape == (4,)


def test_memory_cache_decodes_each_file_once(small_set, monkeypatch) -> None:
    calls = count_decodes(monkeypatch)
    ds = data.AudioDataset(small_set, AudioConfig(duration=0.5))
    for _ in range(3):
        for i in range(len(ds)):
            ds[i]
    assert len(calls) == len(ds)


def test_disk_cache_survives_a_new_dataset_and_follows_content(
    small_set, monkeypatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cfg = AudioConfig(sample_rate=8_000, duration=0.5)
    first = data.AudioDataset(small_set, cfg, cache_dir=cache)
    ref = [first[i][0] for i in range(len(first))]
    calls = count_decodes(monkeypatch)
    again = data.AudioDataset(small_set, cfg, cache_dir=cache)
    for i in range(len(again)):
        torch.testing.assert_close(again[i][0], ref[i])
    assert calls == []  # everything came from disk
    # Edited content misses the cache; a different setting misses it too; a copy of a cached
    # file hits it (the key is the content, not the name).
    sf.write(small_set.filepaths[0], tone(123.0, 0.5), SR, subtype="PCM_16")
    shutil.copy(small_set.filepaths[1], small_set.filepaths[3])
    data.AudioDataset(small_set, cfg, cache_dir=cache)[3]
    data.AudioDataset(small_set, cfg, cache_dir=cache)[0]
    data.AudioDataset(small_set, AudioConfig(sample_rate=16_000, duration=0.5), cache_dir=cache)[2]
    assert calls == [small_set.filepaths[0], small_set.filepaths[2]]


def test_a_damaged_cache_entry_is_recomputed(small_set, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cfg = AudioConfig(duration=0.5)
    good = data.AudioDataset(small_set, cfg, cache_dir=cache)[0][0]
    for f in cache.rglob("*.npy"):
        f.write_bytes(b"garbage")
    torch.testing.assert_close(data.AudioDataset(small_set, cfg, cache_dir=cache)[0][0], good)


def test_random_crops_repeat_per_epoch_and_change_between_epochs(small_set) -> None:
    cfg = AudioConfig(duration=0.2, crop="random")
    ds = data.AudioDataset(small_set, cfg, seed=3)
    a = ds[5][0]
    torch.testing.assert_close(data.AudioDataset(small_set, cfg, seed=3)[5][0], a)
    ds.set_epoch(1)
    assert not torch.equal(ds[5][0], a)


def test_a_broken_file_raises_its_audio_error(small_set, broken_dir: Path) -> None:
    m = data.Manifest.from_records([broken_dir / "cut.wav"], ["low"])
    with pytest.raises(AudioError, match=r"cut\.wav"):
        data.AudioDataset(m, AudioConfig(duration=0.5))[0]


def test_scan_lists_bad_files_and_carries_on(small_set, broken_dir: Path) -> None:
    frame = small_set.frame.copy()
    bad = [broken_dir / n for n in ("empty.wav", "cut.wav", "text.wav", "nan.wav")]
    extra = data.Manifest.from_records(bad, ["low"] * len(bad))
    m = data.Manifest(pd.concat([frame, extra.frame]))
    report = data.scan(m)
    assert len(report.good) == len(small_set) and len(report.bad) == 4
    assert report.bad["error"].str.contains("TruncatedFileError").sum() == 1
    s = report.summary()
    assert s["unreadable"] == 4 and s["sample_rates"] == {SR: 6}
    assert abs(s["duration_s"]["max"] - 1.0) < 1e-6
    header_only = data.scan(m, decode=False)
    assert len(header_only.bad) == 3  # nan.wav passes a header check, cut.wav does not
    assert header_only.bad["filepath"].str.endswith("nan.wav").sum() == 0
    assert np.isnan(header_only.table["peak"].astype(float)).all()
