"""Directories held open by descriptor, so nothing planted on a stick can redirect a write.

A USB stick is a stranger's file system: a symbolic link at leaf-appliance/ or at the device
folder could point a path-based write anywhere on the Pi. Every name here is opened relative
to an already-open directory with O_NOFOLLOW, so the export never leaves the folders it
created or checked. Files are written under a temporary name, fsynced, renamed and the
directory fsynced; a read-back first asks the kernel to drop its cached copy so it reads the
stick, not the page cache.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from appliance.errors import ExportError

CHUNK = 1 << 20
SYNC_EVERY = 4 << 20  # flush big files in steps, so progress (and the watchdog kick) keeps coming
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | _CLOEXEC
_TEMP_PREFIX = "."
_TEMP_SUFFIX = ".tmp"
# Some FUSE file systems (exFAT, NTFS drivers) cannot fsync a directory; their data is still written.
_UNSUPPORTED_SYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}

OnBytes = Callable[[int], None]


def check_name(name: str) -> str:
    """A single path component that cannot climb out of its directory."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a plain file name")
    return name


def _open_dir(name: str, dir_fd: int) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def _is_dir(name: str, dir_fd: int) -> bool:
    return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)


def _free_name(dir_fd: int) -> str:
    while True:
        name = f".rm-{secrets.token_hex(6)}"
        try:
            os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return name


def is_temp_name(name: str) -> bool:
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


def drop_cache(fd: int) -> None:
    """Ask the kernel to forget its cached pages of this file, so the next read comes from the device."""
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def fsync_fd(fd: int, *, directory: bool) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if not (directory and exc.errno in _UNSUPPORTED_SYNC):
            raise


