"""A consistent copy of the live diagnosis database, taken with SQLite's backup API (the export writes it to the stick).

Copying the file would tear a database that the service is writing (WAL mode keeps recent
commits in a side file); the backup API copies a consistent state and restarts by itself if
another connection commits meanwhile. The copy is built in memory (the SD card may be the
thing that is full) and written out as an ordinary rollback-journal database, so it opens
read-only from a stick without needing -wal/-shm files beside it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.errors import StoreError
from leaf_wire.columns import JSON_COLUMNS

PAGES_PER_STEP = 256
_HEADER_WRITE_VERSION = 18  # bytes 18-19: 1 = rollback journal, 2 = WAL


def take_snapshot(db_path: Path, on_step: Callable[[], None] | None = None) -> tuple[bytes, list[dict[str, Any]]]:
    """(database image, its diagnoses oldest first); the rows come from the image, so they match it exactly."""
    try:
        source = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=rw", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"Cannot open the diagnosis database {db_path}: {exc}.") from exc
    copy = sqlite3.connect(":memory:")
    try:
        source.execute("PRAGMA query_only = 1")
        source.backup(copy, pages=PAGES_PER_STEP, progress=(lambda *_: on_step()) if on_step else None)
        image = bytearray(copy.serialize())
        cursor = copy.execute("SELECT * FROM diagnoses ORDER BY rowid")
        names = [column[0] for column in cursor.description]
        rows = [_decode(dict(zip(names, values, strict=True))) for values in cursor]
    except sqlite3.Error as exc:
        raise StoreError(
            f"Could not copy the diagnosis database {db_path}: {exc}; "
            f"see docs/durability.md to check and recover the database."
        ) from exc
    finally:
        copy.close()
        source.close()
    if len(image) >= 20:
        image[_HEADER_WRITE_VERSION] = image[_HEADER_WRITE_VERSION + 1] = 1
    return bytes(image), rows


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for column in JSON_COLUMNS:
        if isinstance(row.get(column), str):
            with contextlib.suppress(ValueError):  # else kept as text: the JSONL shows what is stored
                row[column] = json.loads(row[column])
    return row
