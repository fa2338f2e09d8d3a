"""Numbered schema migrations, each applied once, in order, in its own transaction.

Appliances in the field are updated one by one, so a database can be several schema
versions behind the code (migrate it) or, after a rollback of the software, ahead of it
(refuse: older code must not write rows that newer code would misread).
PRAGMA user_version mirrors the latest applied number so a version check reads one header
field; `schema_migrations` keeps the human-readable history with when each step ran.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from sqlite_utils import Database

from appliance.errors import StoreSchemaError

MigrationStep = str | Callable[[Database], None]


class Migration(NamedTuple):
    number: int
    description: str
    step: MigrationStep  # SQL text (one or more statements) or a function given the Database
    # True for a step that rebuilds a table other tables reference: foreign keys are switched off
    # around its transaction (SQLite ignores the pragma inside one) and checked before it commits.
    rebuilds_table: bool = False


def utc_timestamp(moment: datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and 'Z': sorts as text in time order, parses with fromisoformat."""
    moment = datetime.now(UTC) if moment is None else moment
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone; pass an aware datetime (e.g. UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DIAGNOSES_V1 = """
CREATE TABLE diagnoses (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL,
    device_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('diagnosis', 'retake')),
    reason TEXT,
    top1_slug TEXT,
    top1_probability REAL,
    crop TEXT NOT NULL DEFAULT '',
    condition TEXT NOT NULL DEFAULT '',
    topk TEXT NOT NULL,
    quality TEXT NOT NULL,
    latency TEXT NOT NULL,
    photo_path TEXT NOT NULL,
    photo_sha256 TEXT NOT NULL,
    photo_bytes INTEGER NOT NULL
);
CREATE INDEX idx_diagnoses_created_at ON diagnoses (created_at);
"""


def _export_bookkeeping(db: Database) -> None:
    """Columns and ledger for USB export and later sync; partial indexes keep 'what is left' queries cheap."""
    diagnoses = db.table("diagnoses")
    diagnoses.add_column("exported_at", str)
    diagnoses.add_column("synced_at", str)
    db.execute(
        """
        CREATE TABLE export_ledger (
            stick_id TEXT NOT NULL,
            diagnosis_id TEXT NOT NULL REFERENCES diagnoses (id) ON DELETE CASCADE,
            exported_at TEXT NOT NULL,
            export_dir TEXT NOT NULL,
            PRIMARY KEY (stick_id, diagnosis_id)
        )
        """
    )
    db.execute("CREATE INDEX idx_export_ledger_diagnosis ON export_ledger (diagnosis_id)")
    db.execute("CREATE INDEX idx_diagnoses_unexported ON diagnoses (created_at) WHERE exported_at IS NULL")
    db.execute("CREATE INDEX idx_diagnoses_unsynced ON diagnoses (created_at) WHERE synced_at IS NULL")


# The diagnoses table as migration 4 leaves it: 'unknown' beside 'diagnosis' and 'retake', and
# the crops the diagnosis chose among (a JSON list of crop keys; [] = every crop the model knew).
_DIAGNOSES_V4 = """
CREATE TABLE diagnoses_v4 (
    id TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL,
    device_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('diagnosis', 'retake', 'unknown')),
    reason TEXT,
    top1_slug TEXT,
    top1_probability REAL,
    crop TEXT NOT NULL DEFAULT '',
    condition TEXT NOT NULL DEFAULT '',
    crops TEXT NOT NULL DEFAULT '[]',
    topk TEXT NOT NULL,
    quality TEXT NOT NULL,
    latency TEXT NOT NULL,
    photo_path TEXT NOT NULL,
    photo_sha256 TEXT NOT NULL,
    photo_bytes INTEGER NOT NULL,
    exported_at TEXT,
    synced_at TEXT,
    photo_pruned_at TEXT
)
"""


def _unknown_verdict_and_crops(db: Database) -> None:
    """SQLite cannot change a CHECK constraint in place: rebuild the table (sqlite.org/lang_altertable.html,
    "other kinds of table schema changes"), keeping every row, its rowid (the export's order) and the
    indexes. export_ledger refers to diagnoses by name, so it points at the new table after the rename."""
    conn = db.conn
    extras = [
        sql
        for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'diagnoses' AND type IN ('index', 'trigger') "
            "AND sql IS NOT NULL ORDER BY type, name"
        )
    ]
    old = [row[1] for row in conn.execute("PRAGMA table_info(diagnoses)")]
    conn.execute(_DIAGNOSES_V4)
    new = {row[1] for row in conn.execute("PRAGMA table_info(diagnoses_v4)")}
    missing = [c for c in old if c not in new]
    if missing:
        raise ValueError(f"the diagnoses table has columns this migration does not know: {', '.join(missing)}")
    columns = ", ".join(f'"{c}"' for c in old)
    conn.execute(f"INSERT INTO diagnoses_v4 (rowid, {columns}) SELECT rowid, {columns} FROM diagnoses")
    conn.execute("DROP TABLE diagnoses")
    conn.execute("ALTER TABLE diagnoses_v4 RENAME TO diagnoses")
    for sql in extras:
        conn.execute(sql)