class Folder:
    """An open directory; children are reached by name only, never through a symbolic link."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path  # for messages only: never used to open anything below the root

    @classmethod
    def open_root(cls, path: Path) -> Folder:
        """The export target itself (a mount point or a chosen folder) is the one path we resolve."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        except FileNotFoundError:
            raise ExportError(
                f"{path} does not exist: the USB stick is not mounted there (plug it in again)."
            ) from None
        except NotADirectoryError:
            raise ExportError(f"{path} is a file, not a folder; give the folder where the stick is mounted.") from None
        except OSError as exc:
            raise ExportError(f"Cannot open {path}: {exc.strerror or exc}.") from None
        return cls(fd, path)

    def kind(self, name: str) -> str | None:
        """'dir', 'file', 'link', 'other', or None when absent; a link is reported, not followed."""
        try:
            st = os.stat(check_name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return "link"
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        if stat.S_ISREG(st.st_mode):
            return "file"
        return "other"

    def child(self, name: str, *, create: bool) -> Folder:
        """Open (and with create, make) a sub-folder; refuses links and non-folders with a clear message."""
        check_name(name)
        where = self.path / name
        found = self.kind(name)
        if found is None and create:
            try:
                os.mkdir(name, 0o755, dir_fd=self.fd)
            except FileExistsError:
                pass
            else:
                self.sync()
            found = self.kind(name)
        if found == "link":
            raise ExportError(
                f"{where} is a symbolic link, not a folder; the export never follows links on a stick. "
                f"Remove it (or use another stick) and export again."
            )
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "No such folder", str(where))
        if found != "dir":
            raise ExportError(
                f"{where} is a file, not a folder; the export needs that name for its folder. "
                f"Move it away (or use another stick) and export again."
            )
        fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)  # O_NOFOLLOW: a link swapped in since the check fails here
        return Folder(fd, where)

    def entries(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def sync(self) -> None:
        fsync_fd(self.fd, directory=True)

    def statvfs(self) -> os.statvfs_result:
        return os.fstatvfs(self.fd)

    def identity(self) -> tuple[int, int]:
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    def write_file(
        self, name: str, chunks: Iterable[bytes], on_bytes: OnBytes | None = None, *, replace: bool = False
    ) -> tuple[str, int]:
        """Write durably under `name`; returns (sha256 hex, size). Only `replace` may swap out an existing file."""
        check_name(name)
        found = self.kind(name)
        if found is not None and not (replace and found == "file"):
            raise FileExistsError(errno.EEXIST, "already exists", str(self.path / name))
        temp = f"{_TEMP_PREFIX}{name}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
        fd = os.open(temp, flags, 0o644, dir_fd=self.fd)
        digest, size = hashlib.sha256(), 0
        try:
            try:
                unsynced = 0
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    digest.update(chunk)
                    size += len(chunk)
                    unsynced += len(chunk)
                    if unsynced >= SYNC_EVERY:  # a slow stick: no single fsync may outlast the watchdog
                        os.fdatasync(fd)
                        unsynced = 0
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                os.fsync(fd)
                drop_cache(fd)
            finally:
                os.close(fd)
            os.rename(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self.fd)
            raise
        return digest.hexdigest(), size

    def write_bytes(self, name: str, data: bytes, on_bytes: OnBytes | None = None) -> tuple[str, int]:
        return self.write_file(name, _slices(data), on_bytes)

    def replace_file(self, name: str, data: bytes) -> None:
        """Atomically swap in new contents for a small bookkeeping file (ledger, stick id)."""
        if self.kind(check_name(name)) not in (None, "file"):
            raise ExportError(f"{self.path / name} is not a plain file; move it away and export again.")
        self.write_file(name, _slices(data), replace=True)
        self.sync()

    def hash_file(self, name: str, on_bytes: OnBytes | None = None) -> tuple[str, int]:
        """(sha256 hex, size) of a file as read back from the device."""
        fd = os.open(check_name(name), os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        digest, size = hashlib.sha256(), 0
        try:
            drop_cache(fd)
            while block := os.read(fd, CHUNK):
                digest.update(block)
                size += len(block)
                if on_bytes is not None:
                    on_bytes(len(block))
        finally:
            os.close(fd)
        return digest.hexdigest(), size

    def read_small(self, name: str, limit: int = 16 << 20) -> bytes | None:
        """A small bookkeeping file's bytes, None when absent; a link or folder there is refused."""
        found = self.kind(name)
        if found is None:
            return None
        if found != "file":
            raise ExportError(f"{self.path / name} is not a plain file; move it away and export again.")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        try:
            data = b""
            while len(data) <= limit and (block := os.read(fd, CHUNK)):
                data += block
        finally:
            os.close(fd)
        if len(data) > limit:
            raise ExportError(f"{self.path / name} is larger than {limit // 2**20} MB; it is not ours.")
        return data

    def rename(self, old: str, new: str) -> None:
        """Rename within this folder, refusing to replace anything already called `new`."""
        if self.kind(check_name(new)) is not None:
            raise FileExistsError(errno.EEXIST, "already exists", str(self.path / new))
        os.rename(check_name(old), new, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def remove_tree(self, name: str) -> None:
        """Delete a folder we made, fd-relative all the way down (links inside are unlinked, not followed).

        No recursion, at most two folders open: each sub-folder's own folders are first moved up
        into the top one. shutil.rmtree recurses, and a crafted stick with a folder 3,000 levels deep
        stopped the export with a RecursionError.
        """
        if self.kind(name) != "dir":
            return
        top = _open_dir(check_name(name), self.fd)
        try:
            while entries := os.listdir(top):
                for entry in entries:
                    if not _is_dir(entry, top):
                        os.unlink(entry, dir_fd=top)
                        continue
                    sub = _open_dir(entry, top)
                    try:
                        for inner in os.listdir(sub):
                            if _is_dir(inner, sub):  # up one level, under a name not used in the top folder
                                os.rename(inner, _free_name(top), src_dir_fd=sub, dst_dir_fd=top)
                            else:
                                os.unlink(inner, dir_fd=sub)
                    finally:
                        os.close(sub)
                    os.rmdir(entry, dir_fd=top)
        finally:
            os.close(top)
        os.rmdir(name, dir_fd=self.fd)
        self.sync()

    def remove_file(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(check_name(name), dir_fd=self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _slices(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start : start + CHUNK])
    if not view:
        yield b""


def read_chunks(path: Path) -> Iterator[bytes]:
    """A local file (a photo on the SD card) in blocks, without following a link planted at its name."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC)
    try:
        while block := os.read(fd, CHUNK):
            yield block
    finally:
        os.close(fd)
