"""The wire format between a device and the collector, shared by both ends (standard library only).

A device POSTs {"schema": 1, "records": [...]} to API_PATH with its bearer token. Each record is
a row of the device's diagnosis log (minus device-local bookkeeping such as photo_path) plus an
optional base64 JPEG thumbnail and/or full photo. The collector answers 200 with one result per
record, in request order: {"results": [{"id": ..., "status": "stored" | "duplicate"}], ...}, and
stores a batch entirely or not at all, so a device marks a row synced only once it holds that
acknowledgement.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from leaf_wire.columns import DIAGNOSIS_COLUMNS, PHOTO_COLUMNS

SCHEMA_VERSION = 1
API_PATH = "/api/v1/diagnoses"
WHOAMI_PATH = "/api/v1/whoami"
HEALTH_PATH = "/healthz"

# Full photos travel on their own, after their record, one per request: PUT PHOTOS_PATH + sha256
# (lower-case hex) with the JPEG as the body (Content-Type: image/jpeg) and the device's token.
# 201 {"status": "stored"} or 200 {"status": "duplicate"} (base has these bytes already, from any
# device): either way the device marks the photo sent, so an upload cut off anywhere is simply
# sent again. 404: no record of this device names that photo (send the record first). 400: the
# body is not a JPEG or its sha256 is not the one in the path. 413: larger than the collector
# takes. 507 Insufficient Storage: the device's photo quota at base is full (try again another
# day; body {"error", "quota_bytes", "used_bytes"}). HEAD on the same path: 200 when base has it.
PHOTOS_PATH = "/api/v1/photos/"

MAX_RECORDS_PER_BATCH = 1000
THUMBNAIL_MAX_BYTES = 256 * 1024
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024

STORED = "stored"
DUPLICATE = "duplicate"

# Row columns a device sends as they are; the store's other columns stay on the device.
RECORD_COLUMNS = (*DIAGNOSIS_COLUMNS, *PHOTO_COLUMNS)
THUMBNAIL_FIELD = "thumbnail_jpeg_b64"
PHOTO_FIELD = "photo_jpeg_b64"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_from_row(
    row: dict[str, Any], *, thumbnail: bytes | None = None, photo: bytes | None = None
) -> dict[str, Any]:
    """A store row as the collector wants it; `photo` must be the bytes whose sha256 the row holds."""
    record = {column: row.get(column) for column in RECORD_COLUMNS}
    if thumbnail is not None:
        record[THUMBNAIL_FIELD] = base64.b64encode(thumbnail).decode("ascii")
    if photo is not None:
        record[PHOTO_FIELD] = base64.b64encode(photo).decode("ascii")
    return record


def batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "records": records}
