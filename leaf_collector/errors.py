"""The collector's one exception root: `leaf-collector` prints any CollectorFailure as one line and exits 1."""

from __future__ import annotations


class CollectorFailure(Exception):
    """Something the person running the collector can fix; the message says what."""