# Issue 13: the full photos base wants travel on their own after their record. One row per record
# once its photo is settled: sent (detail = the collector's "stored" / "duplicate") or skipped
# (detail = why: not wanted, missing, damaged, too large, refused). No row = not looked at yet, so
# a pass cut off anywhere leaves the photo to be sent again. `bytes` is what went up, for the
# daily budget; the partial index keeps "bytes sent today" cheap.
_PHOTO_UPLOADS = """
CREATE TABLE photo_uploads (
    diagnosis_id TEXT PRIMARY KEY NOT NULL REFERENCES diagnoses (id) ON DELETE CASCADE,
    outcome TEXT NOT NULL CHECK (outcome IN ('sent', 'skipped')),
    detail TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    at TEXT NOT NULL
);
CREATE INDEX idx_photo_uploads_sent_at ON photo_uploads (at) WHERE outcome = 'sent';
"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "diagnoses table with photo reference and created_at index", _DIAGNOSES_V1),
    Migration(2, "export/sync bookkeeping: exported_at, synced_at, export_ledger", _export_bookkeeping),
    Migration(
        3,
        "photo_pruned_at: when an exported photo was deleted to free space",
        "ALTER TABLE diagnoses ADD COLUMN photo_pruned_at TEXT;",
    ),
    Migration(
        4,
        "verdict 'unknown' (other plant, unknown condition) and crops: the crops a diagnosis chose among",
        _unknown_verdict_and_crops,
        rebuilds_table=True,
    ),
    Migration(5, "photo_uploads: each record's full photo sent to base or skipped, and why", _PHOTO_UPLOADS),
)

_LEDGER_SQL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].number if migrations else 0


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements without executescript(), which would COMMIT our transaction."""
    statements: list[str] = []
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]!r}")
    return statements


def _check_sequence(migrations: Sequence[Migration]) -> None:
    numbers = [m.number for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3... in order; got {numbers}")


def refuse_if_newer(version: int, latest: int, where: str) -> None:
    if version > latest:
        raise StoreSchemaError(
            f"The diagnosis database {where} has schema version {version}, but this software only knows "
            f"versions up to {latest}: it was written by a newer release. Nothing was changed. Install that "
            f"newer release (or later) to use this database, or point the appliance at a different database file."
        )


def apply_migrations(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Bring the database up to the latest schema; returns the numbers applied (empty when already current).

    The connection must be in autocommit mode (isolation_level=None). Each step runs under
    BEGIN IMMEDIATE and re-reads the version inside it, so two processes opening the same
    file at once apply every step exactly once.
    """
    _check_sequence(migrations)
    latest = latest_version(migrations)
    where = _database_name(conn)
    refuse_if_newer(schema_version(conn), latest, where)
    db = Database(conn, execute_plugins=False)
    applied: list[int] = []
    for migration in migrations:
        if schema_version(conn) >= migration.number:
            continue
        foreign_keys = int(conn.execute("PRAGMA foreign_keys").fetchone()[0])
        if migration.rebuilds_table:
            # Else DROP TABLE would cascade-delete the export ledger's rows (ON DELETE CASCADE).
            conn.execute("PRAGMA foreign_keys = OFF")
        try:
            if _apply_one(conn, db, migration, latest, where):
                applied.append(migration.number)
        finally:
            if migration.rebuilds_table and foreign_keys:
                conn.execute("PRAGMA foreign_keys = ON")
    return applied


def _apply_one(conn: sqlite3.Connection, db: Database, migration: Migration, latest: int, where: str) -> bool:
    """One migration under BEGIN IMMEDIATE; False when another process applied it first."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        refuse_if_newer(current, latest, where)
        if current >= migration.number:
            conn.execute("ROLLBACK")
            return False
        if current != migration.number - 1:
            raise StoreSchemaError(
                f"The diagnosis database {where} is at schema version {current}, so migration "
                f"{migration.number} cannot be applied next. Nothing was changed."
            )
        _run_step(db, migration.step)
        if migration.rebuilds_table:
            violations = conn.execute("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise StoreSchemaError(
                    f"Migration {migration.number} ({migration.description}) of the diagnosis database {where} "
                    f"would leave {len(violations)} broken reference(s) (first in table {violations[0][0]}). "
                    f"It was rolled back; the database stays at schema version {migration.number - 1}."
                )
        conn.execute(_LEDGER_SQL)
        db.table("schema_migrations").insert(
            {"version": migration.number, "description": migration.description, "applied_at": utc_timestamp()}
        )
        conn.execute(f"PRAGMA user_version = {int(migration.number)}")
        conn.execute("COMMIT")
    except StoreSchemaError:
        _rollback(conn)
        raise
    except Exception as exc:
        _rollback(conn)
        if isinstance(exc, sqlite3.DatabaseError) and is_corruption(exc):
            raise
        raise StoreSchemaError(
            f"Migration {migration.number} ({migration.description}) of the diagnosis database {where} failed: "
            f"{exc}. It was rolled back; the database stays at schema version {migration.number - 1}. "
            f"Report this with the database file attached."
        ) from exc
    except BaseException:
        _rollback(conn)
        raise
    return True


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _run_step(db: Database, step: MigrationStep) -> None:
    if callable(step):
        step(db)
        return
    for statement in split_statements(step):
        db.conn.execute(statement)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _database_name(conn: sqlite3.Connection) -> str:
    for _seq, name, path in conn.execute("PRAGMA database_list"):
        if name == "main":
            return path or "(in memory)"
    return "(unknown)"
