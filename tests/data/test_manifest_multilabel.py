"""Multi-label manifests: ``;``-joined label cells, multi-hot targets, negatives, splits."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.data.layouts import from_csv
from earmark.data.manifest import Manifest
from earmark.data.splits import check_no_leak, holdout
from earmark.errors import LayoutError


def _manifest(**kw) -> Manifest:
    return Manifest.from_records(
        [f"/x/{i}.wav" for i in range(6)],
        ["bird;frog", "frog", None, " frog ; bird ;", "bird", ""],
        groups=["a", "a", "b", "c", "d", "e"],
        **kw,
    )


def test_semicolon_makes_multi_hot_targets() -> None:
    m = _manifest()
    assert m.multi_label
    assert m.classes == ["bird", "frog"]
    assert m.labels.tolist() == ["bird;frog", "frog", None, "bird;frog", "bird", None]
    y = m.targets()
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[1, 1], [0, 1], [0, 0], [1, 1], [1, 0], [0, 0]])
    assert m.labelled.all()  # empty cells are negatives, not unlabelled rows
    assert m.counts() == {"bird": 3, "frog": 3}
    assert m.subset([1, 4]).multi_label  # no ';' left, still multi-label
    with pytest.raises(LayoutError, match="targets"):
        m.label_ids()


def test_explicit_flag_and_single_label_unchanged() -> None:
    single = Manifest.from_records(["/a.wav", "/b.wav", "/c.wav"], ["x", "y", None])
    assert not single.multi_label
    assert single.targets().tolist() == [0, 1, -1]
    assert single.labelled.tolist() == [True, True, False]
    forced = Manifest.from_records(
        ["/a.wav", "/b.wav", "/c.wav"], ["x", "y", None], multi_label=True
    )
    assert forced.multi_label and forced.labelled.all()
    assert forced.targets().tolist() == [[1, 0], [0, 1], [0, 0]]
    with pytest.raises(LayoutError, match="multi_label=False"):
        _manifest(multi_label=False)
    with pytest.raises(LayoutError, match="not among"):
        forced.targets(["x"])


def test_csv_inferred_and_grouped_holdout(tmp_path) -> None:
    rows = ["path,label,group"]
    for i in range(40):
        lab = ["bird", "frog", "bird;frog", ""][i % 4]
        rows.append(f"{i}.wav,{lab},rec{i // 2}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    m = from_csv(tmp_path / "m.csv")
    assert m.multi_label and m.classes == ["bird", "frog"]
    parts = holdout(m, test_size=0.25, valid_size=0.0, seed=1)
    assert len(parts.train) + len(parts.test) == 40
    check_no_leak(parts.train, parts.test)
    assert parts.train.multi_label and parts.test.multi_label
    # label-powerset stratification: every label set on both sides
    assert set(parts.test.labels.astype(str)) == set(parts.train.labels.astype(str))
