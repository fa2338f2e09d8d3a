"""The collector's PostgreSQL schema as numbered migrations, each applied once in its own transaction.

`leaf-collector migrate` and `serve` both call `migrate`; a transaction-level advisory lock
makes two collectors starting at once apply each step exactly once. A database whose schema
is newer than this code is refused: an older collector must not write rows a newer one misreads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from leaf_collector.errors import CollectorFailure

if TYPE_CHECKING:
    import psycopg

LOCK_KEY = 0x1EAF_C011  # pg_advisory_xact_lock key shared by every collector


class CollectorSchemaError(CollectorFailure):
    """The database's schema cannot be used by this collector; the message says what to do."""


class Migration(NamedTuple):
    number: int
    description: str
    sql: str


_V1 = """
CREATE TABLE devices (
    device_id text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    token_sha256 text UNIQUE,
    issued_at timestamptz NOT NULL,
    revoked_at timestamptz,
    last_seen_at timestamptz
);

CREATE TABLE diagnoses (
    id uuid PRIMARY KEY,
    device_id text NOT NULL REFERENCES devices (device_id),
    created_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    model_version text NOT NULL,
    model_sha256 text NOT NULL,
    verdict text NOT NULL CHECK (verdict IN ('diagnosis', 'retake')),
    reason text,
    top1_slug text,
    top1_probability double precision,
    crop text NOT NULL DEFAULT '',
    condition text NOT NULL DEFAULT '',
    topk jsonb NOT NULL,
    quality jsonb NOT NULL,
    latency jsonb NOT NULL,
    photo_sha256 text NOT NULL DEFAULT '',
    photo_bytes bigint,
    extra jsonb
);
CREATE INDEX diagnoses_created_at ON diagnoses (created_at DESC);
CREATE INDEX diagnoses_device_created_at ON diagnoses (device_id, created_at DESC);

CREATE TABLE photos (
    diagnosis_id uuid NOT NULL REFERENCES diagnoses (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('thumbnail', 'full')),
    jpeg bytea NOT NULL,
    sha256 text NOT NULL,
    PRIMARY KEY (diagnosis_id, kind)
);
-- JPEG does not compress: skip TOAST's compression attempt, store out of line as is.
ALTER TABLE photos ALTER COLUMN jpeg SET STORAGE EXTERNAL;
"""

# Devices that know crops send them; a record from an older device stores [] (every crop). A device
# updated before its collector sent crops as an unknown field: move them out of "extra".
_V2 = """
ALTER TABLE diagnoses DROP CONSTRAINT diagnoses_verdict_check;
ALTER TABLE diagnoses ADD CONSTRAINT diagnoses_verdict_check CHECK (verdict IN ('diagnosis', 'retake', 'unknown'));
ALTER TABLE diagnoses ADD COLUMN crops jsonb NOT NULL DEFAULT '[]';
UPDATE diagnoses SET crops = extra -> 'crops', extra = nullif(extra - 'crops', '{}'::jsonb)
    WHERE extra ? 'crops' AND jsonb_typeof(extra -> 'crops') = 'array';
"""

# A record's time is the device's clock. A Pi that booted without network time may say 1970 or
# 2099: such a record is kept as sent but flagged, and sorted by when it arrived (sort_at), so it
# neither tops "Latest" forever nor never shows. The rule is the collector's: see db.CLOCK_RULE.
_V3 = """
ALTER TABLE diagnoses ADD COLUMN clock_suspect boolean NOT NULL DEFAULT false;
ALTER TABLE diagnoses ADD COLUMN sort_at timestamptz;
UPDATE diagnoses SET clock_suspect = (created_at > received_at + interval '1 day'
                                      OR created_at < timestamptz '2024-01-01 00:00:00+00');
UPDATE diagnoses SET sort_at = CASE WHEN clock_suspect THEN received_at ELSE created_at END;
ALTER TABLE diagnoses ALTER COLUMN sort_at SET NOT NULL;
ALTER TABLE diagnoses ALTER COLUMN sort_at SET DEFAULT now();  -- a row inserted without one sorts by arrival
CREATE INDEX diagnoses_sort_at ON diagnoses (sort_at DESC);
"""

