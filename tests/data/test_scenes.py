from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import soundfile as sf

from earmark import data
from earmark.data.scenes import make_demo_scenes
from earmark.detection.truth import read_truth


def test_scenes_place_digits_of_unseen_voices_at_the_listed_times(
    demo_digits: Path, tmp_path: Path
) -> None:
    scenes = make_demo_scenes(
        tmp_path / "s",
        demo_digits,
        n_recordings=2,
        seconds=20.0,
        holdout_voices=2,
        n_noise=10,
        seed=3,
    )
    recs = sorted(scenes.recordings.glob("*.wav"))
    assert len(recs) == 2 and all(abs(sf.info(r).duration - 20.0) < 1e-3 for r in recs)
    truth = read_truth(scenes.truth)
    assert len(truth) >= 6 and {e.file for e in truth} == {r.name for r in recs}
    assert all(0 <= e.start < e.end <= 20.0 for e in truth)
    # events do not overlap, and the audio is louder where they are
    for rec in recs:
        y, sr = sf.read(rec)
        mine = sorted((e for e in truth if e.file == rec.name), key=lambda e: e.start)
        assert all(a.end < b.start for a, b in itertools.pairwise(mine))
        e = mine[0]
        inside = y[int(e.start * sr) : int(e.end * sr)].std()
        before = y[max(0, int((e.start - 0.8) * sr)) : int((e.start - 0.1) * sr)].std()
        assert inside > 1.3 * before  # 6 dB over the background under the voiced part
    train = data.load(scenes.train)
    assert set(train.classes) == {"seven", "other", "noise"}
    voices = set(pd.read_csv(demo_digits / "manifest.csv")["group"])
    held = sorted(voices)[-2:]
    assert not set(held) & set(train.frame["group"])  # recordings use unseen voices
