"""Device tokens: random, shown once, stored only as a SHA-256 hash.

A token carries 256 random bits, so a plain (unsalted, fast) hash is enough: there is nothing
to guess, and the lookup by hash stays one indexed query per request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from leaf_collector.errors import CollectorFailure
from leaf_collector.records import is_device_id

if TYPE_CHECKING:
    import psycopg

TOKEN_PREFIX = "leaf_"  # recognisable in a leaked file or a secret scanner


class TokenError(CollectorFailure):
    """A token command that cannot be done; the message says why."""


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    issued_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None
    records: int

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def _check_id(device_id: str) -> None:
    if not is_device_id(device_id):
        raise TokenError(f"device id {device_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ - (the Pi's [device] id)")


def issue(conn: psycopg.Connection, device_id: str) -> tuple[str, bool]:
    """A new token for the device; returns (token, replaced) where replaced means an older token stopped working."""
    _check_id(device_id)
    token = new_token()
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO devices (device_id, token_sha256, issued_at) VALUES (%s, %s, now())
            ON CONFLICT (device_id) DO UPDATE
                SET token_sha256 = excluded.token_sha256, issued_at = now(), revoked_at = NULL
            RETURNING (xmax <> 0)
            """,
            (device_id, token_hash(token)),
        ).fetchone()
    return token, bool(row and row[0])


def revoke(conn: psycopg.Connection, device_id: str) -> bool:
    """Stop the device's token working at once; False when the device has no active token."""
    _check_id(device_id)
    with conn.transaction():
        cur = conn.execute(
            "UPDATE devices SET revoked_at = now() WHERE device_id = %s AND revoked_at IS NULL", (device_id,)
        )
    return cur.rowcount == 1


def device_for(conn: psycopg.Connection, token: str) -> str | None:
    """The device an active token belongs to, else None."""
    row = conn.execute(
        "SELECT device_id FROM devices WHERE token_sha256 = %s AND revoked_at IS NULL", (token_hash(token),)
    ).fetchone()
    return row[0] if row else None


def list_devices(conn: psycopg.Connection) -> list[DeviceRow]:
    rows = conn.execute(
        """
        SELECT d.device_id, d.issued_at, d.revoked_at, d.last_seen_at,
               (SELECT count(*) FROM diagnoses x WHERE x.device_id = d.device_id)
        FROM devices d ORDER BY d.device_id
        """
    ).fetchall()
    return [DeviceRow(*row) for row in rows]
