"""Uploads: streamed to memory-backed space, moved to disk when it fills, 503 when nothing
can take them; multipart parsed as it streams; no server path in any message."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from earmark.serve import ServeSettings, create_app, uploads
from earmark.serve.uploads import Spool, UploadProblem, scrub


@pytest.fixture
def small_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Memory-backed space (``mem``) that holds ``room["mem"]`` bytes in all, and a disk
    (``disk``) holding ``room["disk"]``: writes past that fail with ENOSPC, as a full tmpfs
    (a container's 64 MB /dev/shm) or disk does. Nothing is mounted: ``os.write`` is
    wrapped for the files in those two folders."""
    mem, disk = (tmp_path / "mem").resolve(), (tmp_path / "disk").resolve()
    mem.mkdir()
    disk.mkdir()
    room = {"mem": 8_000, "disk": 10**9}
    used = {"mem": 0, "disk": 0}
    real_write = os.write

    def write(fd: int, data) -> int:
        try:
            where = Path(os.readlink(f"/proc/self/fd/{fd}")).parent
        except OSError:
            where = None
        for name, folder in (("mem", mem), ("disk", disk)):
            if where == folder:
                n = min(len(data), room[name] - used[name])
                if n <= 0:
                    raise OSError(errno.ENOSPC, "No space left on device")
                n = real_write(fd, bytes(data)[:n])
                used[name] += n
                return n
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(uploads, "memory_dir", lambda: str(mem))
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(disk))
    return mem, disk, room


def test_a_spool_moves_to_the_next_folder_when_one_fills(small_memory) -> None:
    mem, disk, _ = small_memory
    spool = Spool([str(mem), str(disk)], ".wav")
    data = os.urandom(200_000)
    for at in range(0, len(data), 30_000):
        spool.write(data[at : at + 30_000])
    path = spool.close()
    assert path.parent == disk and path.suffix == ".wav" and path.read_bytes() == data
    assert list(mem.iterdir()) == []  # the part written to memory was moved, not left


def test_a_spool_with_no_room_anywhere_is_a_503(small_memory) -> None:
    mem, disk, room = small_memory
    room["disk"] = 100_000
    spool = Spool([str(mem), str(disk)], "")
    with pytest.raises(UploadProblem) as err:
        spool.write(os.urandom(300_000))
    assert err.value.status == 503 and err.value.retry_after
    spool.discard()
    assert list(mem.iterdir()) == [] and list(disk.iterdir()) == []


def test_a_declared_size_memory_cannot_hold_goes_to_disk_first(small_memory) -> None:
    mem, disk, _ = small_memory
    spool = Spool([str(mem), str(disk)], "", expected=10**15)  # more than any tmpfs
    spool.write(b"abc")
    assert spool.close().parent == disk


def test_uploads_fall_back_to_disk_through_the_server(
    detector, small_memory, demo_digits: Path
) -> None:
    mem, disk, room = small_memory
    clip = (demo_digits / "two" / "v001.wav").read_bytes()
    assert len(clip) > room["mem"]  # a clip does not fit in the memory-backed space
    client = TestClient(create_app(detector, ServeSettings()))
    for _ in range(3):
        res = client.post("/v1/predict", files={"file": ("a.wav", clip, "audio/wav")})
        assert res.status_code == 200, res.text
        res = client.post("/v1/predict", content=clip, headers={"content-type": "audio/wav"})
        assert res.status_code == 200, res.text
    room["disk"] = 1000  # and now the disk is full too: 503, never 500
    res = client.post("/v1/predict", content=clip, headers={"content-type": "audio/wav"})
    assert res.status_code == 503 and res.headers["retry-after"]
    assert "no room" in res.json()["detail"]
    assert list(mem.iterdir()) == [] and list(disk.iterdir()) == []


