"""The diagnosis store on real SQLite files after real migrations."""

from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from appliance.errors import StoreCorruptError, StoreError, StoreSchemaError, StoreWriteError
from appliance.result import Diagnosis, Quality, Ranked, RetakeReason, Timings, UnknownReason, Verdict
from appliance.store import MIGRATIONS, Migration, SqliteStore, apply_migrations
from appliance.store.sqlite_store import connect
from appliance.vision.jpeg import encode_jpeg

JPEG = encode_jpeg(np.full((48, 64, 3), (40, 160, 60), dtype=np.uint8))
WHEN = datetime(2024, 5, 17, 9, 41, 7, 123456, tzinfo=UTC)


def make_diagnosis(
    *,
    verdict: Verdict = Verdict.DIAGNOSIS,
    reason: RetakeReason | None = None,
    crop: str = "Tomato",
    condition: str = "Early blight",
) -> Diagnosis:
    return Diagnosis(
        verdict=verdict,
        reason=reason,
        top=(
            Ranked("tomato_early_blight", 0.875),
            Ranked("tomato_late_blight", 0.1),
            Ranked("tomato_healthy", 0.025),
        ),
        quality=Quality(
            brightness=121.5, dark_fraction=0.01, bright_fraction=0.0, sharpness=412.25, plant_fraction=0.6
        ),
        timings=Timings(decode_ms=3.0, quality_ms=4.0, inference_ms=31.5, total_ms=40.0),
        model_version="leafnet-2024.05",
        model_sha256="ab" * 32,
        crop=crop,
        condition=condition,
    )


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "db" / "diagnoses.sqlite3", tmp_path / "data"


@pytest.fixture
def store(paths: tuple[Path, Path]):
    with SqliteStore.open(*paths) as opened:
        yield opened


def record(store: SqliteStore, **kwargs) -> object:
    diagnosis = kwargs.pop("diagnosis", None) or make_diagnosis()
    latency = kwargs.pop("latency", None) or {"capture_ms": 12.5, "quality_ms": 4.0, "inference_ms": 31.5}
    return store.record(diagnosis, JPEG, device_id="pi-07", latency=latency, **kwargs)


def photo_files(data_dir: Path) -> set[str]:
    return {p.relative_to(data_dir).as_posix() for p in (data_dir / "photos").rglob("*") if p.is_file()}


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- recording and reading back -------------------------------------------------------------


def test_recorded_diagnosis_reads_back_equal_with_json_columns(store: SqliteStore) -> None:
    latency = {"capture_ms": 12.5, "quality_ms": 4.0, "inference_ms": 31.5, "total_ms": 60.0}
    stored = store.record(make_diagnosis(), JPEG, device_id="pi-07", latency=latency, created_at=WHEN)

    row = store.get(stored.id)
    assert row is not None
    assert row["id"] == stored.id
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", stored.id)
    assert row["created_at"] == "2024-05-17T09:41:07.123Z"
    assert stored.created_at == datetime(2024, 5, 17, 9, 41, 7, 123000, tzinfo=UTC)
    assert (row["device_id"], row["model_version"], row["model_sha256"]) == ("pi-07", "leafnet-2024.05", "ab" * 32)
    assert (row["verdict"], row["reason"]) == ("diagnosis", None)
    assert (row["top1_slug"], row["top1_probability"]) == ("tomato_early_blight", 0.875)
    assert (row["crop"], row["condition"]) == ("Tomato", "Early blight")
    assert row["topk"] == [
        {"slug": "tomato_early_blight", "probability": 0.875},
        {"slug": "tomato_late_blight", "probability": 0.1},
        {"slug": "tomato_healthy", "probability": 0.025},
    ]
    assert row["quality"] == {
        "brightness": 121.5,
        "dark_fraction": 0.01,
        "bright_fraction": 0.0,
        "sharpness": 412.25,
        "plant_fraction": 0.6,
    }
    assert {k: v for k, v in row["latency"].items() if k != "commit_ms"} == {
        "capture_ms": 12.5,
        "quality_ms": 4.0,
        "inference_ms": 31.5,
        "total_ms": 60.0,
    }
    assert row["latency"]["commit_ms"] >= 0
    assert latency["commit_ms"] >= row["latency"]["commit_ms"]  # the caller's dict also has the COMMIT itself
    assert (row["exported_at"], row["synced_at"]) == (None, None)
    assert store.count() == 1


