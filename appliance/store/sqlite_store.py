"""The diagnosis log: one SQLite file plus a tree of photos, written so a power cut loses nothing shown.

Thread use: one writer thread (the daemon's) plus any number of reader threads. Writes
(`record`, `mark_exported`, `mark_synced`) go through a single connection under a lock;
reads borrow a connection from a small pool, so in WAL mode they never wait for a
writer's fsync. Several processes (the service and an `appliance history` command) may
open the same files: SQLite's locks and busy_timeout arbitrate between them.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from appliance.errors import StoreCorruptError, StoreError, StoreWriteError
from appliance.result import Diagnosis
from appliance.store.migrations import (
    MIGRATIONS,
    apply_migrations,
    is_corruption,
    latest_version,
    refuse_if_newer,
    schema_version,
    utc_timestamp,
)
from appliance.store.photos import (
    is_jpeg,
    make_dirs_durably,
    new_photo_path,
    remove_photo,
    resolve_inside,
    sweep_temp_files,
    write_photo_durably,
)
from leaf_wire.columns import JSON_COLUMNS

BUSY_TIMEOUT_MS = 5000
TABLE = "diagnoses"
# A record at base whose full photo is neither sent nor skipped yet.
_PHOTO_UNSETTLED = (
    "synced_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM photo_uploads u WHERE u.diagnosis_id = diagnoses.id)"
)


@dataclass(frozen=True)
class StoredRecord:
    id: str
    created_at: datetime  # UTC, truncated to the milliseconds that were stored
    photo_path: str  # relative to the data dir, '/'-separated
    photo_sha256: str


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection with the durability settings every store connection must have.

    synchronous is per connection (not stored in the file), so it is set on each one.
    """
    conn = _raw_connect(db_path)
    try:
        _set_session_pragmas(conn)
        _set_wal(conn, db_path)
    except BaseException:
        conn.close()
        raise
    return conn


