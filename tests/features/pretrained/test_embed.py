"""`earmark embed` and its library function: one row per window, long files streamed,
unreadable files skipped, Parquet (or .npz) readable by pandas and pyarrow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from signals import SR, tone
from typer.testing import CliRunner

from earmark.cli import app
from earmark.errors import ParameterError
from earmark.features import pretrained

WINDOW = pretrained.info("aisfx").window_seconds  # 2.322 s


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-s file (three windows: two full, the last padded), a 0.6-s one (one padded
    window) and a file that is not audio."""
    root = tmp_path_factory.mktemp("embed")
    sf.write(root / "long.wav", tone(330.0, 5.0, amp=0.3), SR)
    sf.write(root / "short.wav", tone(880.0, 0.6, amp=0.3), SR)
    (root / "bad.wav").write_bytes(b"this is not audio")
    return root


@pytest.fixture(scope="module")
def table(folder: Path) -> pretrained.Embeddings:
    return pretrained.embed_files(folder, "aisfx", device="cpu")


def test_one_row_per_window_and_the_bad_file_skipped(folder: Path, table) -> None:
    long, short = str(folder / "long.wav"), str(folder / "short.wav")
    assert table.files == [long, long, long, short]
    np.testing.assert_allclose(table.starts, [0.0, WINDOW, 2 * WINDOW, 0.0], atol=1e-3)
    np.testing.assert_allclose(table.ends, [WINDOW, 2 * WINDOW, 5.0, 0.6], atol=1e-3)
    assert table.vectors.shape == (4, 512) and table.vectors.dtype == np.float32
    assert [p for p, _ in table.skipped] == [str(folder / "bad.wav")]
    assert "not an audio" in table.skipped[0][1]
    assert table.embedded_files == 2


def test_a_row_is_the_embedding_of_its_window(folder: Path, table) -> None:
    """The streamed windows give what the embedder gives the window cut by hand (at the
    frontend's rate, the last one zero-padded)."""
    from earmark import audio as audio_io

    y, _ = audio_io.load(folder / "long.wav", sr=44_100)
    n = round(WINDOW * 44_100)
    last = np.zeros(n, dtype=np.float32)
    last[: y.shape[-1] - 2 * n] = y[0, 2 * n :]
    expected = pretrained.load("aisfx")(np.stack([y[0, n : 2 * n], last]))
    np.testing.assert_allclose(table.vectors[1:3], expected, atol=1e-4)


def test_parquet_and_npz_round_trip(table, tmp_path: Path) -> None:
    path = table.save(tmp_path / "emb.parquet")
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["file", "start_s", "end_s", "embedding"]
    assert len(frame) == 4 and frame["embedding"].iloc[0].shape == (512,)
    np.testing.assert_array_equal(np.stack(frame["embedding"]), table.vectors)
    schema = pq.read_schema(path)
    assert str(schema.field("embedding").type) == "fixed_size_list<element: float>[512]"
    settings = json.loads(schema.metadata[b"earmark"])
    assert settings["frontend"]["license"] == "CC BY 4.0" and settings["window_s"] == WINDOW
    back = pretrained.Embeddings.load(path)
    np.testing.assert_array_equal(back.vectors, table.vectors)
    assert back.files == table.files
    npz = table.save(tmp_path / "emb.npz")
    with np.load(npz, allow_pickle=False) as z:
        assert z["embeddings"].shape == (4, 512) and z["files"].tolist() == table.files
    assert pretrained.Embeddings.load(npz).files == table.files
    with pytest.raises(ParameterError, match=r"must end in \.parquet or \.npz"):
        table.save(tmp_path / "emb.csv")


def test_window_and_hop(folder: Path) -> None:
    out = pretrained.embed_files(
        [folder / "long.wav"], "aisfx", window=2.0, hop=1.0, batch_size=2, device="cpu"
    )
    np.testing.assert_allclose(out.starts, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(out.ends, [2.0, 3.0, 4.0, 5.0])
    with pytest.raises(ParameterError, match="hop must be between"):
        pretrained.embed_files([folder / "long.wav"], "aisfx", hop=0.0)
    with pytest.raises(ParameterError, match="batch_size"):
        pretrained.embed_files([folder / "long.wav"], "aisfx", batch_size=0)


def test_the_cli_writes_the_table_and_exits_3_for_the_bad_file(folder: Path, tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "emb.parquet"
    args = ["embed", str(folder / "short.wav"), str(folder / "bad.wav"), "--out", str(out)]
    result = runner.invoke(app, [*args, "--quiet", "--device", "cpu"])
    assert result.exit_code == 3, result.output
    assert "unreadable:" in result.output and "bad.wav" in result.output
    frame = pd.read_parquet(out)
    assert frame["file"].tolist() == [str(folder / "short.wav")]
    again = runner.invoke(app, [*args, "--quiet"])  # no --overwrite: refused, file kept
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.output
    result = runner.invoke(app, [*args, "--overwrite", "--json", "--batch-size", "4"])
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["rows"] == 1 and doc["unreadable"] == 1 and doc["dim"] == 512
    bad = runner.invoke(app, ["embed", str(folder), "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "must end in .parquet or .npz" in bad.output
    bad = runner.invoke(app, ["embed", str(folder), "--out", str(out), "--frontend", "vggish"])
    assert bad.exit_code == 2 and "unknown pretrained frontend" in bad.output
    assert frame.equals(pd.read_parquet(out))  # nothing written by the refused runs


def test_nothing_readable_writes_nothing(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.npz"
    result = CliRunner().invoke(app, ["embed", str(folder / "bad.wav"), "--out", str(out)])
    assert result.exit_code == 1 and not out.exists()
