"""Signals the tests share, imported as ``from signals import SR, tone``: a module of its own
because more than one folder has a ``conftest.py``, and whichever is imported last holds the
name ``conftest`` when the whole suite is collected."""

from __future__ import annotations

import numpy as np

SR = 16_000


def tone(freq: float = 440.0, duration: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    """A sine of ``freq`` Hz, float32 ``[samples]``."""
    t = np.arange(round(duration * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


#: Where :func:`seven_or_not`'s recording holds its 'two' and its 'seven' (s).
TWO_AT, SEVEN_AT = 1.125, 4.125


def quiet_noise(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """White noise at about -50 dBFS, float32."""
    rng = np.random.default_rng(seed)
    return (0.003 * rng.standard_normal(round(seconds * sr))).astype(np.float32)


def seven_or_not(demo_digits, root):  # -> (data folder, recording)
    """In ``root``: ``data/seven`` (one-second clips of quiet noise holding a spoken 'seven'
    of 8 voices) and ``data/background`` (the noise alone), and ``field.wav``: 6 s of the same
    noise holding a 'two' at :data:`TWO_AT` (speech a model of this data never heard, which
    it takes for a seven) and a 'seven' at :data:`SEVEN_AT` (a voice it did not train on)."""
    import soundfile as sf

    for name in ("seven", "background"):
        (root / "data" / name).mkdir(parents=True)
    for i in range(8):
        clip, _ = sf.read(demo_digits / "seven" / f"v{i:03d}.wav", dtype="float32")
        y = quiet_noise(1.0, 100 + i)
        at = (i * 997) % (SR - clip.size)
        y[at : at + clip.size] += clip
        sf.write(root / "data" / "seven" / f"v{i:03d}.wav", y, SR)
        sf.write(root / "data" / "background" / f"n{i}.wav", quiet_noise(1.0, i), SR)
    y = quiet_noise(6.0, 99)
    for digit, at in (("two", TWO_AT), ("seven", SEVEN_AT)):
        clip, _ = sf.read(demo_digits / digit / "v001.wav", dtype="float32")
        y[round(at * SR) : round(at * SR) + clip.size] += clip
    rec = root / "field.wav"
    sf.write(rec, y, SR, subtype="PCM_16")
    return root / "data", rec