def count_unsynced(db_path: Path) -> int:
    """Rows not yet synced (a partial index makes this cheap), on a short-lived connection of its own.

    A function, not a method: the daemon's sync status asks it from any thread without a store.
    """
    conn = connect(db_path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {TABLE} WHERE synced_at IS NULL").fetchone()[0])
    finally:
        conn.close()


def _raw_connect(db_path: Path) -> sqlite3.Connection:
    # isolation_level=None: no hidden BEGINs; sqlite-utils' atomic() and our migrations issue their own.
    return sqlite3.connect(str(db_path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)


def _set_session_pragmas(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _set_wal(conn: sqlite3.Connection, db_path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(
            f"SQLite could not put {db_path} in WAL mode (it stayed in {mode!r} mode); "
            f"keep the data directory on a local disk such as the SD card, not a network share."
        )


def connection_settings(conn: sqlite3.Connection) -> dict[str, Any]:
    return {
        "journal_mode": str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower(),
        "synchronous": int(conn.execute("PRAGMA synchronous").fetchone()[0]),
        "foreign_keys": int(conn.execute("PRAGMA foreign_keys").fetchone()[0]),
        "busy_timeout": int(conn.execute("PRAGMA busy_timeout").fetchone()[0]),
    }


def corrupt_message(db_path: Path, detail: str) -> str:
    return (
        f"The diagnosis database {db_path} is damaged ({detail}). The file was kept untouched for recovery: "
        f"nothing was deleted or rewritten. To recover: stop the appliance service, copy {db_path.name} and any "
        f"{db_path.name}-wal / {db_path.name}-shm beside it to a safe place, then run "
        f"`sqlite3 {db_path.name} .recover | sqlite3 recovered.db` on the copy (apt install sqlite3) and put "
        f"recovered.db in its place. "
        f"To start a new, empty log instead, move {db_path.name} aside (do not delete it) and restart. "
        f"Photos in the data directory are not affected."
    )


def _inspect_existing(db_path: Path) -> None:
    """Check an existing file without writing to it: corruption and a too-new schema are refused here.

    A read-only connection is tried first, so not even a checkpoint of a leftover WAL can
    touch a damaged file; where that open is impossible (permissions) a plain one is used.
    """
    if not db_path.exists() or db_path.stat().st_size == 0:
        return
    read_only = f"{db_path.resolve().as_uri()}?mode=ro"
    try:
        findings = _probe(sqlite3.connect(read_only, uri=True, isolation_level=None), db_path)
    except sqlite3.OperationalError as exc:
        if is_corruption(exc):
            raise
        findings = _probe(_raw_connect(db_path), db_path)
    if findings:
        raise StoreCorruptError(corrupt_message(db_path, f"quick_check: {findings[0]}"), findings)


def _probe(conn: sqlite3.Connection, db_path: Path) -> list[str]:
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        refuse_if_newer(schema_version(conn), latest_version(MIGRATIONS), str(db_path))
        return _check(conn, "quick_check")
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            raise StoreCorruptError(corrupt_message(db_path, str(exc)), [str(exc)]) from exc
        raise
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, pragma: str) -> list[str]:
    rows = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    return [] if rows == ["ok"] else rows


def _dump(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars become Python numbers, NaN/inf become null (valid JSON, row still saved)."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, dict | list | tuple | str):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for column in JSON_COLUMNS:
        if isinstance(row.get(column), str):
            row[column] = json.loads(row[column])
    return row


def _milliseconds(latency: dict[str, float]) -> dict[str, float]:
    timings: dict[str, float] = {}
    for key, value in latency.items():
        try:
            timings[str(key)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"latency[{key!r}] must be a number of milliseconds, got {value!r}") from None
    return timings


def _parse_id(record_id: str) -> str:
    try:
        return str(uuid.UUID(str(record_id)))
    except ValueError:
        raise ValueError(f"record id {record_id!r} is not a UUID; leave it out and one is made") from None


class SqliteStore:
    """Diagnoses in SQLite (WAL, synchronous=FULL) with photos as files beside it.

    Safe for one writer thread plus reader threads; see the module docstring.
    """

    def __init__(self, db_path: Path, data_dir: Path, writer: Database) -> None:
        """Use `SqliteStore.open`; this only assembles an already-migrated connection."""
        self.db_path = db_path
        self.data_dir = data_dir
        self._writer = writer
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle_readers: list[Database] = []
        self._open_conns: list[sqlite3.Connection] = [writer.conn]
        self._closed = False
        self.swept_temp_files: list[Path] = []

    # ---- opening and checking -------------------------------------------------------------

    @classmethod
    def open(cls, db_path: Path, data_dir: Path) -> SqliteStore:
        """Create directories, refuse damaged or too-new files (unchanged), migrate, sweep crash leftovers."""
        db_path, data_dir = Path(db_path), Path(data_dir)
        try:
            make_dirs_durably(data_dir)
            make_dirs_durably(db_path.parent)
        except OSError as exc:
            raise StoreError(f"Cannot create the data directory {exc.filename}: {exc.strerror}.") from exc
        if db_path.is_dir():
            raise StoreError(f"The database path {db_path} is a directory; give the path of a file.")
        _inspect_existing(db_path)
        conn: sqlite3.Connection | None = None
        try:
            conn = connect(db_path)
            apply_migrations(conn, MIGRATIONS)
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            if is_corruption(exc):
                raise StoreCorruptError(corrupt_message(db_path, str(exc)), [str(exc)]) from exc
            raise StoreError(
                f"Cannot open the diagnosis database {db_path}: {exc}. Check that this user may read and write "
                f"{db_path.parent} (the service user owns it)."
            ) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        store = cls(db_path, data_dir, Database(conn, execute_plugins=False))
        store.swept_temp_files = sweep_temp_files(data_dir)
        return store

    def check_integrity(self, full: bool = True) -> None:
        """Raise StoreCorruptError (with .findings) unless the file is sound; full adds foreign_key_check."""
        try:
            with self._reader() as db:
                findings = _check(db.conn, "integrity_check" if full else "quick_check")
                if full and not findings:
                    findings = [
                        f"foreign key violation in {row[0]} rowid {row[1]}"
                        for row in db.conn.execute("PRAGMA foreign_key_check")
                    ]
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            raise StoreCorruptError(corrupt_message(self.db_path, str(exc)), [str(exc)]) from exc
        if findings:
            raise StoreCorruptError(corrupt_message(self.db_path, findings[0]), findings)

    def connection_settings(self) -> list[dict[str, Any]]:
        """Durability settings of every connection this store holds open (for checks and `doctor`)."""
        with self._pool_lock:
            conns = list(self._open_conns)
        return [connection_settings(conn) for conn in conns]

    def schema_version(self) -> int:
        with self._reader() as db:
            return schema_version(db.conn)

    # ---- writing ---------------------------------------------------------------------------

    def record(
        self,
        diagnosis: Diagnosis,
        photo_jpeg: bytes,
        *,
        device_id: str,
        latency: dict[str, float],
        created_at: datetime | None = None,
        record_id: str | None = None,
    ) -> StoredRecord:
        """Save photo then row; when this returns both are on disk and the result may be shown.

        latency["commit_ms"] is set in the caller's dict to the full photo-write + insert +
        commit time. The stored row's latency has commit_ms up to the insert: the final COMMIT's
        own fsync cannot be timed inside the transaction it ends.
        """
        self._check_open()
        if not isinstance(photo_jpeg, bytes | bytearray | memoryview) or not is_jpeg(photo_jpeg):
            raise ValueError("photo is not JPEG data (it must start with FF D8 FF); encode it with encode_jpeg()")
        if not device_id or not isinstance(device_id, str):
            raise ValueError("device_id must be a non-empty string (the appliance's configured name)")
        timings = _milliseconds(latency)
        moment = datetime.now(UTC) if created_at is None else created_at
        created = utc_timestamp(moment)  # also refuses a naive datetime
        rid = str(uuid.uuid4()) if record_id is None else _parse_id(record_id)
        photo_path = new_photo_path(moment)
        # Built before the photo is written, so a bad Diagnosis cannot leave an orphan file.
        row = self._row(diagnosis, rid, created, device_id, timings, photo_path.as_posix(), len(photo_jpeg))

        started = time.perf_counter()
        try:
            sha256 = write_photo_durably(self.data_dir, photo_path, photo_jpeg)
        except OSError as exc:
            raise StoreWriteError(
                f"Could not save the photo to {self.data_dir}: {exc.strerror or exc}. Nothing was recorded; "
                f"check free space on the SD card ({self._free_mb()}) and try again."
            ) from exc
        row["photo_sha256"] = sha256
        try:
            with self._writing_unchecked() as db:
                table = db.table(TABLE)
                table.insert(row)
                timings["commit_ms"] = (time.perf_counter() - started) * 1000.0
                table.update(rid, {"latency": _dump(timings)})
        except BaseException as exc:
            with contextlib.suppress(OSError):
                remove_photo(self.data_dir, photo_path)
            if isinstance(exc, sqlite3.IntegrityError) and self._exists(rid):
                raise StoreWriteError(f"A diagnosis with id {rid} is already stored; nothing was changed.") from exc
            if isinstance(exc, sqlite3.DatabaseError) and is_corruption(exc):
                raise StoreCorruptError(corrupt_message(self.db_path, str(exc)), [str(exc)]) from exc
            if isinstance(exc, sqlite3.Error):
                raise StoreWriteError(
                    f"Could not save the diagnosis to {self.db_path}: {exc}. The photo was not kept; "
                    f"earlier diagnoses are untouched."
                ) from exc
            raise
        latency["commit_ms"] = (time.perf_counter() - started) * 1000.0
        stored_at = datetime.fromisoformat(created)
        return StoredRecord(id=rid, created_at=stored_at, photo_path=photo_path.as_posix(), photo_sha256=sha256)

    @staticmethod
    def _row(
        diagnosis: Diagnosis,
        rid: str,
        created: str,
        device_id: str,
        timings: dict[str, float],
        photo_path: str,
        size: int,
    ) -> dict[str, Any]:
        best = diagnosis.top[0] if diagnosis.top else None
        return {
            "id": rid,
            "created_at": created,
            "device_id": device_id,
            "model_version": diagnosis.model_version,
            "model_sha256": diagnosis.model_sha256,
            "verdict": str(diagnosis.verdict.value),
            "reason": diagnosis.reason.value if diagnosis.reason is not None else None,
            "top1_slug": best.slug if best else None,
            "top1_probability": _plain(float(best.probability)) if best else None,
            "crop": diagnosis.crop,
            "condition": diagnosis.condition,
            "crops": _dump(list(diagnosis.crops)),
            "topk": _dump([{"slug": r.slug, "probability": r.probability} for r in diagnosis.top]),
            "quality": _dump(asdict(diagnosis.quality)),
            "latency": _dump(timings),
            "photo_path": photo_path,
            "photo_sha256": "",  # filled in once the photo is on disk
            "photo_bytes": size,
        }

    def mark_exported(self, ids: Iterable[str], stick_id: str, export_dir: str, when: datetime) -> int:
        """Note that these diagnoses were copied to a stick; exported_at keeps the first export's time."""
        wanted = list(dict.fromkeys(ids))
        stamp = utc_timestamp(when)
        if not wanted:
            return 0
        if not stick_id:
            raise ValueError("stick_id must be a non-empty string (the USB stick's filesystem UUID or label)")
        with self._writing() as db:
            self._require_known(db, wanted)
            db.table("export_ledger").upsert_all(
                [
                    {"stick_id": stick_id, "diagnosis_id": i, "exported_at": stamp, "export_dir": export_dir}
                    for i in wanted
                ],
                pk=("stick_id", "diagnosis_id"),
            )
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                db.execute(
                    f"UPDATE {TABLE} SET exported_at = COALESCE(exported_at, ?) WHERE id IN ({marks})",
                    [stamp, *chunk],
                )
        return len(wanted)

    def mark_synced(self, ids: Iterable[str], when: datetime) -> int:
        wanted = list(dict.fromkeys(ids))
        stamp = utc_timestamp(when)
        if not wanted:
            return 0
        with self._writing() as db:
            self._require_known(db, wanted)
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                db.execute(f"UPDATE {TABLE} SET synced_at = ? WHERE id IN ({marks})", [stamp, *chunk])
        return len(wanted)

    @staticmethod
    def _require_known(db: Database, ids: list[str]) -> None:
        known: set[str] = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            known.update(r[0] for r in db.execute(f"SELECT id FROM {TABLE} WHERE id IN ({marks})", chunk))
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(f"unknown diagnosis ids {unknown[:5]}{'...' if len(unknown) > 5 else ''}; nothing marked")

    @contextmanager
    def _writing_unchecked(self) -> Iterator[Database]:
        """One transaction on the writer connection; sqlite3 errors pass through for the caller to word."""
        with self._write_lock:
            self._check_open()
            with self._writer.atomic():
                yield self._writer

    @contextmanager
    def _writing(self) -> Iterator[Database]:
        try:
            with self._writing_unchecked() as db:
                yield db
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.DatabaseError) and is_corruption(exc):
                raise StoreCorruptError(corrupt_message(self.db_path, str(exc)), [str(exc)]) from exc
            raise StoreWriteError(f"Could not update the diagnosis database {self.db_path}: {exc}.") from exc

    # ---- reading ---------------------------------------------------------------------------

    def count(self) -> int:
        with self._reader() as db:
            return int(db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])

    def recent(self, limit: int | None = 20) -> list[dict[str, Any]]:
        """Newest first (None: all), by insertion order: a Pi without a real-time clock may have its time jump back."""
        return self._rows(None, [], "rowid DESC", limit)

    def _exists(self, record_id: str) -> bool:
        try:
            return self.get(record_id) is not None
        except (sqlite3.Error, StoreError):
            return False

    def get(self, record_id: str) -> dict[str, Any] | None:
        rows = self._rows("id = ?", [str(record_id)], None, 1)
        return rows[0] if rows else None

    def unexported(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Never exported to any stick, oldest first."""
        return self._rows("exported_at IS NULL", [], "rowid ASC", limit)

    def unsynced(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._rows("synced_at IS NULL", [], "rowid ASC", limit)

    def photo_file(self, row_or_path: dict[str, Any] | str) -> Path:
        """Absolute path of a row's photo (or of a stored relative photo path)."""
        rel = row_or_path["photo_path"] if isinstance(row_or_path, dict) else row_or_path
        return resolve_inside(self.data_dir, rel)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.data_dir).free

    def _free_mb(self) -> str:
        try:
            return f"{self.free_bytes() // 1_000_000} MB free"
        except OSError:
            return "free space unknown"

    def _rows(self, where: str | None, args: list[Any], order: str | None, limit: int | None) -> list[dict[str, Any]]:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
        with self._reader() as db:
            rows = db.table(TABLE).rows_where(where, args, order_by=order, limit=limit)
            return [_decode(row) for row in rows]

    @contextmanager
    def _reader(self) -> Iterator[Database]:
        with self._pool_lock:
            self._check_open()
            db = self._idle_readers.pop() if self._idle_readers else None
        try:
            if db is None:
                conn = connect(self.db_path)
                db = Database(conn, execute_plugins=False)
                with self._pool_lock:
                    self._open_conns.append(conn)
            yield db
        except sqlite3.DatabaseError as exc:
            if is_corruption(exc):
                raise StoreCorruptError(corrupt_message(self.db_path, str(exc)), [str(exc)]) from exc
            raise
        finally:
            if db is not None:
                self._return_reader(db)

    def _return_reader(self, db: Database) -> None:
        with self._pool_lock:
            if self._closed:
                self._forget(db.conn)
            else:
                self._idle_readers.append(db)

    # ---- full photos for base (issue 13) ----------------------------------------------------

    def photos_to_send(self, limit: int | None = None, after: str | None = None) -> list[dict[str, Any]]:
        """Records at base whose full photo is not settled, oldest first: base refuses a photo before its record.

        `after`: only those stored after this record (a pass that leaves some for later pages on past them).
        """
        if after is None:
            return self._rows(_PHOTO_UNSETTLED, [], "rowid ASC", limit)
        where = f"{_PHOTO_UNSETTLED} AND rowid > (SELECT rowid FROM {TABLE} WHERE id = ?)"
        return self._rows(where, [str(after)], "rowid ASC", limit)

    def mark_photo_sent(self, record_id: str, status: str, sent_bytes: int, when: datetime) -> None:
        """Base holds this photo (`status`: the collector's stored / duplicate); `sent_bytes` went up for it."""
        self._settle_photos([str(record_id)], "sent", status, int(sent_bytes), when)

    def mark_photos_skipped(self, ids: Iterable[str], reason: str, when: datetime) -> int:
        """These photos will not be sent (not wanted, missing, damaged, too large, refused): `reason` says which."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        if not reason:
            raise ValueError("a skipped photo needs a reason")
        self._settle_photos(wanted, "skipped", reason, 0, when)
        return len(wanted)

    def photo_bytes_sent_since(self, since: datetime) -> int:
        """Bytes of full photos sent from `since` on (the start of the UTC day, for the daily budget)."""
        with self._reader() as db:
            row = db.execute(
                "SELECT COALESCE(SUM(bytes), 0) FROM photo_uploads WHERE outcome = 'sent' AND at >= ?",
                [utc_timestamp(since)],
            ).fetchone()
            return int(row[0])

    def photo_upload(self, record_id: str) -> dict[str, Any] | None:
        """How a record's full photo was settled (outcome, detail, bytes, at), or None while it is not."""
        with self._reader() as db:
            rows = list(db.table("photo_uploads").rows_where("diagnosis_id = ?", [str(record_id)]))
            return rows[0] if rows else None

    def photo_upload_counts(self) -> dict[str, int]:
        """sent / skipped / waiting (at base, photo not settled yet): for `appliance sync` and the tests."""
        with self._reader() as db:
            counts = dict(db.execute("SELECT outcome, count(*) FROM photo_uploads GROUP BY outcome").fetchall())
            waiting = db.execute(f"SELECT count(*) FROM {TABLE} WHERE {_PHOTO_UNSETTLED}").fetchone()[0]
        return {"sent": int(counts.get("sent", 0)), "skipped": int(counts.get("skipped", 0)), "waiting": int(waiting)}

    def _settle_photos(self, ids: list[str], outcome: str, detail: str, sent_bytes: int, when: datetime) -> None:
        if not ids:
            return
        stamp = utc_timestamp(when)
        with self._writing() as db:
            self._require_known(db, ids)
            db.table("photo_uploads").upsert_all(
                [
                    {"diagnosis_id": i, "outcome": outcome, "detail": detail, "bytes": sent_bytes, "at": stamp}
                    for i in ids
                ],
                pk="diagnosis_id",
            )

    # ---- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every idle connection; one still reading closes when its read ends. Idempotent."""
        with self._write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            self._forget(self._writer.conn)
            for db in self._idle_readers:
                self._forget(db.conn)
            self._idle_readers.clear()

    def _forget(self, conn: sqlite3.Connection) -> None:
        conn.close()
        if conn in self._open_conns:
            self._open_conns.remove(conn)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The diagnosis store {self.db_path} is closed.")

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