def test_bodies_are_streamed_never_read_whole(
    detector, demo_digits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    def whole(*args, **kwargs):
        raise AssertionError("a body was read whole into memory")

    monkeypatch.setattr(Request, "body", whole)
    monkeypatch.setattr(Request, "form", whole)
    monkeypatch.setattr(UploadFile, "read", whole)
    clip = (demo_digits / "two" / "v001.wav").read_bytes()
    client = TestClient(create_app(detector, ServeSettings()))
    res = client.post("/v1/predict", files={"file": ("a.wav", clip, "audio/wav")})
    assert res.status_code == 200, res.text
    res = client.post("/v1/detect", content=clip, headers={"content-type": "audio/wav"})
    assert res.status_code == 200, res.text


def test_multipart_forms(detector, demo_digits: Path) -> None:
    clip = (demo_digits / "two" / "v001.wav").read_bytes()
    client = TestClient(create_app(detector, ServeSettings()))
    want = client.post("/v1/predict", content=clip, headers={"content-type": "audio/wav"})
    # other fields before and after the file are dropped
    res = client.post(
        "/v1/predict",
        data={"note": "x" * 5000, "zzz": "later"},
        files={"file": ("rec.wav", clip, "audio/wav")},
    )
    assert res.status_code == 200 and res.json()["labels"] == want.json()["labels"]
    no_file = client.post("/v1/predict", data={"file": "not a file"}, files={"x": ("a", b"1")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["detail"]
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    for body, problem in (
        (head + clip[:5000], "ended before"),  # the closing boundary never comes
        (head, "ended before"),
        (b"garbage" * 10, "multipart"),
    ):
        res = client.post(
            "/v1/predict",
            content=body,
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert res.status_code == 400, res.text
        assert problem in res.json()["detail"] or "'file'" in res.json()["detail"], res.text
    res = client.post("/v1/predict", content=b"x", headers={"content-type": "multipart/form-data"})
    assert res.status_code == 400 and "boundary" in res.json()["detail"]
    empty = client.post("/v1/predict", files={"file": ("a.wav", b"", "audio/wav")})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]


def test_messages_never_show_server_paths(detector, tmp_path: Path, formats_dir: Path) -> None:
    uploads_dir = tmp_path / "secret-place"
    uploads_dir.mkdir()
    client = TestClient(create_app(detector, ServeSettings(upload_dir=str(uploads_dir))))
    ogg = (formats_dir / "tone.ogg").read_bytes()
    bodies = [
        ("broken.ogg", b"OggS" + b"\x00\x02" + os.urandom(200), "audio/ogg"),
        ("cut.ogg", ogg[: len(ogg) // 3], "audio/ogg"),
        ("x.mp3", b"ID3" + os.urandom(300), "audio/mpeg"),
        ("x.m4a", b"\x00\x00\x00\x20ftypM4A " + os.urandom(100), "audio/mp4"),
        ("x.wav", b"RIFF\x10\x00\x00\x00WAVEfmt " + os.urandom(40), "audio/wav"),
        ("x.flac", b"fLaC" + os.urandom(64), "audio/flac"),
    ]
    for name, body, kind in bodies:
        for res in (
            client.post("/v1/predict", files={"file": (name, body, kind)}),
            client.post("/v1/detect", content=body, headers={"content-type": kind}),
        ):
            assert 400 <= res.status_code < 500, (name, res.status_code, res.text)
            detail = res.json()["detail"]
            assert "secret-place" not in detail and "earmark-upload" not in detail, detail
            assert str(tmp_path) not in detail and "/tmp" not in detail, detail
    assert list(uploads_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("opening '/dev/shm/earmark-upload-ab_c1.ogg': bad", "opening 'the upload': bad"),
        ("C:\\Temp\\earmark-upload-x.wav is cut", "the upload is cut"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_scrub(text: str, want: str) -> None:
    assert scrub(text) == want


def test_scrub_knows_the_exact_path(tmp_path: Path) -> None:
    path = tmp_path / "odd name.wav"
    assert scrub(f"{path}: truncated", path) == "the upload: truncated"


def test_a_decoder_naming_the_temporary_file_is_scrubbed(
    detector, clip_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FFmpeg's messages name the file they opened (the upload's temporary path)."""
    from earmark import audio
    from earmark.errors import CorruptAudioError

    def fails(path, *args, **kwargs):
        raise CorruptAudioError(
            path, f"cannot open: [Errno 1094995529] Invalid data found: '{path}'"
        )

    monkeypatch.setattr(audio, "load_clip", fails)
    monkeypatch.setattr(audio, "info", fails)
    client = TestClient(create_app(detector, ServeSettings()))
    for endpoint in ("/v1/predict", "/v1/detect"):
        res = client.post(endpoint, files={"file": ("a.ogg", clip_bytes, "audio/ogg")})
        assert res.status_code == 400
        assert (
            res.json()["detail"]
            == "cannot open: [Errno 1094995529] Invalid data found: 'the upload'"
        )
