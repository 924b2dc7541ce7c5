"""Layout detection on small fabricated trees of each known data set (tiny real WAV files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark import data
from earmark.data.manifest import Manifest
from earmark.errors import LayoutError

CLIP = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)


def wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, CLIP, 16_000, subtype="PCM_16")
    return path


def make_esc50(root: Path) -> None:
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for i, (cat, target) in enumerate([("dog", 0), ("rain", 10), ("dog", 0), ("rain", 10)]):
        name = f"{i % 2 + 1}-1000{i}-A-{target}.wav"
        wav(root / "audio" / name)
        rows.append(f"{name},{i % 2 + 1},{target},{cat},False,1000{i // 2},A")
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")


def make_urbansound8k(root: Path) -> None:
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for i, (cls, cid) in enumerate([("siren", 8), ("drilling", 4), ("siren", 8)]):
        fold = i + 1
        name = f"{100 + i}-{cid}-0-0.wav"
        wav(root / "audio" / f"fold{fold}" / name)
        rows.append(f"{name},{100 + i},0.0,1.0,1,{fold},{cid},{cls}")
    (root / "metadata").mkdir()
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(rows) + "\n")


def make_speech_commands(root: Path) -> None:
    for word in ("yes", "no"):
        for spk in ("aa11", "bb22", "cc33"):
            wav(root / word / f"{spk}_nohash_0.wav")
    wav(root / "_background_noise_" / "white_noise.wav")
    (root / "validation_list.txt").write_text("yes/bb22_nohash_0.wav\nno/bb22_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/cc33_nohash_0.wav\nno/cc33_nohash_0.wav\n")


def make_gtzan(root: Path) -> None:
    for genre in (
        "blues",
        "classical",
        "country",
        "disco",
        "hiphop",
        "jazz",
        "metal",
        "pop",
        "reggae",
        "rock",
    ):
        wav(root / "genres_original" / genre / f"{genre}.00000.wav")


def make_audiomnist(root: Path) -> None:
    for spk in ("01", "02"):
        for digit in (0, 7):
            wav(root / "data" / spk / f"{digit}_{spk}_0.wav")
    (root / "data" / "audioMNIST_meta.txt").write_text("{}")


def make_fsdd(root: Path) -> None:
    for spk in ("jackson", "theo"):
        for digit in (3, 4):
            for take in (0, 7):
                wav(root / "recordings" / f"{digit}_{spk}_{take}.wav")


def make_folder(root: Path) -> None:
    for label in ("cat", "dog"):
        wav(root / label / "a.wav")
        wav(root / label / "nested" / "b.flac")
    (root / "cat" / "notes.txt").write_text("not audio")


def make_csv(root: Path) -> None:
    wav(root / "clips" / "x.wav")
    wav(root / "clips" / "y.wav")
    (root / "manifest.csv").write_text(
        "path,class,speaker\nclips/x.wav,up,s1\nclips/y.wav,down,s2\n"
    )


CASES = {
    "esc50": (make_esc50, 4, ["dog", "rain"], True, True, False),
    "urbansound8k": (make_urbansound8k, 3, ["drilling", "siren"], True, True, False),
    "speech_commands": (make_speech_commands, 6, ["no", "yes"], True, False, True),
    "gtzan": (make_gtzan, 10, None, False, False, False),
    "audiomnist": (make_audiomnist, 4, ["0", "7"], True, False, False),
    "fsdd": (make_fsdd, 8, ["3", "4"], True, False, True),
    "folder": (make_folder, 4, ["cat", "dog"], False, False, False),
    "csv": (make_csv, 2, ["down", "up"], True, False, False),
}


@pytest.mark.parametrize("layout", list(CASES))
def test_known_layouts_are_detected_and_read(tmp_path: Path, layout: str) -> None:
    make, n, classes, groups, folds, splits = CASES[layout]
    make(tmp_path)
    assert data.detect_layout(tmp_path) == layout
    m = data.load(tmp_path)
    assert m.layout == layout and len(m) == n
    assert m.classes == (classes or sorted(m.classes)) and len(m.classes) >= 2
    assert (m.has_groups, m.has_folds, m.has_splits) == (groups, folds, splits)
    assert all(Path(p).is_file() for p in m.filepaths)


def test_layout_specific_columns(tmp_path: Path) -> None:
    make_esc50(tmp_path / "esc")
    m = data.load(tmp_path / "esc")
    assert sorted(m.frame["fold"].unique()) == [1, 2] and m.frame["group"].nunique() == 2
    make_speech_commands(tmp_path / "sc")
    sc = data.load(tmp_path / "sc")
    assert "_background_noise_" not in sc.classes
    by_speaker = dict(zip(sc.frame["group"], sc.frame["split"], strict=False))
    assert by_speaker == {"aa11": "train", "bb22": "valid", "cc33": "test"}
    make_fsdd(tmp_path / "fsdd")
    f = data.load(tmp_path / "fsdd")
    test_names = {Path(p).name for p in f.split().test.filepaths}
    assert test_names == {"3_jackson_0.wav", "4_jackson_0.wav", "3_theo_0.wav", "4_theo_0.wav"}


def test_csv_with_aliases_relative_paths_and_empty_labels(tmp_path: Path) -> None:
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    csv = tmp_path / "list.csv"
    csv.write_text("File,Label,Group,Fold\na.wav,bird,r1,1\nb.wav,,r2,2\n")
    m = data.load(csv)
    assert m.layout == "csv"
    assert m.filepaths == [str((tmp_path / n).resolve()) for n in ("a.wav", "b.wav")]
    assert m.labels.tolist() == ["bird", None] and m.label_ids().tolist() == [0, -1]
    back = Manifest.from_records(m.filepaths, m.labels, groups=m.groups).to_csv(
        tmp_path / "out.csv"
    )
    assert data.load(back).filepaths == m.filepaths


def test_bad_data_sets_raise_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="no such file"):
        data.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no audio files"):
        data.load(tmp_path / "empty")
    (tmp_path / "bad.csv").write_text("name,colour\nx,red\n")
    with pytest.raises(LayoutError, match="needs a path column"):
        data.load(tmp_path / "bad.csv")
    with pytest.raises(LayoutError, match="unknown layout"):
        data.load(tmp_path, layout="timit")
    m = Manifest.from_records(["a.wav"], ["x"])
    with pytest.raises(LayoutError, match="not among"):
        m.label_ids(["y"])
