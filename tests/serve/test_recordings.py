"""Playable recordings by opaque id: corpus files, uploads kept for review, ``/v1/audio``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from signals import SR, tone

from earmark.errors import ParameterError
from earmark.serve import Recordings, ServeSettings, create_app


def _wav(path: Path, seconds: float = 3.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(440.0, seconds), SR)
    return path


def test_corpus_files_get_stable_ids_and_names_under_their_root(tmp_path: Path) -> None:
    f = _wav(tmp_path / "corpus" / "site1" / "a.wav")
    rec = Recordings()
    rid = rec.add_file(f, root=tmp_path / "corpus")
    assert rid == Recordings().add_file(f) and rid.startswith("f") and len(rid) == 17
    assert rec.name(rid) == "site1/a.wav" and rec.path(rid) == f.resolve()
    for bad in ("f0000000000000000", "../etc/passwd", str(f)):
        with pytest.raises(KeyError):
            rec.path(bad)


def test_snippets_are_the_span_at_the_files_rate(tmp_path: Path) -> None:
    f = _wav(tmp_path / "a.wav", 3.0)
    rec = Recordings()
    rid = rec.add_file(f)
    y, sr = sf.read(io.BytesIO(rec.snippet(rid, 1.0, 1.5)))
    assert sr == SR and len(y) == SR // 2
    want, _ = sf.read(f)
    assert np.allclose(y, want[SR : SR + SR // 2], atol=1 / 32767)
    y, _ = sf.read(io.BytesIO(rec.snippet(rid, 2.5, 99.0)))  # clipped at the end
    assert len(y) == SR // 2
    for start, end in ((3.5, 4.0), (2.0, 1.0)):
        with pytest.raises(ParameterError):
            rec.snippet(rid, start, end)
    long = rec.add_file(_wav(tmp_path / "long.wav", 62.0))
    with pytest.raises(ParameterError, match="at most 60 s"):
        rec.snippet(long, 0.0, 61.0)


def test_uploads_are_kept_by_content_and_found_after_a_restart(tmp_path: Path) -> None:
    f = _wav(tmp_path / "up.wav")
    rec = Recordings(tmp_path / "kept")
    rid = rec.keep(f, ".wav")
    assert rid is not None and rid.startswith("u")
    assert rec.keep(f, ".wav") == rid and len(list((tmp_path / "kept").iterdir())) == 1
    again = Recordings(tmp_path / "kept")
    assert rid in again and again.path(rid).read_bytes() == f.read_bytes()
    assert again.name(rid).startswith("upload-") and Recordings().keep(f) is None


def test_detect_keeps_the_upload_and_audio_plays_it_back(
    detector, recording: Path, tmp_path: Path
) -> None:
    rec = Recordings(tmp_path / "kept")
    client = TestClient(create_app(detector, ServeSettings(), recordings=rec))
    body = recording.read_bytes()
    res = client.post("/v1/detect", files={"file": ("scene.wav", body, "audio/wav")})
    assert res.status_code == 200, res.text
    rid = res.json()["recording"]
    assert rec.path(rid).read_bytes() == body
    wav = client.get(f"/v1/audio/{rid}", params={"start_s": 1.0, "end_s": 2.0})
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    y, sr = sf.read(io.BytesIO(wav.content))
    assert sr == 16_000 and len(y) == 16_000
    assert client.get("/v1/audio/u0123456789abcdef").status_code == 404
    assert client.get(f"/v1/audio/{rid}", params={"start_s": 500}).status_code == 422
    # without a keep folder nothing is kept and answers carry no id
    plain = TestClient(create_app(detector, ServeSettings()))
    res = plain.post("/v1/detect", files={"file": ("scene.wav", body, "audio/wav")})
    assert res.status_code == 200 and "recording" not in res.json()
