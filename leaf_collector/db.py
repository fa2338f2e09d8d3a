"""The collector's database: a psycopg 3 connection pool and the few queries the API and the page need.

Storing a batch is one transaction: INSERT ... ON CONFLICT (id) DO NOTHING makes a replayed
batch change nothing, and concurrent copies of the same batch (a device retrying while its
first request is still running) wait on each other's rows instead of duplicating them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from leaf_collector import consensus, fieldphotos, migrations, tokens
from leaf_collector.errors import CollectorFailure
from leaf_collector.photostore import PhotoStore
from leaf_collector.records import RecordError, ValidRecord
from leaf_wire import protocol

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")


class DatabaseUnavailable(CollectorFailure):
    """PostgreSQL cannot be reached or failed; the request can be retried later."""


class ForeignIds(Exception):
    """Some ids of a batch are already stored for another device: the batch was rolled back."""

    def __init__(self, errors: list[RecordError]) -> None:
        super().__init__(f"{len(errors)} id(s) belong to another device")
        self.errors = errors


# A device clock is not believed when it puts a record more than a day after its arrival, or
# before this software existed (a Pi without network time boots in 1970).
CLOCK_RULE = "u.created_at > now() + interval '1 day' OR u.created_at < timestamptz '2024-01-01 00:00:00+00'"

_INSERT_DIAGNOSES = f"""
INSERT INTO diagnoses (id, device_id, created_at, model_version, model_sha256, verdict, reason, top1_slug,
                       top1_probability, crop, condition, crops, topk, quality, latency, photo_sha256, photo_bytes,
                       extra, clock_suspect, sort_at)
SELECT u.id, %(device_id)s, u.created_at, u.model_version, u.model_sha256, u.verdict, u.reason, u.top1_slug,
       u.top1_probability, u.crop, u.condition, u.crops::jsonb, u.topk::jsonb, u.quality::jsonb, u.latency::jsonb,
       u.photo_sha256, u.photo_bytes, u.extra::jsonb,
       ({CLOCK_RULE}), CASE WHEN {CLOCK_RULE} THEN now() ELSE u.created_at END
FROM unnest(%(id)s::uuid[], %(created_at)s::timestamptz[], %(model_version)s::text[], %(model_sha256)s::text[],
            %(verdict)s::text[], %(reason)s::text[], %(top1_slug)s::text[], %(top1_probability)s::float8[],
            %(crop)s::text[], %(condition)s::text[], %(crops)s::text[], %(topk)s::text[], %(quality)s::text[],
            %(latency)s::text[], %(photo_sha256)s::text[], %(photo_bytes)s::int8[], %(extra)s::text[])
     AS u(id, created_at, model_version, model_sha256, verdict, reason, top1_slug, top1_probability, crop,
          condition, crops, topk, quality, latency, photo_sha256, photo_bytes, extra)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

_INSERT_PHOTOS = """
INSERT INTO photos (diagnosis_id, kind, jpeg, sha256)
SELECT * FROM unnest(%s::uuid[], %s::text[], %b::bytea[], %s::text[])
ON CONFLICT (diagnosis_id, kind) DO NOTHING
"""

# The device id comes from the token, not the record; unknown fields land in "extra".
_COLUMNS = (*(c for c in protocol.RECORD_COLUMNS if c != "device_id"), "extra")


@dataclass(frozen=True)
class Stored:
    statuses: list[tuple[str, str]]  # (id, "stored" | "duplicate") in request order
    photos_over_quota: int = 0  # full photos inside the batch not kept: the device's quota is full

    @property
    def stored(self) -> int:
        return sum(1 for _, s in self.statuses if s == protocol.STORED)

    @property
    def duplicates(self) -> int:
        return sum(1 for _, s in self.statuses if s == protocol.DUPLICATE)


_MISSING = "the collector needs psycopg 3 and psycopg-pool: pip install ./leaf_collector"


