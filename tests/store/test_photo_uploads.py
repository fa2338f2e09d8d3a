"""Full-photo bookkeeping (migration 5) on real SQLite files: left to send, sent, skipped, bytes sent today."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from appliance.errors import StoreWriteError
from appliance.store import MIGRATIONS, SqliteStore, apply_migrations
from appliance.store.sqlite_store import connect
from appliance.vision.jpeg import encode_jpeg
from tests.store.test_store import make_diagnosis

JPEG = encode_jpeg(np.full((48, 64, 3), (40, 160, 60), dtype=np.uint8))
DAY = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path):
    with SqliteStore.open(tmp_path / "db" / "diagnoses.sqlite3", tmp_path / "data") as opened:
        yield opened


def add(store: SqliteStore, n: int) -> list[str]:
    return [store.record(make_diagnosis(), JPEG, device_id="pi-07", latency={}).id for _ in range(n)]


def test_only_records_already_at_base_wait_for_their_photo_oldest_first(store: SqliteStore) -> None:
    ids = add(store, 5)
    assert store.photos_to_send() == []  # base refuses a photo before its record
    store.mark_synced([ids[3], ids[0], ids[2]], DAY)
    assert [r["id"] for r in store.photos_to_send()] == [ids[0], ids[2], ids[3]]
    assert [r["id"] for r in store.photos_to_send(limit=1)] == [ids[0]]
    assert [r["id"] for r in store.photos_to_send(after=ids[0])] == [ids[2], ids[3]]
    assert store.photos_to_send()[0]["photo_sha256"] == store.get(ids[0])["photo_sha256"]
    assert store.photo_upload_counts() == {"sent": 0, "skipped": 0, "waiting": 3}


def test_sent_and_skipped_photos_leave_the_list_and_keep_how_and_why(store: SqliteStore) -> None:
    ids = add(store, 4)
    store.mark_synced(ids, DAY)
    store.mark_photo_sent(ids[0], "stored", 1000, DAY)
    store.mark_photo_sent(ids[1], "duplicate", 2000, DAY + timedelta(minutes=1))
    assert store.mark_photos_skipped([ids[2], ids[2]], "not wanted", DAY) == 1
    assert [r["id"] for r in store.photos_to_send()] == [ids[3]]
    assert store.photo_upload(ids[0]) == {
        "diagnosis_id": ids[0],
        "outcome": "sent",
        "detail": "stored",
        "bytes": 1000,
        "at": "2025-03-04T10:00:00.000Z",
    }
    assert store.photo_upload(ids[2])["outcome"] == "skipped"
    assert store.photo_upload(ids[2])["detail"] == "not wanted"
    assert store.photo_upload(ids[3]) is None
    assert store.photo_upload_counts() == {"sent": 2, "skipped": 1, "waiting": 1}


def test_bytes_sent_count_from_the_given_moment_on(store: SqliteStore) -> None:
    ids = add(store, 3)
    store.mark_synced(ids, DAY)
    store.mark_photo_sent(ids[0], "stored", 700, DAY - timedelta(days=1))  # yesterday
    store.mark_photo_sent(ids[1], "stored", 300, DAY)
    store.mark_photos_skipped([ids[2]], "the photo is damaged", DAY)  # nothing went up for it
    midnight = DAY.replace(hour=0)
    assert store.photo_bytes_sent_since(midnight) == 300
    assert store.photo_bytes_sent_since(midnight - timedelta(days=1)) == 1000
    assert store.photo_bytes_sent_since(DAY + timedelta(seconds=1)) == 0


def test_marking_an_unknown_record_or_without_a_reason_changes_nothing(store: SqliteStore) -> None:
    ids = add(store, 1)
    store.mark_synced(ids, DAY)
    with pytest.raises(ValueError, match="unknown diagnosis ids"):
        store.mark_photos_skipped([ids[0], "00000000-0000-4000-8000-000000000000"], "not wanted", DAY)
    with pytest.raises(ValueError, match="reason"):
        store.mark_photos_skipped(ids, "", DAY)
    assert store.photo_upload(ids[0]) is None
    with pytest.raises(ValueError, match="time zone"):
        store.mark_photo_sent(ids[0], "stored", 1, datetime(2025, 1, 1))  # naive on purpose


def test_the_table_refuses_an_outcome_it_does_not_know(store: SqliteStore, tmp_path: Path) -> None:
    ids = add(store, 1)
    conn = connect(tmp_path / "db" / "diagnoses.sqlite3")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "INSERT INTO photo_uploads (diagnosis_id, outcome, detail, at) VALUES (?, 'maybe', '', 'x')", ids
            )
    finally:
        conn.close()
    with pytest.raises(StoreWriteError):
        store._settle_photos(ids, "perhaps", "x", 0, DAY)


def test_a_v4_database_gains_photo_uploads_and_its_synced_records_wait_for_their_photos(tmp_path: Path) -> None:
    db_path, data_dir = tmp_path / "db" / "diagnoses.sqlite3", tmp_path / "data"
    with SqliteStore.open(db_path, data_dir) as store:
        ids = add(store, 3)
        store.mark_synced(ids[:2], DAY)
    # Back to what the previous release (schema 4) left: no photo_uploads, user_version 4.
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DROP TABLE photo_uploads")
    conn.execute("DELETE FROM schema_migrations WHERE version = 5")
    conn.execute("PRAGMA user_version = 4")
    conn.close()

    conn = connect(db_path)
    assert apply_migrations(conn, MIGRATIONS) == [5]
    assert apply_migrations(conn, MIGRATIONS) == []
    conn.close()
    with SqliteStore.open(db_path, data_dir) as store:
        assert store.schema_version() == 5
        assert store.count() == 3
        assert [r["id"] for r in store.photos_to_send()] == ids[:2]
        store.mark_photo_sent(ids[0], "stored", 10, DAY)
        store.check_integrity(full=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        conn.execute("DELETE FROM diagnoses WHERE id = ?", (ids[0],))  # its photo row goes with it
        assert conn.execute("SELECT count(*) FROM photo_uploads").fetchone() == (0,)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "idx_photo_uploads_sent_at" in indexes
    finally:
        conn.close()
