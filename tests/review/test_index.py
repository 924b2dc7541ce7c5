"""The similarity index: every window of a corpus embedded (aisfx) into a usearch index;
queries by clip find the window they were cut from; the graph agrees with exact search; a
half-built index is continued, refused or replaced, never silently mixed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

from earmark.cli import app
from earmark.errors import AudioError, EarmarkError, Interrupted, ParameterError
from earmark.features import pretrained
from earmark.review import index as ix
from earmark.review.index import build_index, open_index

SR = 44_100  # the frontend's own rate: a window cut from a file embeds exactly as in the index
WINDOW = pretrained.info("aisfx").window_seconds  # 2.322 s


def pips(seconds: float, seed: int) -> np.ndarray:
    """Tone pips of random pitch at random times over faint noise: every stretch differs
    (a steady tone would give every window the same embedding)."""
    rng = np.random.default_rng(seed)
    y = 0.01 * rng.standard_normal(round(seconds * SR))
    t = np.arange(round(0.15 * SR)) / SR
    for start in rng.uniform(0, seconds - 0.15, size=round(6 * seconds)):
        i = round(start * SR)
        freq = rng.uniform(300, 8000)
        y[i : i + len(t)] += 0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))
    return y.astype(np.float32)


def corpus(root: Path, lengths: dict[str, float], bad: bool = True) -> Path:
    for i, (name, seconds) in enumerate(lengths.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, pips(seconds, seed=i), SR)
    if bad:
        (root / "bad.wav").write_bytes(b"this is not audio")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    return corpus(root, {"site1/a.wav": 5.0, "site1/b.wav": 4.0, "site2/c.wav": 3.0})


@pytest.fixture(scope="module")
def built(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ix.IndexSummary]:
    out = tmp_path_factory.mktemp("idx") / "idx"
    return out, build_index(data, out, hop=0.5, device="cpu")


def test_build_writes_the_index_folder_and_lists_the_unreadable_file(data: Path, built) -> None:
    out, summary = built
    assert sorted(p.name for p in out.iterdir()) == [
        "index.json",
        "vectors.usearch",
        "windows.parquet",
    ]
    record = json.loads((out / "index.json").read_text())
    assert record["status"] == "complete" and record["kind"] == "search-index"
    assert record["frontend"]["name"] == "aisfx" and "sha256:" in record["frontend"]["weights"]
    assert record["library"] == "usearch" and record["dtype"] == "f16" and record["hop_s"] == 0.5
    # full windows every 0.5 s, then the padded one: 5 s: 0..2.5 + 3.0; 4 s: 0..1.5 + 2.0;
    # 3 s: 0, 0.5 + 1.0
    assert summary.windows == record["windows"] == 7 + 5 + 3
    assert record["files"] == 3 and abs(record["audio_hours"] - 12 / 3600) < 1e-6
    assert [p for p, _ in summary.skipped] == [str(data / "bad.wav")]
    assert record["skipped"][0]["path"] == str(data / "bad.wav")
    table = pq.read_table(out / "windows.parquet").to_pandas()
    assert list(table.columns) == ["file", "start_s", "end_s"]
    assert set(table["file"]) == {
        str(data / n) for n in ("site1/a.wav", "site1/b.wav", "site2/c.wav")
    }
    a = table[table["file"] == str(data / "site1/a.wav")]
    np.testing.assert_allclose(a["start_s"], np.arange(7) * 0.5)
    assert a["end_s"].iloc[-1] == pytest.approx(5.0)


def test_a_window_cut_from_the_corpus_finds_itself_first(data: Path, built, tmp_path: Path) -> None:
    out, _ = built
    index = open_index(out)
    y, _ = sf.read(data / "site1" / "b.wav", dtype="float32")
    start = 1.0
    clip = y[round(start * SR) : round(start * SR) + round(WINDOW * SR)]
    sf.write(tmp_path / "query.wav", clip, SR, subtype="FLOAT")
    result = index.search_file(tmp_path / "query.wav", k=5)
    first = result.hits[0]
    assert (first.file, first.start_s) == (str(data / "site1" / "b.wav"), pytest.approx(start))
    assert first.distance < 1e-3 < result.hits[1].distance  # f16 storage: not exactly 0
    assert result.query_windows == 1 and result.exact  # a tiny index is scanned exactly
    assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
    assert all(a.distance <= b.distance for a, b in zip(result.hits, result.hits[1:], strict=False))


def test_a_longer_query_is_the_mean_of_its_windows(data: Path, built, tmp_path: Path) -> None:
    """A 5-s clip: windows at 0 and 2.32 s and one aligned to its end (none mostly padding),
    each a unit vector before the mean (a loud window does not outweigh a quiet one)."""
    index = open_index(built[0])
    y, _ = sf.read(data / "site1" / "a.wav", dtype="float32")
    y = y[: 5 * SR].copy()
    y[round(2.7 * SR) :] *= 0.02
    sf.write(tmp_path / "q.wav", y, SR, subtype="FLOAT")
    vector, windows = index.embed_query(tmp_path / "q.wav")
    assert windows == 3
    n = round(WINDOW * SR)
    parts = pretrained.load("aisfx")(np.stack([y[:n], y[n : 2 * n], y[len(y) - n :]]))
    parts /= np.linalg.norm(parts, axis=1, keepdims=True)
    want = parts.mean(0) / np.linalg.norm(parts.mean(0))
    np.testing.assert_allclose(vector, want, atol=1e-4)


def test_graph_search_recalls_what_exact_search_finds(built) -> None:
    index = open_index(built[0])
    rows = list(range(len(index)))
    vectors = index.vectors(rows)
    recall = 0
    for row, v in zip(rows, vectors, strict=True):
        approx = index.search_vector(v, k=10, exact=False)
        exact = index.search_vector(v, k=10, exact=True)
        assert not approx.exact and exact.exact and exact.hits[0].row == row
        recall += len(set(approx.rows) & set(exact.rows))
    assert recall / (10 * len(rows)) >= 0.9
    # k over the index's size gives every window once
    assert sorted(index.search_vector(vectors[0], k=100).rows) == rows


def test_bad_queries_are_one_line_errors(built, tmp_path: Path) -> None:
    index = open_index(built[0])
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="bad\\.wav"):
        index.search_file(tmp_path / "bad.wav")
    with pytest.raises(AudioError, match="missing\\.wav"):
        index.search_file(tmp_path / "missing.wav")
    sf.write(tmp_path / "long.wav", np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(AudioError, match="over the limit"):
        index.search_file(tmp_path / "long.wav", max_duration=2.0)
    for k in (0, 1001, 2.5, True):
        with pytest.raises(ParameterError, match="k must be"):
            index.search_vector(np.ones(512), k=k)
    with pytest.raises(ParameterError, match="512 finite"):
        index.search_vector(np.ones(3))


def test_a_missing_usearch_is_the_install_line(built, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "usearch.index", None)  # import fails
    with pytest.raises(EarmarkError, match=r"earmark\[search\]"):
        open_index(built[0])


def test_interrupted_builds_resume_and_equal_a_fresh_one(tmp_path: Path) -> None:
    data = corpus(tmp_path / "c", {"x.wav": 1.0, "y.wav": 1.0, "z.wav": 1.0}, bad=False)
    out = tmp_path / "idx"
    seen = []

    def stop_after_two() -> None:
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="--resume"):
        build_index(data, out, device="cpu", on_file=stop_after_two)
    assert (out / "parts").is_dir() and not (out / "vectors.usearch").exists()
    with pytest.raises(EarmarkError, match="half-built"):
        open_index(out)
    with pytest.raises(EarmarkError, match="--resume or start again with --overwrite"):
        build_index(data, out, device="cpu")
    with pytest.raises(EarmarkError, match="another hop_s"):
        build_index(data, out, device="cpu", resume=True, hop=0.5)
    summary = build_index(data, out, device="cpu", resume=True)
    assert (summary.resumed, summary.embedded, summary.windows) == (2, 1, 3)
    assert not (out / "parts").exists()
    fresh = build_index(data, tmp_path / "fresh", device="cpu")
    a, b = open_index(out), open_index(tmp_path / "fresh")
    assert a.windows["file"] == b.windows["file"] and fresh.windows == 3
    np.testing.assert_array_equal(a.vectors([0, 1, 2]), b.vectors([0, 1, 2]))
    # a complete index: refused without --overwrite, not resumable, replaced with it
    with pytest.raises(EarmarkError, match="earlier index; pass --overwrite"):
        build_index(data, out, device="cpu")
    with pytest.raises(EarmarkError, match="complete"):
        build_index(data, out, device="cpu", resume=True)
    assert build_index(data, out, device="cpu", overwrite=True, dtype="f32").windows == 3
    assert json.loads((out / "index.json").read_text())["dtype"] == "f32"


def test_folders_and_settings_that_are_refused(tmp_path: Path) -> None:
    data = corpus(tmp_path / "c", {"x.wav": 1.0}, bad=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(EarmarkError, match="did not write"):
        build_index(data, foreign, device="cpu", overwrite=True)
    assert (foreign / "notes.txt").exists()
    with pytest.raises(EarmarkError, match="no index to resume"):
        build_index(data, tmp_path / "new", device="cpu", resume=True)
    with pytest.raises(ParameterError, match="dtype"):
        build_index(data, tmp_path / "x", dtype="f8")
    with pytest.raises(ParameterError, match="hop"):
        build_index(data, tmp_path / "x", hop=-1.0)
    with pytest.raises(EarmarkError, match="no audio files"):
        build_index(tmp_path / "foreign", tmp_path / "x")
    with pytest.raises(EarmarkError, match="none of the 1 files"):
        build_index(foreign / "notes.txt", tmp_path / "y")
    assert not (tmp_path / "x").exists()
    with pytest.raises(EarmarkError, match="not an earmark index"):
        open_index(foreign)


def test_cli_index_and_search(data: Path, built, tmp_path: Path) -> None:
    runner = CliRunner()
    small = corpus(tmp_path / "c", {"x.wav": 1.0, "y.wav": 1.0})
    res = runner.invoke(app, ["index", str(small), "--out", str(tmp_path / "idx"), "--json"])
    assert res.exit_code == 3, res.output  # one unreadable file: partial
    doc = json.loads(res.stdout)
    assert (doc["windows"], doc["files"], doc["unreadable"]) == (2, 2, 1)
    res = runner.invoke(app, ["index", str(small), "--out", str(tmp_path / "idx")])
    assert res.exit_code == 1 and "pass --overwrite" in res.stderr
    res = runner.invoke(app, ["index", str(small), "--out", "o", "--dtype", "f8"])
    assert res.exit_code == 2 and "--dtype" in res.stderr

    out, _ = built
    res = runner.invoke(
        app, ["search", str(out), str(data / "site2" / "c.wav"), "-k", "3", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["hits"]) == 3 and doc["hits"][0]["file"] == str(data / "site2" / "c.wav")
    res = runner.invoke(app, ["search", str(out), str(data / "site2" / "c.wav")])
    assert res.exit_code == 0 and "c.wav" in res.stdout and "hits in" in res.stdout
    res = runner.invoke(app, ["search", str(out), str(data / "bad.wav")])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1 and "bad.wav" in res.stderr
    res = runner.invoke(app, ["search", str(tmp_path / "nowhere"), str(data / "bad.wav")])
    assert res.exit_code == 1 and "no such index" in res.stderr
