"""The small JPEG sent with each record so the agronomist's page can show the leaf."""

from __future__ import annotations

import io
import logging

log = logging.getLogger("appliance.sync")

THUMBNAIL_SIDE = 160  # pixels, longest side: enough to recognise a leaf on the agronomist's page
THUMBNAIL_QUALITY = 70


def make_thumbnail(jpeg: bytes, side: int = THUMBNAIL_SIDE) -> bytes | None:
    """A small JPEG of the photo, or None when it cannot be decoded (the record is sent without one)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            image.draft("RGB", (side, side))  # JPEG decodes at 1/2..1/8 scale: fast on a Pi
            small = image.convert("RGB")
            small.thumbnail((side, side))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        log.warning("cannot make a thumbnail: %s", exc)
        return None
