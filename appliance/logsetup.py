"""Where log records go: the systemd journal under systemd, a concise stderr line otherwise.

In the journal each record keeps its priority and the identifier ``leaf-appliance``, so a
technician can read it with ``journalctl -t leaf-appliance -p warning``. Timestamps are added
by journald there, and by the stderr format everywhere else.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

SYSLOG_IDENTIFIER = "leaf-appliance"
STDERR_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STDERR_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_MARK = "_leaf_appliance_handler"  # tags the handler this module installed, so a second call replaces it


def stderr_is_journal(stream: TextIO | None = None) -> bool:
    """Whether stderr is connected to the journal, as systemd documents for $JOURNAL_STREAM.

    The variable holds "device:inode" of the stream systemd connected; comparing it with
    stderr's own avoids logging to the journal from a child whose stderr was redirected.
    """
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        stat = os.fstat((stream or sys.stderr).fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (ValueError, OSError, AttributeError):
        return False


def _journal_handler(stream: TextIO) -> logging.Handler | None:
    if not stderr_is_journal(stream):
        return None
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)


def setup_logging(verbose: bool = False, *, stream: TextIO | None = None) -> logging.Handler:
    """Configures the root logger, replacing what an earlier call installed; returns the handler.

    ``stream`` is where the process's stderr is (default: sys.stderr).
    """
    stream = stream or sys.stderr
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()

    handler = _journal_handler(stream)
    if handler is None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(STDERR_FORMAT, STDERR_DATE_FORMAT))
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Third-party debug chatter drowns the appliance's own even in verbose mode.
    for noisy in ("PIL", "picamera2", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    logging.captureWarnings(True)
    return handler