def _psycopg():  # type: ignore[no-untyped-def]
    try:
        import psycopg
    except ImportError:
        raise CollectorFailure(_MISSING) from None
    return psycopg


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection:
    """One plain connection (CLI commands); autocommit so each `with conn.transaction()` is the unit."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL ({_where(dsn)}): {_first_line(exc)}") from None


def open_pool(dsn: str, size: int = 8) -> ConnectionPool:
    """A pool that checks each connection before lending it, so a PostgreSQL restart costs no failed request."""
    _psycopg()
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise CollectorFailure(_MISSING) from None
    pool = ConnectionPool(
        dsn,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "connect_timeout": 10},
        check=ConnectionPool.check_connection,
        open=False,
        name="leaf-collector",
    )
    try:
        pool.open(wait=True, timeout=15)
    except Exception as exc:
        pool.close()
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL ({_where(dsn)}): {_first_line(exc)}") from None
    return pool


class CollectorDB:
    """The queries, each borrowing a pooled connection; psycopg errors become DatabaseUnavailable."""

    def __init__(self, pool: ConnectionPool, *, pool_timeout_s: float = 3.0) -> None:
        # Each server thread holds at most one connection and the pool has one per thread, so a
        # wait here means PostgreSQL is down or refusing: answer 503 soon rather than hang.
        self.pool = pool
        self.pool_timeout_s = pool_timeout_s

    def close(self) -> None:
        self.pool.close()

    def _conn(self):  # type: ignore[no-untyped-def]
        return self.pool.connection(timeout=self.pool_timeout_s)

    def _run(self, fn, *args: Any) -> Any:  # type: ignore[no-untyped-def]
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._conn() as conn:
                return fn(conn, *args)
        except PoolTimeout:
            raise DatabaseUnavailable(
                f"no database connection within {self.pool_timeout_s:g} s (PostgreSQL down or overloaded)"
            ) from None
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"PostgreSQL failed: {_first_line(exc)}") from None

    # ---- the API -------------------------------------------------------------------------

    def ping(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def device_for_token(self, token: str) -> str | None:
        return self._run(tokens.device_for, token)

    def store_batch(
        self, device_id: str, records: list[ValidRecord], *, photos: PhotoStore, default_quota_mb: int
    ) -> Stored:
        """Store what is new, in one transaction; one status per record, in request order.

        Full photos inside the batch go to `photos` (and field_photos), thumbnails to the photos table.
        """
        return self._run(_store_batch, device_id, records, photos, default_quota_mb)

    # ---- the page ------------------------------------------------------------------------

    def overview(self, days: int) -> dict[str, Any]:
        return self._run(_overview, days)

    def latest(self, limit: int) -> list[dict[str, Any]]:
        return self._run(_latest, limit)

    def photo(self, diagnosis_id: uuid.UUID, kind: str, store: PhotoStore) -> bytes | None:
        """A thumbnail from the photos table; a full photo from `store` by the diagnosis's photo_sha256.

        A damaged file raises PhotoStoreError (it is reported, never served). Full photos stored in the
        photos table by a collector before schema 4 are still read from there.
        """

        def fetch(conn: psycopg.Connection) -> tuple[str | None, bytes | None]:
            sha256 = fieldphotos.sha256_of_diagnosis(conn, diagnosis_id) if kind == "full" else None
            if sha256 is not None:
                return sha256, None
            row = conn.execute(
                "SELECT jpeg FROM photos WHERE diagnosis_id = %s AND kind = %s", (diagnosis_id, kind)
            ).fetchone()
            return None, bytes(row[0]) if row else None

        sha256, data = self._run(fetch)
        return store.get(sha256) if sha256 is not None else data

    def csv_rows(self, batch: int = 2000) -> Iterator[tuple[Any, ...]]:
        """Every diagnosis, oldest first, streamed with a server-side cursor (the table may be large)."""
        import psycopg

        try:
            with self._conn() as conn, conn.transaction(), conn.cursor(name="leaf_csv") as cur:
                cur.itersize = batch
                cur.execute(CSV_QUERY)
                yield from (_with_consensus(row) for row in cur)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"PostgreSQL failed: {_first_line(exc)}") from None

    # ---- accounts and labels (their SQL lives in accounts.py and labelling.py) -------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on a pooled connection, for modules that own their SQL."""
        return self._run(fn, *args)

    # ---- full field photos (leaf_collector/fieldphotos.py) --------------------------------

    def receive_field_photo(
        self, store: PhotoStore, device_id: str, sha256: str, data: bytes, default_quota_mb: int
    ) -> fieldphotos.Receipt:
        return self._run(fieldphotos.receive, store, device_id, sha256, data, default_quota_mb)

    def has_field_photo(self, device_id: str, sha256: str) -> bool:
        return self._run(fieldphotos.has, device_id, sha256)

    def photo_usage(self, device_id: str, default_quota_mb: int) -> fieldphotos.Usage:
        return self._run(fieldphotos.usage, device_id, default_quota_mb)


