"""Full field photos at base: the `field_photos` rows and the photo store's files, kept in step.

The one rule this module owns: the file is written (and fsynced) before the row that names it is
committed, so a row never names a missing file; a file without a row (a write whose transaction
then failed) is harmless and is reused by the next upload of the same bytes. A photo is charged,
once, to the first device that sent it. Uploads of one device take a per-device advisory lock, so
two of its requests at once cannot both slip under its quota.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from leaf_collector.photostore import PhotoStore
from leaf_wire import protocol

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("leaf_collector")

MIB = 1024 * 1024
_LOCK_SPACE = 0x1EAF  # first key of pg_advisory_xact_lock(int, int): field photo uploads, per device
NOT_WANTED = "not_wanted"
OVER_QUOTA = "over_quota"


@dataclass(frozen=True)
class Receipt:
    status: str  # protocol.STORED, protocol.DUPLICATE, NOT_WANTED or OVER_QUOTA
    quota_bytes: int
    used_bytes: int  # charged to this device before this photo


@dataclass(frozen=True)
class Usage:
    quota_bytes: int
    used_bytes: int
    quota_mb: int | None  # the device's own quota; None: the collector's default applies


def usage(conn: psycopg.Connection, device_id: str, default_quota_mb: int) -> Usage:
    row = conn.execute(
        """
        SELECT v.photo_quota_mb, (SELECT coalesce(sum(f.bytes), 0) FROM field_photos f WHERE f.device_id = v.device_id)
        FROM devices v WHERE v.device_id = %s
        """,
        (device_id,),
    ).fetchone()
    own, used = (row[0], int(row[1])) if row else (None, 0)
    return Usage(quota_bytes=(default_quota_mb if own is None else own) * MIB, used_bytes=used, quota_mb=own)


def receive(
    conn: psycopg.Connection, store: PhotoStore, device_id: str, sha256: str, data: bytes, default_quota_mb: int
) -> Receipt:
    """Keep an uploaded photo that one of this device's records names, within the device's quota.

    `data` must already be checked (a JPEG whose sha256 is `sha256`). Store errors propagate with
    nothing committed.
    """
    with conn.transaction():
        _lock(conn, device_id)
        named = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM diagnoses WHERE device_id = %s AND photo_sha256 = %s AND photo_sha256 <> '')",
            (device_id, sha256),
        ).fetchone()
        spent = usage(conn, device_id, default_quota_mb)
        if not (named and named[0]):
            return Receipt(NOT_WANTED, spent.quota_bytes, spent.used_bytes)
        return _keep(conn, store, device_id, sha256, data, spent)


def keep_inline(
    conn: psycopg.Connection,
    store: PhotoStore,
    device_id: str,
    photos: list[tuple[str, bytes]],
    default_quota_mb: int,
) -> list[Receipt]:
    """Full photos that came inside a batch (older devices), in the batch's own transaction.

    One beyond the quota is not kept (its record and thumbnail still are): a batch refused for a
    photo would stop an older device's sync altogether.
    """
    _lock(conn, device_id)
    receipts = []
    for sha256, data in photos:
        spent = usage(conn, device_id, default_quota_mb)
        receipt = _keep(conn, store, device_id, sha256, data, spent)
        if receipt.status == OVER_QUOTA:
            log.warning(
                "%s: full photo %s… not kept: the device's photo quota (%d MiB) is full",
                device_id,
                sha256[:12],
                receipt.quota_bytes // MIB,
            )
        receipts.append(receipt)
    return receipts


def _keep(
    conn: psycopg.Connection,
    store: PhotoStore,
    device_id: str,
    sha256: str,
    data: bytes,
    spent: Usage,
) -> Receipt:
    known = conn.execute("SELECT 1 FROM field_photos WHERE sha256 = %s", (sha256,)).fetchone()
    if known:
        if not store.has(sha256):  # the row is older than a lost file: put the file back, charge nothing
            log.warning("field photo %s… was missing from the photo store; written again", sha256[:12])
            store.put(sha256, data)
            return Receipt(protocol.STORED, spent.quota_bytes, spent.used_bytes)
        return Receipt(protocol.DUPLICATE, spent.quota_bytes, spent.used_bytes)
    if spent.used_bytes + len(data) > spent.quota_bytes:
        return Receipt(OVER_QUOTA, spent.quota_bytes, spent.used_bytes)
    inserted = _file_then_row(conn, store, device_id, sha256, data)
    # No row back: another device committed the same bytes a moment ago; it is charged, not this one.
    return Receipt(protocol.STORED if inserted else protocol.DUPLICATE, spent.quota_bytes, spent.used_bytes)


def _file_then_row(conn: psycopg.Connection, store: PhotoStore, device_id: str, sha256: str, data: bytes) -> bool:
    """The module's rule: the file (fsynced) before its row; False when a row for these bytes was there."""
    store.put(sha256, data)  # False: already there from an earlier, uncommitted try
    inserted = conn.execute(
        """
        INSERT INTO field_photos (sha256, bytes, device_id) VALUES (%s, %s, %s)
        ON CONFLICT (sha256) DO NOTHING RETURNING sha256
        """,
        (sha256, len(data), device_id),
    ).fetchone()
    return inserted is not None


