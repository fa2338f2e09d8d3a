"""Where base keeps full field photos: one small interface, a folder on disk by default.

Photos are named by the sha256 of their bytes, so the same photo sent twice (or by two
devices) is kept once, and a reader can check what it got. PostgreSQL holds the rows that say
who sent which photo (`field_photos`); the bytes stay out of the database, where a few hundred
thousand 1 MB JPEGs would bloat backups and vacuum. Object storage fits behind the same three
methods.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"[0-9a-f]{64}")


class PhotoStoreError(Exception):
    """The photo store cannot keep or give back a photo (disk full, damaged file)."""


class PhotoStore(Protocol):
    def has(self, sha256: str) -> bool: ...

    def put(self, sha256: str, data: bytes) -> bool:
        """Keep `data` under its checksum; False when it was already kept (nothing written)."""
        ...

    def get(self, sha256: str) -> bytes | None: ...


def check_sha256(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise ValueError("a photo is named by 64 lower-case hex digits")
    return sha256


class DiskPhotoStore:
    """Files at ROOT/ab/cd/<sha256>.jpg, written to a temporary name, fsynced, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.jpg"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, sha256: str, data: bytes) -> bool:
        target = self.path(sha256)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("the photo's bytes do not match its sha256")
        if target.is_file():
            return False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".jpg")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            fsync_dir(target.parent)
        except OSError as exc:
            raise PhotoStoreError(f"cannot keep photo {sha256[:12]}… in {self.root}: {exc}") from exc
        return True

    def get(self, sha256: str) -> bytes | None:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PhotoStoreError(f"cannot read photo {sha256[:12]}… from {self.root}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise PhotoStoreError(f"photo {sha256[:12]}… in {self.root} is damaged (its checksum differs)")
        return data


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive a power cut (the folder's entry, not only the file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
