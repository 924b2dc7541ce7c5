"""Reading data sets into a :class:`Manifest`: a folder per class, a CSV, or a known layout.

Known layouts are detected from their marker files, so ``load("ESC-50-master/")`` just works:

========================  =====================================  ========================
layout                    marker                                 group / fold / split
========================  =====================================  ========================
ESC-50                    ``meta/esc50.csv``                     source clip / 5 folds
UrbanSound8K              ``metadata/UrbanSound8K.csv``          freesound id / 10 folds
Speech Commands v2        ``validation_list.txt`` + ``testing``  speaker / - / its lists
GTZAN                     genre folders (blues ... rock)         - / - / -
AudioMNIST                ``data/NN/<digit>_NN_<i>.wav``         speaker
FSDD                      ``recordings/<digit>_<name>_<i>.wav``  speaker / - / index 0-4 test
manifest CSV              ``manifest.csv`` or a ``.csv`` path    its columns
folder per class          ``<label>/**/<file>``                  -
========================  =====================================  ========================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from earmark.audio import AUDIO_EXTENSIONS
from earmark.data.manifest import Manifest
from earmark.errors import LayoutError

__all__ = ["LAYOUTS", "as_manifest", "detect_layout", "from_csv", "from_folder", "load"]

GTZAN_GENRES = (
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
)
SPEECH_COMMANDS_NOISE = "_background_noise_"
_DIGIT_FILE = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$")

# Column names accepted in a manifest CSV, first match wins.
_CSV_ALIASES = {
    "filepath": ("filepath", "path", "file", "filename", "fname", "audio", "slice_file_name"),
    "label": ("label", "class", "category", "target_name", "species"),
    "group": ("group", "speaker", "speaker_id", "fsid", "src_file", "recording", "session", "kit"),
    "fold": ("fold",),
    "split": ("split", "set", "subset"),
    "start_s": ("start_s",),  # a segment of the file (earmark.data.manifest)
    "end_s": ("end_s",),
}


def _is_audio(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_audio(p))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


# -- generic layouts -------------------------------------------------------------------------


def from_folder(root: str | Path, *, layout: str = "folder") -> Manifest:
    """A folder per class: every audio file under ``root/<label>/`` (at any depth)."""
    root = Path(root)
    paths, labels = [], []
    for sub in _subdirs(root):
        for p in _audio_files(sub):
            paths.append(p.resolve())
            labels.append(sub.name)
    if not paths:
        raise LayoutError(
            f"{root}: no audio files in class folders (expected {root}/<label>/<file>.wav)"
        )
    return Manifest.from_records(paths, labels, root=root, layout=layout)


def unlabelled_folder(root: str | Path) -> Manifest:
    """Every audio file under ``root`` (at any depth) as unlabelled rows."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder of unlabelled audio")
    paths = [p.resolve() for p in _audio_files(root)]
    if not paths:
        raise LayoutError(f"{root}: no audio files in this folder")
    return Manifest.from_records(paths, [None] * len(paths), root=root, layout="unlabelled")


