"""Free space on the SD card by deleting exported photos: the store's own rows and files, so the store's SQL.

Only a photo whose diagnosis has been exported (written to a stick and read back there) may be
deleted, oldest first, those base already holds (or will never ask for) before those still
waiting to be sent, and the row keeps a note of it (photo_pruned_at) so an export or the
history can say "pruned" instead of "missing". The row itself is never deleted. The row is
marked before the file is removed: a power cut in between leaves a marked photo still on
disk, which the next prune removes; never an unmarked photo that has vanished. When to prune
is the storage rule's business (appliance.export.policy.make_room).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.errors import StoreError
from appliance.store.migrations import utc_timestamp
from appliance.store.photos import fsync_dir, resolve_inside
from appliance.store.sqlite_store import connect

PHOTO_PRUNED_COLUMN = "photo_pruned_at"  # added by store migration 3
_BATCH = 200
# 1 while base has not settled the full photo (neither sent nor skipped): such photos go last,
# since the agronomist may still need them (store migration 5).
_WAITING_FOR_BASE = "NOT EXISTS (SELECT 1 FROM photo_uploads u WHERE u.diagnosis_id = diagnoses.id)"


@dataclass(frozen=True)
class PruneReport:
    pruned: int  # photos deleted in this call
    freed_bytes: int
    free_bytes: int  # free space afterwards
    keep_free_bytes: int

    @property
    def reached(self) -> bool:
        return self.free_bytes >= self.keep_free_bytes


def prune_exported_photos(store: Any, keep_free_bytes: int, *, now: datetime | None = None) -> PruneReport:
    """Delete exported photos, oldest first, until `keep_free_bytes` are free or none is left to delete.

    Unexported photos are never touched; photos waiting to be sent to base go last; each pruned
    row keeps when (photo_pruned_at).
    """
    free = store.free_bytes()
    if free >= keep_free_bytes:
        return PruneReport(0, 0, free, keep_free_bytes)
    stamp = utc_timestamp(now or datetime.now(UTC))
    data_dir = Path(store.data_dir)
    pruned = freed = 0
    conn = connect(store.db_path)
    try:
        _finish_interrupted(conn, data_dir)
        free = store.free_bytes()
        while free < keep_free_bytes:
            batch = _mark_batch(conn, data_dir, keep_free_bytes - free, stamp)
            if not batch:
                break
            freed += _delete(data_dir, batch)
            pruned += len(batch)
            free = store.free_bytes()
    except sqlite3.Error as exc:
        raise StoreError(
            f"Could not record pruned photos in {store.db_path}: {exc}. Unexported photos are untouched."
        ) from exc
    finally:
        conn.close()
    return PruneReport(pruned, freed, free, keep_free_bytes)


def _mark_batch(conn: sqlite3.Connection, data_dir: Path, wanted: int, stamp: str) -> list[str]:
    """Mark (and commit) the oldest exported photos that together free about `wanted` bytes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            f"SELECT id, photo_path FROM diagnoses WHERE exported_at IS NOT NULL AND {PHOTO_PRUNED_COLUMN} IS NULL "
            f"ORDER BY {_WAITING_FOR_BASE}, rowid LIMIT {_BATCH}"
        ).fetchall()
        chosen: list[tuple[str, str]] = []
        total = 0
        for rid, rel in rows:
            chosen.append((rid, rel))
            total += _size(data_dir, rel)
            if total >= wanted:
                break
        conn.executemany(
            f"UPDATE diagnoses SET {PHOTO_PRUNED_COLUMN} = ? WHERE id = ? AND exported_at IS NOT NULL",
            [(stamp, rid) for rid, _ in chosen],
        )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return [rel for _, rel in chosen]


def _finish_interrupted(conn: sqlite3.Connection, data_dir: Path) -> None:
    """Photos marked pruned whose file is still there: a power cut between marking and deleting."""
    leftovers = [
        rel
        for (rel,) in conn.execute(f"SELECT photo_path FROM diagnoses WHERE {PHOTO_PRUNED_COLUMN} IS NOT NULL")
        if _exists(data_dir, rel)
    ]
    _delete(data_dir, leftovers)


def _size(data_dir: Path, rel: str) -> int:
    try:
        return os.stat(resolve_inside(data_dir, rel), follow_symlinks=False).st_size
    except (OSError, ValueError):
        return 0


def _exists(data_dir: Path, rel: str) -> bool:
    try:
        return os.path.lexists(resolve_inside(data_dir, rel))
    except ValueError:
        return False


def _delete(data_dir: Path, rels: list[str]) -> int:
    freed = 0
    folders: set[Path] = set()
    for rel in rels:
        try:
            path = resolve_inside(data_dir, rel)
            size = os.stat(path, follow_symlinks=False).st_size
            path.unlink()
        except (OSError, ValueError):
            continue
        freed += size
        folders.add(path.parent)
    for folder in folders:
        with contextlib.suppress(OSError):
            fsync_dir(folder)
    return freed
