"""The one error an export raises: its message says what went wrong and what to do, fit for the display."""

from __future__ import annotations

import errno

from appliance.errors import ExportError

NOTHING_MARKED = "Nothing was marked as exported"


_GONE = {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EIO, errno.ESTALE, errno.EBADF, errno.ENOTCONN}


def stick_failure(exc: OSError, doing: str) -> ExportError:
    """Word an OSError from the stick as what happened to the stick, not as a stack trace."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code == errno.ENOSPC or code == errno.EDQUOT:
        return ExportError(
            f"The USB stick is full ({doing}). {NOTHING_MARKED}; free space on the stick or use a bigger one, "
            f"then export again."
        )
    if code == errno.EROFS:
        return ExportError(
            f"The USB stick became read-only while {doing}: its write-protect switch may be on, or it found errors "
            f"and protected itself (check it on a computer). {NOTHING_MARKED}; export again with a working stick."
        )
    if code in _GONE:
        return ExportError(
            f"The USB stick was removed or stopped answering while {doing} ({reason}). {NOTHING_MARKED}; "
            f"plug it in again and export again."
        )
    if code in (errno.EACCES, errno.EPERM):
        return ExportError(
            f"No permission to write on the USB stick while {doing} ({reason}). {NOTHING_MARKED}; the stick "
            f"must be mounted writable for the appliance's user."
        )
    if code == errno.ELOOP:
        return ExportError(
            f"A symbolic link is in the way while {doing}; the export never follows links on a stick. "
            f"{NOTHING_MARKED}; remove the link or use another stick."
        )
    if code in (errno.EINVAL, errno.ENAMETOOLONG):
        return ExportError(
            f"The USB stick's file system refused a file name while {doing} ({reason}). {NOTHING_MARKED}; "
            f"format the stick as FAT32 or exFAT and export again."
        )
    return ExportError(f"Writing to the USB stick failed while {doing} ({reason}). {NOTHING_MARKED}; try again.")