def from_csv(
    path: str | Path, *, root: str | Path | None = None, multi_label: bool | None = None
) -> Manifest:
    """A manifest CSV: a path column and a label column, optional group, fold and split.

    Column names are matched case-insensitively against common aliases (``path``, ``file``,
    ``class``, ``speaker``...). Relative paths are taken from ``root``, default the CSV's folder.
    Label cells with ``;`` (``bird;frog``), or ``multi_label=True``, make it multi-label
    (:class:`Manifest`).
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path}: cannot read the manifest CSV ({exc})") from None
    lower = {c.lower().strip(): c for c in df.columns}
    picked = {}
    for name, aliases in _CSV_ALIASES.items():
        col = next((lower[a] for a in aliases if a in lower), None)
        if col is not None:
            picked[name] = df[col]
    if "filepath" not in picked or "label" not in picked:
        raise LayoutError(
            f"{path}: a manifest CSV needs a path column ({', '.join(_CSV_ALIASES['filepath'])}) "
            f"and a label column ({', '.join(_CSV_ALIASES['label'])}); found {list(df.columns)}"
        )
    base = Path(root) if root is not None else path.parent
    picked["filepath"] = [str((base / p).resolve()) for p in picked["filepath"]]
    frame = pd.DataFrame(picked)
    return Manifest(frame, root=base, layout="csv", multi_label=multi_label)


# -- known data sets --------------------------------------------------------------------------


def _esc50(root: Path) -> Manifest:
    meta = pd.read_csv(root / "meta" / "esc50.csv")
    return Manifest.from_records(
        [(root / "audio" / f).resolve() for f in meta["filename"]],
        meta["category"].tolist(),
        groups=meta["src_file"].astype(str).tolist(),
        folds=meta["fold"].tolist(),
        root=root,
        layout="esc50",
    )


def _urbansound8k(root: Path) -> Manifest:
    meta = pd.read_csv(root / "metadata" / "UrbanSound8K.csv")
    paths = [
        (root / "audio" / f"fold{fold}" / name).resolve()
        for name, fold in zip(meta["slice_file_name"], meta["fold"], strict=True)
    ]
    return Manifest.from_records(
        paths,
        meta["class"].tolist(),
        groups=meta["fsID"].astype(str).tolist(),
        folds=meta["fold"].tolist(),
        root=root,
        layout="urbansound8k",
    )


def _speech_commands(root: Path) -> Manifest:
    def listed(name: str) -> set[str]:
        return {line.strip() for line in (root / name).read_text().splitlines() if line.strip()}

    valid, test = listed("validation_list.txt"), listed("testing_list.txt")
    paths, labels, groups, splits = [], [], [], []
    for sub in _subdirs(root):
        if sub.name == SPEECH_COMMANDS_NOISE:
            continue
        for p in sorted(sub.glob("*.wav")):
            rel = f"{sub.name}/{p.name}"
            paths.append(p.resolve())
            labels.append(sub.name)
            groups.append(p.name.split("_nohash_")[0])
            splits.append("test" if rel in test else "valid" if rel in valid else "train")
    return Manifest.from_records(
        paths, labels, groups=groups, splits=splits, root=root, layout="speech_commands"
    )


def _gtzan_dir(root: Path) -> Path | None:
    for cand in (
        root,
        root / "genres_original",
        root / "genres",
        root / "Data" / "genres_original",
    ):
        if cand.is_dir() and sum((cand / g).is_dir() for g in GTZAN_GENRES) >= 8:
            return cand
    return None


def _gtzan(root: Path) -> Manifest:
    base = _gtzan_dir(root)
    paths, labels = [], []
    for genre in GTZAN_GENRES:
        for p in _audio_files(base / genre) if (base / genre).is_dir() else []:
            paths.append(p.resolve())
            labels.append(genre)
    return Manifest.from_records(paths, labels, root=root, layout="gtzan")


def _digit_files(folder: Path) -> list[tuple[Path, re.Match]]:
    out = []
    for p in sorted(folder.glob("*.wav")):
        m = _DIGIT_FILE.match(p.name)
        if m:
            out.append((p, m))
    return out


def _audiomnist_dirs(root: Path) -> list[Path]:
    base = root / "data" if (root / "data").is_dir() else root
    return [d for d in _subdirs(base) if re.fullmatch(r"\d{2}", d.name)]


def _audiomnist(root: Path) -> Manifest:
    paths, labels, groups = [], [], []
    for d in _audiomnist_dirs(root):
        for p, m in _digit_files(d):
            paths.append(p.resolve())
            labels.append(m.group(1))
            groups.append(m.group(2))
    return Manifest.from_records(paths, labels, groups=groups, root=root, layout="audiomnist")


def _fsdd(root: Path) -> Manifest:
    files = _digit_files(root / "recordings")
    return Manifest.from_records(
        [p.resolve() for p, _ in files],
        [m.group(1) for _, m in files],
        groups=[m.group(2) for _, m in files],
        # FSDD's own convention: takes 0-4 of every speaker are the test set.
        splits=["test" if int(m.group(3)) < 5 else "train" for _, m in files],
        root=root,
        layout="fsdd",
    )


def _is_audiomnist(root: Path) -> bool:
    dirs = _audiomnist_dirs(root)
    return bool(dirs) and any(_digit_files(d) for d in dirs[:3])


_DETECTORS: list[tuple[str, Callable[[Path], bool], Callable[[Path], Manifest]]] = [
    ("esc50", lambda r: (r / "meta" / "esc50.csv").is_file(), _esc50),
    ("urbansound8k", lambda r: (r / "metadata" / "UrbanSound8K.csv").is_file(), _urbansound8k),
    (
        "speech_commands",
        lambda r: (r / "validation_list.txt").is_file() and (r / "testing_list.txt").is_file(),
        _speech_commands,
    ),
    ("fsdd", lambda r: (r / "recordings").is_dir() and bool(_digit_files(r / "recordings")), _fsdd),
    ("audiomnist", _is_audiomnist, _audiomnist),
    ("gtzan", lambda r: _gtzan_dir(r) is not None, _gtzan),
    ("csv", lambda r: (r / "manifest.csv").is_file(), lambda r: from_csv(r / "manifest.csv")),
    ("folder", lambda r: True, from_folder),
]
LAYOUTS: tuple[str, ...] = tuple(name for name, _, _ in _DETECTORS)


def detect_layout(path: str | Path) -> str:
    """The name of the layout of ``path`` (a folder, or a CSV file), one of :data:`LAYOUTS`."""
    path = Path(path)
    if not path.exists():
        raise LayoutError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise LayoutError(f"{path}: a data set is a folder or a manifest CSV, not a single file")
    for name, matches, _ in _DETECTORS:
        if matches(path):
            return name
    raise LayoutError(f"{path}: layout not recognised")  # unreachable: folder always matches


def load(path: str | Path, *, layout: str = "auto") -> Manifest:
    """Read a data set into a :class:`Manifest`; ``layout='auto'`` detects it (see module doc)."""
    path = Path(path)
    name = detect_layout(path) if layout == "auto" else layout
    if path.is_file():
        if name != "csv":
            raise LayoutError(f"{path}: a single file can only be read as a CSV manifest")
        return from_csv(path)
    readers = {n: reader for n, _, reader in _DETECTORS}
    if name not in readers:
        raise LayoutError(f"unknown layout {name!r}; use auto or one of {LAYOUTS}")
    try:
        return readers[name](path)
    except (OSError, KeyError, pd.errors.ParserError) as exc:
        raise LayoutError(f"{path}: cannot read as {name} ({exc})") from None


def as_manifest(data: Manifest | str | Path) -> Manifest:
    """A manifest from a :class:`Manifest`, a data set folder or a manifest CSV."""
    return data if isinstance(data, Manifest) else load(data)