def has(conn: psycopg.Connection, device_id: str, sha256: str) -> bool:
    """Base has this photo, and one of this device's records names it (no one else's photos are confirmed)."""
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM diagnoses d JOIN field_photos f ON f.sha256 = d.photo_sha256
                       WHERE d.device_id = %s AND d.photo_sha256 = %s AND d.photo_sha256 <> '')
        """,
        (device_id, sha256),
    ).fetchone()
    return bool(row and row[0])


def sha256_of_diagnosis(conn: psycopg.Connection, diagnosis_id: object) -> str | None:
    """The full photo a diagnosis names, when base has it."""
    row = conn.execute(
        "SELECT f.sha256 FROM diagnoses d JOIN field_photos f ON f.sha256 = d.photo_sha256 WHERE d.id = %s",
        (diagnosis_id,),
    ).fetchone()
    return row[0] if row else None


def set_quota(conn: psycopg.Connection, device_id: str, quota_mb: int | None) -> bool:
    """A device's own photo quota (None: back to the collector's default); False for an unknown device."""
    with conn.transaction():
        cur = conn.execute("UPDATE devices SET photo_quota_mb = %s WHERE device_id = %s", (quota_mb, device_id))
    return cur.rowcount == 1


@dataclass
class Adopted:
    moved: int = 0  # into the photo store, with a field_photos row
    shared: int = 0  # the same bytes were there already (another record's): the old row just goes
    damaged: list[str] = field(default_factory=list)  # diagnosis ids left in place: bytes differ from checksum

    def line(self) -> str:
        return (
            f"full photos moved from the database into the photo store: {self.moved} "
            f"({self.shared} of the same bytes as one already there); left in place, damaged: {len(self.damaged)}"
        )


def adopt_legacy(conn: psycopg.Connection, store: PhotoStore) -> Adopted:
    """Move the full photos a collector before schema 4 kept in the photos table into the photo store.

    Until then they are served but cannot be labelled (the queue reads field_photos). One photo a
    transaction: the file is written first, then its row, the diagnosis naming it and the old row
    deleted commit together, so a run cut off anywhere loses nothing and the next run goes on.
    They are charged to the device that sent them, but never refused: they are at base already.
    """
    done = Adopted()
    ids = [r[0] for r in conn.execute("SELECT diagnosis_id FROM photos WHERE kind = 'full' ORDER BY diagnosis_id")]
    for diagnosis_id in ids:
        with conn.transaction():
            row = conn.execute(
                """
                SELECT p.jpeg, p.sha256, d.device_id, d.photo_sha256
                FROM photos p JOIN diagnoses d ON d.id = p.diagnosis_id
                WHERE p.diagnosis_id = %s AND p.kind = 'full' FOR UPDATE OF p
                """,
                (diagnosis_id,),
            ).fetchone()
            if row is None:  # moved by another run meanwhile
                continue
            data, said, device_id, named = bytes(row[0]), row[1], row[2], row[3]
            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 != said or named not in ("", sha256):
                done.damaged.append(str(diagnosis_id))
                continue
            inserted = _file_then_row(conn, store, device_id, sha256, data)
            conn.execute("UPDATE diagnoses SET photo_sha256 = %s WHERE id = %s", (sha256, diagnosis_id))
            conn.execute("DELETE FROM photos WHERE diagnosis_id = %s AND kind = 'full'", (diagnosis_id,))
        done.moved += 1
        done.shared += 0 if inserted else 1
    return done


def _lock(conn: psycopg.Connection, device_id: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_SPACE, device_id))
