"""Durable photo files: temp + fsync + rename, generated names, crash leftovers swept, JPEG encoding."""

from __future__ import annotations

import hashlib
import os
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.store.photos import (
    is_jpeg,
    new_photo_path,
    remove_photo,
    sha256_file,
    sweep_temp_files,
    write_photo_durably,
)
from appliance.vision.jpeg import encode_jpeg

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_write_creates_dirs_and_returns_the_sha256_of_what_is_on_disk(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    digest = write_photo_durably(data_dir, "photos/2024/05/17/abc.jpg", PHOTO)
    final = data_dir / "photos" / "2024" / "05" / "17" / "abc.jpg"
    assert final.read_bytes() == PHOTO
    assert digest == hashlib.sha256(PHOTO).hexdigest() == sha256_file(final)
    assert all_files(data_dir) == ["photos/2024/05/17/abc.jpg"]  # no temp file left beside it


def test_paths_outside_the_data_dir_are_refused(tmp_path: Path) -> None:
    for bad in ("../escape.jpg", "photos/../../escape.jpg", "/etc/escape.jpg", ""):
        with pytest.raises(ValueError, match="relative to the data directory"):
            write_photo_durably(tmp_path / "data", bad, PHOTO)
    assert all_files(tmp_path) == []


def test_an_existing_photo_is_never_overwritten(tmp_path: Path) -> None:
    write_photo_durably(tmp_path, "photos/a.jpg", PHOTO)
    with pytest.raises(FileExistsError):
        write_photo_durably(tmp_path, "photos/a.jpg", b"\xff\xd8\xff other")
    assert (tmp_path / "photos" / "a.jpg").read_bytes() == PHOTO
    assert all_files(tmp_path) == ["photos/a.jpg"]


def test_a_failed_fsync_leaves_neither_temp_nor_final_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")  # what a dying SD card reports

    (tmp_path / "photos").mkdir()  # so the first fsync is the photo's own
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_photo_durably(tmp_path, "photos/a.jpg", PHOTO)
    monkeypatch.undo()
    assert all_files(tmp_path) == []


def test_empty_photo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        write_photo_durably(tmp_path, "photos/a.jpg", b"")
    assert all_files(tmp_path) == []


def test_new_photo_paths_are_generated_dated_in_utc_and_unique() -> None:
    late_evening_west_of_utc = datetime(2024, 3, 5, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    paths = {new_photo_path(late_evening_west_of_utc).as_posix() for _ in range(50)}
    assert len(paths) == 50
    for path in paths:
        assert re.fullmatch(r"photos/2024/03/06/[0-9a-f]{32}\.jpg", path)


def test_remove_photo(tmp_path: Path) -> None:
    write_photo_durably(tmp_path, "photos/a.jpg", PHOTO)
    assert remove_photo(tmp_path, "photos/a.jpg") is True
    assert remove_photo(tmp_path, "photos/a.jpg") is False
    assert all_files(tmp_path) == []


def test_sweep_removes_only_stale_temp_files(tmp_path: Path) -> None:
    day = tmp_path / "photos" / "2024" / "05" / "17"
    day.mkdir(parents=True)
    stale = day / ".1f2e.jpg.0a1b2c3d.tmp"
    fresh = day / ".9e8d.jpg.4e5f6a7b.tmp"  # another process may be writing this one right now
    kept_photo = day / "1f2e.jpg"
    hidden_but_not_temp = day / ".notes"
    for path in (stale, fresh, kept_photo, hidden_but_not_temp):
        path.write_bytes(b"x")
    old = time.time() - 3600
    for path in (stale, kept_photo, hidden_but_not_temp):
        os.utime(path, (old, old))

    assert sweep_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in day.iterdir()) == sorted([fresh.name, kept_photo.name, hidden_but_not_temp.name])
    assert sweep_temp_files(tmp_path, older_than_s=0) == [fresh]


def test_sweep_of_a_data_dir_without_photos_is_a_no_op(tmp_path: Path) -> None:
    assert sweep_temp_files(tmp_path / "missing") == []


def test_encode_jpeg_gives_a_decodable_jpeg_of_the_same_picture() -> None:
    rng = np.random.default_rng(3)
    bgr = np.zeros((64, 96, 3), dtype=np.uint8)
    bgr[:, :48] = (30, 140, 50)
    bgr[:, 48:] = (200, 180, 160)
    bgr[48:] = rng.integers(0, 255, size=(16, 96, 3), dtype=np.uint8)  # detail, in its own JPEG blocks
    data = encode_jpeg(bgr)
    assert is_jpeg(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == bgr.shape
    assert np.abs(decoded[:32].astype(int) - bgr[:32].astype(int)).mean() < 4
    assert len(encode_jpeg(bgr, quality=20)) < len(data)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 3), dtype=np.float32), "uint8"),
        (np.zeros((10, 10, 4), dtype=np.uint8), "shape"),
        (np.zeros((0, 10, 3), dtype=np.uint8), "shape"),
        ([[1, 2], [3, 4]], "uint8"),
    ],
)
def test_encode_jpeg_refuses_what_is_not_an_image(image: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_jpeg(image)  # type: ignore[arg-type]


def test_created_at_date_directory_follows_utc() -> None:
    path = new_photo_path(datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC))
    assert path.parts[:4] == ("photos", "2024", "12", "31")
