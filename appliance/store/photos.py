"""Photos on disk that survive a power cut: temp file, fsync, rename, fsync the directory.

The Pi's power can be pulled at any instant and SD cards reorder writes, so a photo is
either complete under its final name or absent; a half-written file only ever exists
under a temporary name that `sweep_temp_files` removes at the next start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

PHOTOS_DIR = "photos"
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"
_JPEG_MAGIC = b"\xff\xd8\xff"
_FILE_MODE = 0o644


def new_photo_path(created_at: datetime) -> PurePosixPath:
    """photos/YYYY/MM/DD/<uuid4>.jpg (UTC date); the name is ours, never taken from input."""
    day = created_at.astimezone(UTC)
    return PurePosixPath(PHOTOS_DIR, f"{day:%Y}", f"{day:%m}", f"{day:%d}", f"{uuid.uuid4().hex}.jpg")


def is_jpeg(data: bytes) -> bool:
    return bytes(data[:3]) == _JPEG_MAGIC


def resolve_inside(data_dir: Path, relative_path: str | PurePosixPath) -> Path:
    """Absolute path of a stored relative path, refusing anything that would leave the data dir."""
    rel = PurePosixPath(relative_path)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts or "\\" in str(rel):
        raise ValueError(f"photo path {str(relative_path)!r} must be relative to the data directory, without '..'")
    return Path(data_dir, *rel.parts)


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (new, renamed or removed files) durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durably(directory: Path) -> None:
    """mkdir -p, fsyncing the parent of every directory it creates so the new entry survives power loss."""
    missing: list[Path] = []
    current = Path(directory)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for new_dir in reversed(missing):
        with contextlib.suppress(FileExistsError):
            new_dir.mkdir()
        fsync_dir(new_dir.parent)
    if not Path(directory).is_dir():
        raise NotADirectoryError(f"{directory} exists but is not a directory")


def write_photo_durably(data_dir: Path, relative_path: str | PurePosixPath, jpeg_bytes: bytes) -> str:
    """Write the photo under data_dir and return its sha256 hex; the file is durable when this returns."""
    final = resolve_inside(data_dir, relative_path)
    data = bytes(jpeg_bytes)
    if not data:
        raise ValueError("photo is empty (0 bytes); nothing was written")
    make_dirs_durably(final.parent)
    if final.exists():
        raise FileExistsError(f"{final} already exists; photo names must be new (this is a bug)")
    temp = final.with_name(f"{_TEMP_PREFIX}{final.name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_dir(final.parent)
    return hashlib.sha256(data).hexdigest()


def remove_photo(data_dir: Path, relative_path: str | PurePosixPath) -> bool:
    """Delete a stored photo durably; False when it was not there."""
    path = resolve_inside(data_dir, relative_path)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_temp_name(name: str) -> bool:
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


def sweep_temp_files(data_dir: Path, *, older_than_s: float = 60.0) -> list[Path]:
    """Remove temp photo files left by a crash; returns what was removed.

    Only files older than `older_than_s` go, so a second process opening the store (the
    `history` command while the service runs) cannot delete a photo being written now.
    """
    root = Path(data_dir) / PHOTOS_DIR
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        removed_here = False
        for name in filenames:
            if not is_temp_name(name):
                continue
            path = Path(dirpath, name)
            try:
                if path.lstat().st_mtime > cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
            removed_here = True
        if removed_here:
            fsync_dir(Path(dirpath))
    return removed