def test_photo_is_stored_under_dated_generated_name_with_recorded_sha256(store: SqliteStore) -> None:
    stored = record(store, created_at=WHEN)
    row = store.get(stored.id)

    assert re.fullmatch(r"photos/2024/05/17/[0-9a-f]{32}\.jpg", stored.photo_path)
    assert row["photo_path"] == stored.photo_path
    photo = store.photo_file(row)
    assert photo == store.data_dir / "photos" / "2024" / "05" / "17" / Path(stored.photo_path).name
    assert photo.read_bytes() == JPEG
    assert row["photo_sha256"] == stored.photo_sha256 == hashlib.sha256(JPEG).hexdigest() == file_digest(photo)
    assert row["photo_bytes"] == len(JPEG)


def test_retake_and_non_ascii_words_survive(store: SqliteStore) -> None:
    retake = make_diagnosis(
        verdict=Verdict.RETAKE, reason=RetakeReason.BLURRED, crop="Tomate café", condition="Mildiou 番茄 ✓"
    )
    stored = record(store, diagnosis=retake)
    row = store.get(stored.id)
    assert (row["verdict"], row["reason"]) == ("retake", "blurred")
    assert (row["crop"], row["condition"]) == ("Tomate café", "Mildiou 番茄 ✓")


def test_numpy_scalars_and_nan_are_stored_as_plain_json(store: SqliteStore) -> None:
    diagnosis = Diagnosis(
        verdict=Verdict.DIAGNOSIS,
        reason=None,
        top=(Ranked("apple_scab", np.float32(0.5)),),
        quality=Quality(np.float32(100.0), 0.0, 0.0, float("nan"), 0.7),
        timings=Timings(),
        model_version="m",
        model_sha256="00" * 32,
    )
    row = store.get(record(store, diagnosis=diagnosis).id)
    assert row["topk"] == [{"slug": "apple_scab", "probability": 0.5}]
    assert row["quality"]["brightness"] == 100.0
    assert row["quality"]["sharpness"] is None


def test_recent_is_newest_first_by_recording_order_even_when_the_clock_jumps_back(store: SqliteStore) -> None:
    first = record(store, created_at=WHEN)
    second = record(store, created_at=WHEN - timedelta(days=300))  # Pi without RTC booted with an old clock
    third = record(store, created_at=WHEN + timedelta(minutes=1))
    assert [r["id"] for r in store.recent()] == [third.id, second.id, first.id]
    assert [r["id"] for r in store.recent(limit=2)] == [third.id, second.id]
    assert store.count() == 3
    assert store.get("00000000-0000-4000-8000-000000000000") is None


def test_created_at_in_another_zone_is_stored_as_utc(store: SqliteStore) -> None:
    evening_in_nairobi = datetime(2024, 5, 17, 23, 30, tzinfo=timezone(timedelta(hours=3)))
    stored = record(store, created_at=evening_in_nairobi)
    assert store.get(stored.id)["created_at"] == "2024-05-17T20:30:00.000Z"
    assert stored.photo_path.startswith("photos/2024/05/17/")


def test_bad_inputs_are_refused_before_anything_is_written(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="not JPEG"):
        store.record(make_diagnosis(), b"GIF89a....", device_id="pi-07", latency={})
    with pytest.raises(ValueError, match="time zone"):
        record(store, created_at=datetime(2024, 5, 17, 9, 0))
    with pytest.raises(ValueError, match="not a UUID"):
        record(store, record_id="../../etc/passwd")
    with pytest.raises(ValueError, match="device_id"):
        store.record(make_diagnosis(), JPEG, device_id="", latency={})
    with pytest.raises(ValueError, match=r"latency\['capture_ms'\] must be a number"):
        store.record(make_diagnosis(), JPEG, device_id="pi-07", latency={"capture_ms": "fast"})
    assert store.count() == 0
    assert not (store.data_dir / "photos").exists() or photo_files(store.data_dir) == set()


# ---- durability settings ----------------------------------------------------------------------


def test_every_connection_the_store_opens_uses_wal_and_synchronous_full(store: SqliteStore) -> None:
    record(store)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def read_while_others_read() -> None:
        try:
            with store._reader():  # hold a pooled reader so the other threads must open their own
                barrier.wait(timeout=10)
                assert store.count() == 1
                barrier.wait(timeout=10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read_while_others_read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    settings = store.connection_settings()
    assert len(settings) >= 1 + 3  # the writer plus at least one reader per concurrent thread
    for each in settings:
        assert each == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}


