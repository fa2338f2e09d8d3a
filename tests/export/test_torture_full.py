"""Full disks on real size-limited file systems (tmpfs with size=): the SD card and the stick.

Needs root to mount; skipped elsewhere with the reason, and a failure when CI=true.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from pathlib import Path

import pytest

from appliance.config import StorageConfig
from appliance.errors import ExportError, StoreWriteError
from appliance.export import Exporter, Progress, prune_exported_photos
from appliance.storage_rule import StorageLevel, storage_status
from appliance.store import SqliteStore
from tests.helpers.torture.support import clock, config, diagnosis, fill, open_store, photo_bytes, tmpfs

PHOTO = 40_000


def record(store: SqliteStore, rng: random.Random) -> tuple[str, str]:
    photo = photo_bytes(rng, PHOTO)
    rec = store.record(diagnosis(), photo, device_id="pi-07", latency={"x_ms": 1.0})
    return rec.id, hashlib.sha256(photo).hexdigest()


def intact(store: SqliteStore, kept: dict[str, str]) -> bool:
    for rid, digest in kept.items():
        row = store.get(rid)
        if row is None or hashlib.sha256(store.photo_file(row).read_bytes()).hexdigest() != digest:
            return False
    return True


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_a_full_sd_card_stops_recording_cleanly_and_export_then_prune_recovers(tmp_path: Path) -> None:
    rng = random.Random(7)
    policy = StorageConfig(warn_below_mb=3, refuse_below_mb=2)
    stick = tmp_path / "stick"
    stick.mkdir()
    with tmpfs(tmp_path / "card", "4m") as card:
        data = card / "data"
        ballast = card / "other-files.bin"  # logs and such, which the appliance does not own
        ballast.write_bytes(os.urandom(200_000))
        kept: dict[str, str] = {}
        with open_store(data) as store:
            # what the daemon does: take photos while the policy allows
            levels = []
            while (status := storage_status(store.free_bytes(), policy)).level is not StorageLevel.REFUSE:
                levels.append(status.level)
                rid, digest = record(store, rng)
                kept[rid] = digest
            assert StorageLevel.WARN in levels and "Storage full" in status.message
            assert store.free_bytes() < 2 * 2**20

            # bypass the policy: write until the card is really full
            with pytest.raises(StoreWriteError) as full:
                for _ in range(200):
                    rid, digest = record(store, rng)
                    kept[rid] = digest
            message = str(full.value)
            assert "earlier diagnoses are untouched" in message or "Nothing was recorded" in message
            assert intact(store, kept)
            store.check_integrity(full=True)
            assert store.count() == len(kept)
            with pytest.raises(StoreWriteError):  # still full: refused again, still nothing half-written
                record(store, rng)
            assert store.count() == len(kept)

        assert integrity(data / "diagnoses.sqlite3") == "ok"
        ballast.unlink()  # someone frees a little room, as the technician would
        with open_store(data) as store:
            assert intact(store, kept) and store.count() == len(kept)
            report = Exporter(store, config(data), now=clock()).run(stick)
            assert report.rows == len(kept) and store.unexported() == []
            pruned = prune_exported_photos(store, 2_400_000)  # the database and its WAL keep the rest
            assert pruned.pruned > 0 and pruned.reached and pruned.pruned < len(kept)
            assert storage_status(store.free_bytes(), policy).level is StorageLevel.WARN  # working again
            rid, digest = record(store, rng)  # taking photos works again
            assert store.get(rid)["photo_sha256"] == digest
            assert integrity(data / "diagnoses.sqlite3") == "ok"


def test_a_stick_without_room_is_refused_before_writing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(data) as store, tmpfs(tmp_path / "stick", "1m") as stick:
        fill(store, 40, size=60_000)
        with pytest.raises(ExportError, match=r"^Only 1 MB free on the USB stick at .*, need 4 MB\. "):
            Exporter(store, config(data), now=clock()).run(stick)
        assert len(store.unexported()) == 40
        assert not list(stick.rglob("*.partial")) and not list(stick.rglob("*.jpg"))


def test_a_stick_that_fills_up_mid_export_leaves_the_store_unchanged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with open_store(data) as store, tmpfs(tmp_path / "stick", "3m") as stick:
        ids = fill(store, 12, size=100_000)
        filler = stick / "someone-elses-video.mp4"

        def fill_the_stick(p: Progress) -> None:
            if p.phase == "writing" and p.files_done == 3 and not filler.exists():
                free = os.statvfs(stick).f_bavail * os.statvfs(stick).f_frsize
                filler.write_bytes(b"\0" * (free - 4096))

        with pytest.raises(
            ExportError, match=r"^The USB stick is full \(writing photos/.*\.jpg\)\. Nothing was marked"
        ):
            Exporter(store, config(data), now=clock()).run(stick, progress=fill_the_stick)
        assert [r["id"] for r in store.unexported()] == ids
        assert not list(stick.rglob("*.partial"))  # the half-written folder was removed at once
        filler.unlink()
        report = Exporter(store, config(data), now=clock()).run(stick)
        assert report.rows == 12 and store.unexported() == []
        assert not list(stick.rglob("*.partial")) and not list(stick.rglob(".*.tmp"))