CSV_COLUMNS = (
    "id",
    "created_at",
    "received_at",
    "device_id",
    "verdict",
    "reason",
    "crop",
    "condition",
    "crops",
    "top1_slug",
    "top1_probability",
    "model_version",
    "model_sha256",
    "photo_sha256",
    "has_thumbnail",
    "has_photo",
    "clock_suspect",  # true: the device's clock could not be right; created_at is as it sent it
    "labels",  # how many people labelled its photo at base
    "labelled_as",  # the class they all gave, or "disagreement" / "unusable"; empty while unlabelled
    "background",  # where they agree the leaf was: natural (on the plant) / plain (picked); else empty
)

CSV_QUERY = f"""
SELECT d.id, d.created_at, d.received_at, d.device_id, d.verdict, d.reason, d.crop, d.condition,
       array_to_string(ARRAY(SELECT jsonb_array_elements_text(d.crops)), ', '), d.top1_slug, d.top1_probability,
       d.model_version, d.model_sha256, d.photo_sha256,
       EXISTS (SELECT 1 FROM photos p WHERE p.diagnosis_id = d.id AND p.kind = 'thumbnail'),
       EXISTS (SELECT 1 FROM field_photos f WHERE f.sha256 = d.photo_sha256)
       OR EXISTS (SELECT 1 FROM photos p WHERE p.diagnosis_id = d.id AND p.kind = 'full'), d.clock_suspect,
       l.given, l.backgrounds
FROM diagnoses d LEFT JOIN ({consensus.LABELS_BY_PHOTO}) l ON l.photo_sha256 = d.photo_sha256
ORDER BY d.sort_at, d.id
"""