# Issue 13, the fleet teaches the model. Full photos are stored once by checksum, their bytes in a
# PhotoStore (leaf_collector/photostore.py: a folder by default); a diagnosis names its photo by
# diagnoses.photo_sha256, so two records of the same bytes share one row. The device that sent a
# photo first is charged for it against its quota (NULL: the collector's --photo-quota-mb).
# Accounts label photos at base: passwords as self-describing scrypt strings, sessions by the
# sha256 of the cookie (the cookie itself is never stored), one label per photo and person, so
# two people can disagree. A label is a model class slug or one of three marks.
_V4 = """
CREATE TABLE field_photos (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes bigint NOT NULL CHECK (bytes > 0),
    device_id text NOT NULL REFERENCES devices (device_id),
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX field_photos_device ON field_photos (device_id);
CREATE INDEX diagnoses_photo_sha256 ON diagnoses (photo_sha256) WHERE photo_sha256 <> '';
ALTER TABLE devices ADD COLUMN photo_quota_mb integer CHECK (photo_quota_mb IS NULL OR photo_quota_mb >= 0);

CREATE TABLE accounts (
    username text PRIMARY KEY CHECK (username ~ '^[a-z0-9._-]{1,64}$'),
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

CREATE TABLE sessions (
    token_sha256 text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    username text NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE labels (
    photo_sha256 text NOT NULL REFERENCES field_photos (sha256),
    username text NOT NULL REFERENCES accounts (username),
    label text NOT NULL CHECK (label ~ '^([a-z0-9_]+__[a-z0-9_]+|not_a_leaf|other_plant|unusable)$'),
    labelled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_sha256, username)
);
CREATE INDEX labels_photo ON labels (photo_sha256);
"""

# Where the leaf was when photographed, said by the person labelling (NULL: not said). Issue 9's
# shortcut: a model can learn "paper means disease"; a before/after split by background shows it.
_V5 = """
ALTER TABLE labels ADD COLUMN background text CHECK (background IS NULL OR background IN ('natural', 'plain'));
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "devices, diagnoses and photos", _V1),
    Migration(2, "verdict 'unknown' and the crops a diagnosis chose among", _V2),
    Migration(3, "records whose device clock cannot be right: flagged, sorted by arrival", _V3),
    Migration(4, "field photos by checksum, per-device photo quota, accounts, sessions and labels", _V4),
    Migration(5, "the background a labeller saw: natural (on the plant) or plain (picked, on paper or cloth)", _V5),
)

_LEDGER = """
CREATE TABLE IF NOT EXISTS collector_schema_migrations (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def latest_version() -> int:
    return MIGRATIONS[-1].number


def current_version(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT to_regclass('collector_schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM collector_schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply what is missing; returns the numbers applied (empty when the schema is current)."""
    applied: list[int] = []
    for migration in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(_LEDGER)
            version = current_version(conn)
            refuse_if_newer(version)
            if version >= migration.number:
                continue
            conn.execute(migration.sql)  # type: ignore[arg-type]  # trusted, constant SQL
            conn.execute(
                "INSERT INTO collector_schema_migrations (version, description) VALUES (%s, %s)",
                (migration.number, migration.description),
            )
        applied.append(migration.number)
    return applied


def refuse_if_newer(version: int) -> None:
    if version > latest_version():
        raise CollectorSchemaError(
            f"the collector database has schema version {version}, newer than this collector knows "
            f"({latest_version()}); nothing was changed. Run the newer collector release."
        )


def check_current(conn: psycopg.Connection) -> None:
    version = current_version(conn)
    refuse_if_newer(version)
    if version < latest_version():
        raise CollectorSchemaError(
            f"the collector database is at schema version {version}, this collector needs {latest_version()}: "
            f"run `leaf-collector migrate --dsn ...`"
        )