def test_connect_sets_the_pragmas_on_a_fresh_connection(paths: tuple[Path, Path]) -> None:
    SqliteStore.open(*paths).close()
    conn = connect(paths[0])
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        conn.close()
    plain = sqlite3.connect(paths[0])  # WAL is stored in the file; synchronous is not
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        plain.close()


# ---- migrations -----------------------------------------------------------------------------


def schema_of(db_path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()


def migrations_table(db_path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(db_path)
    try:
        query = "SELECT version, description, applied_at FROM schema_migrations ORDER BY version"
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_migrations_are_recorded_once_and_opening_twice_changes_nothing(paths: tuple[Path, Path]) -> None:
    with SqliteStore.open(*paths) as store:
        assert store.schema_version() == len(MIGRATIONS) == 5
    schema_once, ledger_once = schema_of(paths[0]), migrations_table(paths[0])
    with SqliteStore.open(*paths) as store:
        assert store.schema_version() == 5
    assert schema_of(paths[0]) == schema_once
    assert migrations_table(paths[0]) == ledger_once
    assert [(v, d) for v, d, _ in ledger_once] == [(m.number, m.description) for m in MIGRATIONS]
    for _, _, applied_at in ledger_once:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", applied_at)
    names = {name for _, name, _ in schema_once}
    assert {"diagnoses", "schema_migrations", "export_ledger", "idx_diagnoses_created_at"} <= names


def test_a_v1_database_migrates_to_latest_and_keeps_its_rows(paths: tuple[Path, Path]) -> None:
    db_path, data_dir = paths
    db_path.parent.mkdir(parents=True)
    conn = connect(db_path)
    assert apply_migrations(conn, MIGRATIONS[:1]) == [1]
    conn.execute(
        "INSERT INTO diagnoses (id, created_at, device_id, model_version, model_sha256, verdict, reason, top1_slug,"
        " top1_probability, crop, condition, topk, quality, latency, photo_path, photo_sha256, photo_bytes)"
        " VALUES ('0b9f6a36-1d42-4c1e-9d8e-2f3c4b5a6d7e', '2023-01-02T03:04:05.006Z', 'pi-01', 'v0', 'cd', 'retake',"
        " 'too_dark', NULL, NULL, '', '', '[]', '{}', '{\"total_ms\": 9.5}', 'photos/2023/01/02/a.jpg', 'ef', 10)"
    )
    conn.close()
    assert migrations_table(db_path)[0][0] == 1

    with SqliteStore.open(db_path, data_dir) as store:
        assert store.schema_version() == 5
        row = store.get("0b9f6a36-1d42-4c1e-9d8e-2f3c4b5a6d7e")
        assert row["verdict"] == "retake" and row["reason"] == "too_dark"
        assert row["latency"] == {"total_ms": 9.5}
        assert row["exported_at"] is None and row["synced_at"] is None
        assert [r["id"] for r in store.unexported()] == ["0b9f6a36-1d42-4c1e-9d8e-2f3c4b5a6d7e"]
        assert row["crops"] == []  # recorded before crops could be chosen: every crop
    assert [v for v, _, _ in migrations_table(db_path)] == [1, 2, 3, 4, 5]


V3_IDS = (  # not in id order, so that keeping rowid order (the export's order) is tested
    "c0000000-0000-4000-8000-000000000003",
    "a0000000-0000-4000-8000-000000000001",
    "b0000000-0000-4000-8000-000000000002",
)


def v3_database(db_path: Path) -> None:
    """A database as the previous release (schema 3) left it: rows, an export ledger, synced and pruned marks."""
    db_path.parent.mkdir(parents=True)
    conn = connect(db_path)
    assert apply_migrations(conn, MIGRATIONS[:3]) == [1, 2, 3]
    for n, (rid, verdict, reason) in enumerate(
        zip(V3_IDS, ("diagnosis", "retake", "diagnosis"), (None, "blurred", None), strict=True)
    ):
        conn.execute(
            "INSERT INTO diagnoses (id, created_at, device_id, model_version, model_sha256, verdict, reason,"
            " top1_slug, top1_probability, crop, condition, topk, quality, latency, photo_path, photo_sha256,"
            " photo_bytes, exported_at, synced_at, photo_pruned_at)"
            " VALUES (?, ?, 'pi-01', '1.0.0', 'cd', ?, ?, 'apple__apple_scab', 0.9, 'Apple', 'Apple scab',"
            ' \'[{"slug": "apple__apple_scab", "probability": 0.9}]\', \'{"brightness": 100}\','
            " '{\"total_ms\": 9.5}', ?, ?, 10, ?, ?, ?)",
            (
                rid,
                f"2024-05-0{n + 1}T00:00:00.000Z",
                verdict,
                reason,
                f"photos/2024/05/0{n + 1}/{rid}.jpg",
                "ef" * 32,
                "2024-06-01T00:00:00.000Z" if n < 2 else None,
                "2024-06-02T00:00:00.000Z" if n == 0 else None,
                "2024-06-03T00:00:00.000Z" if n == 0 else None,
            ),
        )
        if n < 2:
            conn.execute(
                "INSERT INTO export_ledger (stick_id, diagnosis_id, exported_at, export_dir)"
                " VALUES ('STICK-1', ?, '2024-06-01T00:00:00.000Z', 'leaf-export/pi-01')",
                (rid,),
            )
    conn.close()


def test_a_v3_database_gains_unknown_and_crops_and_keeps_rows_ledger_and_order(paths: tuple[Path, Path]) -> None:
    db_path, data_dir = paths
    v3_database(db_path)
    before = sqlite3.connect(db_path)
    old_rows = before.execute("SELECT rowid, * FROM diagnoses ORDER BY rowid").fetchall()
    old_ledger = before.execute("SELECT * FROM export_ledger ORDER BY diagnosis_id").fetchall()
    before.close()

    with SqliteStore.open(db_path, data_dir) as store:
        assert store.schema_version() == 5
        assert all(s["foreign_keys"] == 1 for s in store.connection_settings())  # switched back on
        store.check_integrity(full=True)  # includes foreign_key_check
        assert [r["id"] for r in store.recent(10)] == list(reversed(V3_IDS))
        assert [r["id"] for r in store.unsynced()] == list(V3_IDS[1:])
        assert [r["id"] for r in store.unexported()] == [V3_IDS[2]]
        old = store.get(V3_IDS[0])
        assert old["crops"] == [] and old["photo_pruned_at"] == "2024-06-03T00:00:00.000Z"
        unknown = make_diagnosis(verdict=Verdict.UNKNOWN, crop="Apple", condition="Not a condition this model knows")
        unknown = replace(unknown, reason=UnknownReason.UNKNOWN_CONDITION, crops=("apple",))
        new = store.get(record(store, diagnosis=unknown).id)
        assert (new["verdict"], new["reason"], new["crops"]) == ("unknown", "unknown_condition", ["apple"])

    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        # Every old row and column as it was; crops sits beside them, [] (every crop) for old rows.
        columns = [c[1] for c in conn.execute("PRAGMA table_info(diagnoses)")]
        keep = ", ".join(["rowid", *(c for c in columns if c != "crops")])
        assert conn.execute(f"SELECT {keep} FROM diagnoses WHERE rowid <= 3 ORDER BY rowid").fetchall() == [
            tuple(r) for r in old_rows
        ]
        assert conn.execute("SELECT * FROM export_ledger ORDER BY diagnosis_id").fetchall() == old_ledger
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"idx_diagnoses_created_at", "idx_diagnoses_unexported", "idx_diagnoses_unsynced"} <= indexes
        assert "diagnoses_v4" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE diagnoses SET verdict = 'maybe' WHERE rowid = 1")
        conn.execute("DELETE FROM diagnoses WHERE id = ?", (V3_IDS[0],))  # the ledger still cascades
        left = conn.execute("SELECT count(*) FROM export_ledger WHERE diagnosis_id = ?", (V3_IDS[0],)).fetchone()
        assert left == (0,)
    finally:
        conn.close()


def test_a_failing_table_rebuild_leaves_the_v3_database_as_it_was(paths: tuple[Path, Path]) -> None:
    db_path = paths[0]
    v3_database(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute("ALTER TABLE diagnoses ADD COLUMN surprise TEXT")  # a column migration 4 does not know
    conn.close()
    before = schema_of(db_path)
    conn = connect(db_path)
    with pytest.raises(StoreSchemaError, match=r"Migration 4 .*surprise.*rolled back.*version 3"):
        apply_migrations(conn)
    assert int(conn.execute("PRAGMA foreign_keys").fetchone()[0]) == 1
    conn.close()
    assert schema_of(db_path) == before
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM export_ledger").fetchone() == (2,)
    conn.close()


def test_a_failing_migration_is_rolled_back_and_a_callable_step_runs(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.sqlite3")
    steps = [
        Migration(1, "table t", "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('a;b');"),
        Migration(2, "callable adds a column", lambda db: db.table("t").add_column("y", int)),
        Migration(3, "broken", "ALTER TABLE t ADD COLUMN z TEXT; INSERT INTO nowhere VALUES (1);"),
    ]
    with pytest.raises(StoreSchemaError, match=r"Migration 3 \(broken\).*rolled back.*version 2"):
        apply_migrations(conn, steps)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["x", "y"]
    assert conn.execute("SELECT x FROM t").fetchall() == [("a;b",)]
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [1, 2]
    assert apply_migrations(conn, steps[:2]) == []
    conn.close()


def test_a_database_from_newer_software_is_refused_and_left_unchanged(paths: tuple[Path, Path]) -> None:
    db_path, data_dir = paths
    with SqliteStore.open(db_path, data_dir) as store:
        record(store)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = file_digest(db_path)

    with pytest.raises(StoreSchemaError, match=r"schema version 7.*only knows versions up to 5.*Nothing was changed"):
        SqliteStore.open(db_path, data_dir)
    assert file_digest(db_path) == before
    conn = connect(db_path)
    with pytest.raises(StoreSchemaError):
        apply_migrations(conn)
    conn.close()
    assert file_digest(db_path) == before


# ---- damaged files ----------------------------------------------------------------------------


def filled_database(paths: tuple[Path, Path], rows: int = 1500) -> bytes:
    """A real store's file with enough rows to span many pages; returns its bytes."""
    db_path, data_dir = paths
    with SqliteStore.open(db_path, data_dir) as store:
        row = store.get(record(store, created_at=WHEN).id)
    conn = connect(db_path)
    with conn:
        conn.execute("BEGIN")
        for i in range(rows):
            conn.execute(
                "INSERT INTO diagnoses (id, created_at, device_id, model_version, model_sha256, verdict, crop,"
                " condition, topk, quality, latency, photo_path, photo_sha256, photo_bytes)"
                " VALUES (?, ?, 'pi', 'v', 's', 'diagnosis', 'Maize', 'Rust', '[]', '{}', '{}', ?, ?, 1)",
                (f"00000000-0000-4000-8000-{i:012d}", f"2024-01-01T00:00:{i % 60:02d}.000Z", row["photo_path"], "x"),
            )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db_path.read_bytes()


def assert_refused_untouched(paths: tuple[Path, Path], damaged: bytes) -> StoreCorruptError:
    db_path, data_dir = paths
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db_path.write_bytes(damaged)
    for side in (db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")):
        side.unlink(missing_ok=True)
    with pytest.raises(StoreCorruptError) as caught:
        SqliteStore.open(db_path, data_dir)
    assert db_path.read_bytes() == damaged
    message = str(caught.value)
    assert "kept untouched for recovery" in message
    assert ".recover" in message and str(db_path) in message
    return caught.value


def test_a_truncated_database_is_refused_and_kept(paths: tuple[Path, Path]) -> None:
    data = filled_database(paths)
    assert_refused_untouched(paths, data[: len(data) // 2])


def test_a_database_cut_inside_its_header_is_refused_and_kept(paths: tuple[Path, Path]) -> None:
    data = filled_database(paths, rows=10)
    assert_refused_untouched(paths, data[:60])


def test_a_file_of_random_bytes_is_refused_and_kept(paths: tuple[Path, Path]) -> None:
    error = assert_refused_untouched(paths, random.Random(7).randbytes(16384))
    assert "not a database" in str(error)


def test_a_page_corrupted_database_is_refused_and_kept(paths: tuple[Path, Path]) -> None:
    data = filled_database(paths)
    middle = (len(data) // 2) // 4096 * 4096
    garbage = random.Random(11).randbytes(4096)
    error = assert_refused_untouched(paths, data[:middle] + garbage + data[middle + 4096 :])
    assert error.findings


def test_a_healthy_store_passes_both_integrity_checks(store: SqliteStore) -> None:
    record(store)
    store.check_integrity(full=True)
    store.check_integrity(full=False)


# ---- failures leave no orphans ------------------------------------------------------------------


def test_a_failing_insert_leaves_no_orphan_photo_and_earlier_rows_intact(store: SqliteStore) -> None:
    first = record(store, created_at=WHEN)
    before = store.get(first.id)
    files_before = photo_files(store.data_dir)

    with pytest.raises(StoreWriteError, match="already stored"):
        record(store, record_id=first.id, created_at=WHEN)

    assert photo_files(store.data_dir) == files_before == {first.photo_path}
    assert store.get(first.id) == before
    assert store.count() == 1
    assert store.photo_file(before).read_bytes() == JPEG


def test_no_temporary_photo_file_is_left_after_successful_records(store: SqliteStore) -> None:
    stored = [record(store, created_at=WHEN + timedelta(days=d)) for d in range(3)]
    everything = list((store.data_dir / "photos").rglob("*"))
    assert not [p for p in everything if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert photo_files(store.data_dir) == {s.photo_path for s in stored}


def test_open_sweeps_stale_temp_photos_left_by_a_crash(paths: tuple[Path, Path]) -> None:
    db_path, data_dir = paths
    leftover = data_dir / "photos" / "2024" / "05" / "17" / ".abc.jpg.1234abcd.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a photo")

    os.utime(leftover, (0, 0))
    with SqliteStore.open(db_path, data_dir) as store:
        assert store.swept_temp_files == [leftover]
    assert not leftover.exists()


# ---- export and sync bookkeeping ----------------------------------------------------------------


def test_mark_exported_and_synced(store: SqliteStore) -> None:
    a, b, c = (record(store, created_at=WHEN + timedelta(seconds=i)) for i in range(3))
    assert [r["id"] for r in store.unexported()] == [a.id, b.id, c.id]
    assert [r["id"] for r in store.unexported(limit=1)] == [a.id]

    first_time = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    assert store.mark_exported([a.id, b.id], "stick-1234", "leaf-export/pi-07", first_time) == 2
    assert [r["id"] for r in store.unexported()] == [c.id]
    store.mark_exported([a.id], "stick-9999", "leaf-export/pi-07", first_time + timedelta(days=1))
    assert store.get(a.id)["exported_at"] == "2024-06-01T08:00:00.000Z"  # first export is kept
    ledger = sqlite3.connect(store.db_path).execute(
        "SELECT stick_id, diagnosis_id, exported_at FROM export_ledger ORDER BY stick_id, exported_at"
    )
    assert sorted(ledger.fetchall()) == sorted(
        [
            ("stick-1234", a.id, "2024-06-01T08:00:00.000Z"),
            ("stick-1234", b.id, "2024-06-01T08:00:00.000Z"),
            ("stick-9999", a.id, "2024-06-02T08:00:00.000Z"),
        ]
    )

    assert [r["id"] for r in store.unsynced(limit=10)] == [a.id, b.id, c.id]
    assert store.mark_synced([b.id], first_time) == 1
    assert [r["id"] for r in store.unsynced(limit=10)] == [a.id, c.id]
    assert store.get(b.id)["synced_at"] == "2024-06-01T08:00:00.000Z"


def test_marking_an_unknown_id_changes_nothing(store: SqliteStore) -> None:
    a = record(store)
    with pytest.raises(ValueError, match="unknown diagnosis ids"):
        store.mark_exported([a.id, "nope"], "stick", "dir", WHEN)
    with pytest.raises(ValueError, match="unknown diagnosis ids"):
        store.mark_synced(["nope"], WHEN)
    assert [r["id"] for r in store.unexported()] == [a.id]
    assert [r["id"] for r in store.unsynced()] == [a.id]


# ---- odds and ends ------------------------------------------------------------------------------


def test_free_bytes_reports_the_data_filesystem(store: SqliteStore) -> None:
    import shutil

    free = store.free_bytes()
    assert isinstance(free, int) and free > 0
    assert abs(free - shutil.disk_usage(store.data_dir).free) < 64 * 1024 * 1024


def test_a_closed_store_refuses_use(paths: tuple[Path, Path]) -> None:
    store = SqliteStore.open(*paths)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count()
    with pytest.raises(StoreError, match="closed"):
        record(store)
    assert store.connection_settings() == []
