"""Storage policy: warn, refuse, and prune only photos that are safely on a stick."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import StorageConfig
from appliance.export import Exporter, make_room, prune_exported_photos
from appliance.storage_rule import MIB, StorageLevel, storage_status
from appliance.store import SqliteStore
from tests.helpers.torture.support import clock, config, fill, read_csv

WHEN = datetime(2024, 6, 1, tzinfo=UTC)


class MeteredStore(SqliteStore):
    """A store on a card of `capacity` bytes where only the photos take room: free space is exact."""

    capacity = 0

    def free_bytes(self) -> int:
        used = sum(p.stat().st_size for p in (self.data_dir / "photos").rglob("*.jpg"))
        return self.capacity - used


@pytest.fixture
def metered(tmp_path: Path):
    data = tmp_path / "data"
    with MeteredStore.open(data / "diagnoses.sqlite3", data) as store:
        yield store


def test_storage_levels_follow_the_configured_thresholds() -> None:
    storage = StorageConfig(warn_below_mb=500, refuse_below_mb=100)
    assert storage_status(600 * MIB, storage).level is StorageLevel.OK
    warn = storage_status(420 * MIB, storage)
    assert (
        warn.level is StorageLevel.WARN
        and warn.message == "Storage almost full: 420 MB left. Export to a USB stick soon."
    )
    refuse = storage_status(80 * MIB, storage)
    assert refuse.level is StorageLevel.REFUSE
    assert refuse.message.startswith("Storage full: 80 MB left, below the 100 MB needed for new photos.")
    assert storage_status(100 * MIB, storage).level is StorageLevel.WARN  # the floor itself still works
    # the ready screen's one line, the same rule: empty while there is room
    assert warn.short() == refuse.short().replace("80", "420") == "Storage almost full: 420 MB left. Export soon."
    assert storage_status(600 * MIB, storage).short() == ""


def test_prune_deletes_only_exported_photos_oldest_first_and_records_it(metered: MeteredStore) -> None:
    ids = fill(metered, 6, size=10_000)
    metered.mark_exported(ids[:4], "stick-1", "leaf-appliance/pi-07/x", WHEN)
    metered.capacity = 60_000 + 5_000  # 5 kB free; ask for 26 kB: three 10 kB photos must go
    report = prune_exported_photos(metered, 26_000, now=WHEN)
    assert (report.pruned, report.freed_bytes, report.reached) == (3, 30_000, True)
    rows = [metered.get(i) for i in ids]
    assert [r["photo_pruned_at"] is not None for r in rows] == [True, True, True, False, False, False]
    assert [metered.photo_file(r).exists() for r in rows] == [False, False, False, True, True, True]
    assert rows[0]["photo_pruned_at"] == "2024-06-01T00:00:00.000Z"

    more = prune_exported_photos(metered, 10**9, now=WHEN)  # asks for far more than exported photos hold
    assert (more.pruned, more.reached) == (1, False)
    assert [metered.photo_file(metered.get(i)).exists() for i in ids] == [False] * 4 + [True, True]  # never unexported
    assert metered.count() == 6  # rows are never deleted


def test_prune_keeps_photos_still_waiting_to_go_to_base_until_last(metered: MeteredStore) -> None:
    """A photo base has not settled yet (sent or skipped) is the one the agronomist may still need."""
    ids = fill(metered, 5, size=10_000)
    metered.mark_exported(ids, "stick-1", "x", WHEN)
    metered.mark_synced(ids[:4], WHEN)  # ids[4]: its record has not reached base yet
    metered.mark_photo_sent(ids[1], "stored", 10_000, WHEN)
    metered.mark_photos_skipped([ids[3]], "not wanted", WHEN)  # ids[0], ids[2]: waiting to be sent
    metered.capacity = 50_000 + 5_000
    report = prune_exported_photos(metered, 24_000, now=WHEN)  # two 10 kB photos must go
    assert report.pruned == 2
    kept = [metered.photo_file(metered.get(i)).exists() for i in ids]
    assert kept == [True, False, True, False, True]

    assert prune_exported_photos(metered, 45_000, now=WHEN).pruned == 2  # then the oldest waiting ones
    assert [metered.photo_file(metered.get(i)).exists() for i in ids] == [False, False, False, False, True]


def test_nothing_is_pruned_while_there_is_room(metered: MeteredStore) -> None:
    ids = fill(metered, 2, size=10_000)
    metered.mark_exported(ids, "stick-1", "x", WHEN)
    metered.capacity = 10**9
    assert prune_exported_photos(metered, 1000).pruned == 0
    assert all(metered.photo_file(metered.get(i)).exists() for i in ids)


def test_a_prune_cut_short_after_marking_is_finished_next_time(metered: MeteredStore) -> None:
    ids = fill(metered, 3, size=10_000)
    metered.mark_exported(ids, "stick-1", "x", WHEN)
    conn = sqlite3.connect(metered.db_path)
    with conn:  # the power went off after the mark was committed, before the file was removed
        conn.execute("UPDATE diagnoses SET photo_pruned_at = '2024-06-01T00:00:00.000Z' WHERE id = ?", (ids[0],))
    conn.close()
    metered.capacity = 30_000
    prune_exported_photos(metered, 15_000)
    assert not metered.photo_file(metered.get(ids[0])).exists()


def test_a_full_export_after_pruning_says_where_the_photo_went(metered: MeteredStore, tmp_path: Path) -> None:
    ids = fill(metered, 2, size=10_000)
    metered.mark_exported(ids[:1], "stick-1", "x", WHEN)
    metered.capacity = 20_000
    prune_exported_photos(metered, 10_000)
    stick = tmp_path / "stick"
    stick.mkdir()
    report = Exporter(metered, config(metered.data_dir), now=clock()).run(stick, full=True)
    assert report.pruned_photos == ids[:1] and report.photos == 1
    statuses = [(r["photo_status"], r["photo_file"]) for r in read_csv(report.export_dir / "diagnoses.csv")]
    assert statuses == [("pruned", ""), ("included", f"photos/{ids[1]}.jpg")]


def test_make_room_follows_the_config(metered: MeteredStore) -> None:
    ids = fill(metered, 2, size=10_000)
    metered.mark_exported(ids, "stick-1", "x", WHEN)
    metered.capacity = 20_000  # nothing free, far below warn_below_mb
    cfg = config(metered.data_dir, prune_exported_photos=False)
    assert make_room(metered, cfg) is None
    assert all(metered.photo_file(metered.get(i)).exists() for i in ids)
    report = make_room(metered, replace(cfg, export=replace(cfg.export, prune_exported_photos=True)))
    assert report is not None and report.pruned == 2
