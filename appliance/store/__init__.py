"""The diagnosis log: SQLite rows plus durable photo files (see sqlite_store for thread use)."""

from __future__ import annotations

from appliance.errors import StoreCorruptError, StoreError, StoreSchemaError, StoreWriteError
from appliance.store.migrations import MIGRATIONS, Migration, apply_migrations
from appliance.store.photos import sweep_temp_files, write_photo_durably
from appliance.store.sqlite_store import SqliteStore, StoredRecord

__all__ = [
    "MIGRATIONS",
    "Migration",
    "SqliteStore",
    "StoreCorruptError",
    "StoreError",
    "StoreSchemaError",
    "StoreWriteError",
    "StoredRecord",
    "apply_migrations",
    "sweep_temp_files",
    "write_photo_durably",
]