def _with_consensus(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A CSV row's labels as the field pack reads them (consensus.py owns that rule)."""
    *record, given, said = row
    if not given:
        return (*record, 0, "", "")
    agreed = consensus.consensus(given)
    return (*record, agreed.labels, agreed.slug or agreed.kind, consensus.agreed_background(said))


def _store_batch(
    conn: psycopg.Connection, device_id: str, records: list[ValidRecord], store: PhotoStore, default_quota_mb: int
) -> Stored:
    first: dict[uuid.UUID, ValidRecord] = {}
    for record in records:
        first.setdefault(record.id, record)  # an id twice in one batch is stored once, acknowledged twice
    unique = list(first.values())
    columns: dict[str, list[Any]] = {name: [getattr(r, name) for r in unique] for name in _COLUMNS}
    new: set[uuid.UUID] = set()
    over_quota = 0
    with conn.transaction():
        if unique:
            rows = conn.execute(_INSERT_DIAGNOSES, {"device_id": device_id, **columns}).fetchall()
            new = {row[0] for row in rows}
            others = [r.id for r in unique if r.id not in new]
            if others:
                _refuse_foreign(conn, device_id, others, records)
            fresh = [r for r in unique if r.id in new]
            _store_thumbnails(conn, fresh)
            full = {r.photo_sha256: r.photo for r in fresh if r.photo is not None}
            if full:
                receipts = fieldphotos.keep_inline(conn, store, device_id, list(full.items()), default_quota_mb)
                over_quota = sum(1 for r in receipts if r.status == fieldphotos.OVER_QUOTA)
        conn.execute("UPDATE devices SET last_seen_at = now() WHERE device_id = %s", (device_id,))
    statuses = []
    acknowledged: set[uuid.UUID] = set()
    for record in records:
        fresh = record.id in new and record.id not in acknowledged
        acknowledged.add(record.id)
        statuses.append((record.sent_id, protocol.STORED if fresh else protocol.DUPLICATE))
    return Stored(statuses, over_quota)


def _refuse_foreign(conn: psycopg.Connection, device_id: str, ids: list[uuid.UUID], records: list[ValidRecord]) -> None:
    rows = conn.execute("SELECT id, device_id FROM diagnoses WHERE id = ANY(%s)", (ids,)).fetchall()
    foreign = {rid for rid, owner in rows if owner != device_id}
    if foreign:
        errors = [
            RecordError(index, r.sent_id, "this id is already stored for another device")
            for index, r in enumerate(records)
            if r.id in foreign
        ]
        raise ForeignIds(errors)  # leaving the transaction block rolls the whole batch back


def _store_thumbnails(conn: psycopg.Connection, records: list[ValidRecord]) -> None:
    """Thumbnails stay in PostgreSQL (small, one per record); full photos live in the photo store."""
    ids: list[uuid.UUID] = []
    kinds: list[str] = []
    blobs: list[bytes] = []
    sums: list[str] = []
    for record in records:
        if record.thumbnail is not None:
            ids.append(record.id)
            kinds.append("thumbnail")
            blobs.append(record.thumbnail)
            sums.append(protocol.sha256_hex(record.thumbnail))
    if ids:
        conn.execute(_INSERT_PHOTOS, (ids, kinds, blobs, sums))


def _overview(conn: psycopg.Connection, days: int) -> dict[str, Any]:
    totals = conn.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE verdict = 'diagnosis'), count(*) FILTER (WHERE verdict = 'retake'),
               count(DISTINCT device_id), max(received_at), count(*) FILTER (WHERE verdict = 'unknown')
        FROM diagnoses
        """
    ).fetchone()
    assert totals is not None
    by_crop = conn.execute(
        """
        SELECT crop, count(*) FROM diagnoses WHERE verdict = 'diagnosis' GROUP BY crop ORDER BY count(*) DESC, crop
        """
    ).fetchall()
    by_condition = conn.execute(
        """
        SELECT crop, condition, count(*) FROM diagnoses WHERE verdict = 'diagnosis'
        GROUP BY crop, condition ORDER BY count(*) DESC, crop, condition
        """
    ).fetchall()
    by_device = conn.execute(
        """
        SELECT v.device_id, count(d.id), count(d.id) FILTER (WHERE d.verdict = 'retake'), max(d.created_at),
               v.last_seen_at, v.revoked_at IS NULL
        FROM devices v LEFT JOIN diagnoses d ON d.device_id = v.device_id
        GROUP BY v.device_id, v.last_seen_at, v.revoked_at ORDER BY v.device_id
        """
    ).fetchall()
    by_day = conn.execute(
        """
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*),
               count(*) FILTER (WHERE verdict = 'retake')
        FROM diagnoses WHERE created_at >= now() - make_interval(days => %s)
        GROUP BY day ORDER BY day DESC
        """,
        (days,),
    ).fetchall()
    return {
        "total": totals[0],
        "diagnosed": totals[1],
        "retakes": totals[2],
        "devices": totals[3],
        "last_received": totals[4],
        "unknown": totals[5],
        "by_crop": by_crop,
        "by_condition": by_condition,
        "by_device": by_device,
        "by_day": by_day,
    }


def _latest(conn: psycopg.Connection, limit: int) -> list[dict[str, Any]]:
    cur = conn.execute(
        """
        SELECT d.id, d.created_at, d.received_at, d.clock_suspect, d.device_id, d.verdict, d.reason, d.crop,
               d.condition, d.top1_probability,
               EXISTS (SELECT 1 FROM photos p WHERE p.diagnosis_id = d.id AND p.kind = 'thumbnail') AS has_thumbnail
        FROM diagnoses d ORDER BY d.sort_at DESC, d.id LIMIT %s
        """,
        (limit,),
    )
    names = [c.name for c in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def migrate(dsn: str) -> list[int]:
    with connect(dsn) as conn:
        return migrations.migrate(conn)


def _where(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:
        return "the given --dsn"
    host = parts.get("host") or "local socket"
    return f"host={host} port={parts.get('port') or 5432} dbname={parts.get('dbname') or '(default)'}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "CSV_COLUMNS",
    "CollectorDB",
    "DatabaseUnavailable",
    "ForeignIds",
    "Stored",
    "connect",
    "migrate",
    "open_pool",
]
