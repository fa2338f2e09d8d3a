"""Reading a file named by a person or a config: regular files only, never more than a cap.

`open()` on a FIFO waits for a writer forever, and a link to /dev/zero reads until memory runs
out; so the file is opened non-blocking, checked with fstat on the open descriptor (no race with
a rename), and read to at most `max_bytes` + 1.
"""

from __future__ import annotations

import os
import stat

from .errors import ApplianceError

_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class FileRefused(ApplianceError):
    """The file is not a regular file, or larger than allowed; the message says which (without the path)."""


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; FileRefused or OSError otherwise."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))  # callers word a folder their own way
        if not stat.S_ISREG(mode):
            raise FileRefused(f"is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a file")
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise FileRefused(f"file too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB)")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:  # it grew while being read
            raise FileRefused(f"file too large (more than {max_bytes / 1e6:.1f} MB)")
        return b"".join(chunks)
    finally:
        os.close(fd)
