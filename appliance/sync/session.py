"""One device's push: its unsynced rows through a collector client, batch by batch, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from appliance import __version__
from appliance.config import Config
from appliance.errors import SyncSetupError
from appliance.store.sqlite_store import SqliteStore
from appliance.sync.photo_policy import PhotoPolicy
from appliance.sync.thumbnail import make_thumbnail
from appliance.sync.token import read_token
from leaf_wire import protocol
from leaf_wire.client import (
    BatchTooLarge,
    CollectorClient,
    CollectorError,
    CollectorInfo,
    PhotoNotWanted,
    PhotoQuotaFull,
    PhotoRefused,
    RecordsRejected,
    encode_record,
)

log = logging.getLogger("appliance.sync")


BODY_BUDGET = 8 * 1024 * 1024  # bytes per request until the collector says its own limit
PHOTO_CHUNK = 200  # records looked at per query in the photo pass
QUOTA_RETRY = timedelta(hours=1)  # after "quota full" a daemon tries one photo again this much later
MB = 1_000_000


def client_from_config(cfg: Config) -> CollectorClient:
    s = cfg.sync
    if not s.url:
        raise SyncSetupError('sync is not set up: set [sync] url = "https://..." in the config file', "no URL")
    return CollectorClient(
        s.url,
        read_token(cfg.sync_token_path),
        ca_file=s.ca_file,
        timeout_s=s.timeout_s,
        user_agent=f"leaf-appliance/{__version__} ({cfg.device_id})",
    )


@dataclass
class PassReport:
    """What one pass did; counts add up across batches even when a later batch fails."""

    sent: int = 0  # records acknowledged by the collector in this pass
    stored: int = 0
    duplicates: int = 0
    batches: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # id -> the collector's reason
    without_photo: int = 0  # records whose photo could not be sent (missing, damaged, too large)
    # The photo pass, after the records: full photos base wants, one per request.
    photos_sent: int = 0  # base now holds them (stored now, or it had the bytes already)
    photo_duplicates: int = 0  # of those, the ones base already had (a resumed upload)
    photos_deferred: int = 0  # wanted but left for later: the daily budget, or the quota at base
    photos_skipped: dict[str, str] = field(default_factory=dict)  # id -> why it will not be sent
    photo_quota_full: str = ""  # the collector's words when this device's photo quota at base is full
    photo_problem: str = ""  # the collector answered a photo in a way this device cannot use (an old collector)
    photos_deferred_until: datetime | None = None  # the daily budget is spent until then (UTC)


class SyncSession:
    """Pushes a store's unsynced rows through a client, batch by batch. One thread at a time."""

    def __init__(
        self,
        store: SqliteStore,
        client: CollectorClient,
        *,
        batch_size: int = 100,
        include_photos: str = "thumbnail",
        body_budget: int = BODY_BUDGET,
        photo_policy: PhotoPolicy | None = None,
        photo_mb_per_day: float = 100,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.client = client
        self.batch_size = batch_size
        self.include_photos = include_photos
        self.body_budget = body_budget
        self.photo_policy = photo_policy or PhotoPolicy(mode="none")
        self.photo_budget_bytes = int(photo_mb_per_day * MB)  # per UTC day; 0 = no limit
        self.clock = clock
        self.photos_held_until: datetime | None = None  # no photo pass before then (budget spent, quota full)
        self.photo_quota_full = ""  # the collector's words while it says the quota is full
        self.photo_problem = ""  # the collector's words while it answers photos in a way this device cannot use
        self.refused: dict[str, str] = {}  # held back for this session's life; retried after a restart
        self._no_full_photo: set[str] = set()

    @classmethod
    def for_config(cls, store: SqliteStore, client: CollectorClient, cfg: Config) -> SyncSession:
        """The session `appliance sync` and the daemon's worker both use: batch size and photos from [sync]."""
        return cls(
            store,
            client,
            batch_size=cfg.sync.batch_size,
            include_photos=cfg.sync.include_photos,
            photo_policy=PhotoPolicy.from_config(cfg),
            photo_mb_per_day=cfg.sync.full_photo_mb_per_day,
        )

    def apply_limits(self, info: CollectorInfo) -> None:
        """Pack batches to what the collector said it takes (whoami), so none is cut off for its size."""
        if info.max_request_bytes:
            self.body_budget = min(self.body_budget, int(info.max_request_bytes * 0.9))
        if info.max_records:
            self.batch_size = min(self.batch_size, info.max_records)

    def push_pending(
        self,
        report: PassReport | None = None,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_batch: Callable[[PassReport], None] | None = None,
    ) -> PassReport:
        """Send until nothing is waiting; raises CollectorError on a failure (`report` keeps what was done)."""
        report = report if report is not None else PassReport()
        while not should_stop():
            rows = [
                r for r in self.store.unsynced(limit=self.batch_size + len(self.refused)) if r["id"] not in self.refused
            ]
            if not rows:
                break
            ids, parts = self._pack(rows[: self.batch_size], report)
            try:
                reply = self.client.push_encoded(ids, parts)
            except BatchTooLarge as exc:
                self._shrink(exc, ids)
                continue
            except RecordsRejected as exc:
                self._hold_back(exc, ids, report)
                continue
            acknowledged = [rid for rid in ids if rid in reply.statuses]
            if not acknowledged:
                raise CollectorError("the collector acknowledged none of the batch; will retry later")
            self.store.mark_synced(acknowledged, datetime.now(UTC))
            report.batches += 1
            report.sent += len(acknowledged)
            report.stored += sum(1 for rid in acknowledged if reply.statuses[rid] == protocol.STORED)
            report.duplicates += sum(1 for rid in acknowledged if reply.statuses[rid] == protocol.DUPLICATE)
            if on_batch:
                on_batch(report)
        if not should_stop():
            self.push_photos(report, should_stop=should_stop)
        return report

    # ---- full photos, after the records ---------------------------------------------------

    def photos_pending(self) -> bool:
        """Whether a photo pass has anything to do now (no network): the worker asks before waking the link."""
        if not self.photo_policy.sends_any:
            return False
        if self.photos_held_until is not None and self.clock() < self.photos_held_until:
            return False
        return bool(self.store.photos_to_send(limit=1))

    def retry_photos_now(self) -> None:
        """Forget a quota-full hold (someone raised the quota and asked to sync now)."""
        if self.photo_quota_full or self.photo_problem:
            self.photos_held_until = None

    def push_photos(
        self, report: PassReport | None = None, *, should_stop: Callable[[], bool] = lambda: False
    ) -> PassReport:
        """Send the full photos base wants of the records it has, oldest first, one per request.

        Each is marked only once base answered stored or duplicate, so one cut off is sent again
        (base answers duplicate when it kept it). Raises CollectorError like push_pending.
        """
        report = report if report is not None else PassReport()
        if not self.photo_policy.sends_any:
            return report
        now = self.clock()
        if self.photos_held_until is not None and now < self.photos_held_until:
            report.photo_quota_full, report.photo_problem = self.photo_quota_full, self.photo_problem
            held_by_base = self.photo_quota_full or self.photo_problem
            report.photos_deferred_until = None if held_by_base else self.photos_held_until
            return report
        self.photos_held_until, self.photo_quota_full, self.photo_problem = None, "", ""
        after: str | None = None
        while not should_stop():
            rows = self.store.photos_to_send(limit=PHOTO_CHUNK, after=after)
            if not rows:
                break
            after = rows[-1]["id"]
            wanted = [row for row in rows if self.photo_policy.wants(row)]
            unwanted = [row["id"] for row in rows if not self.photo_policy.wants(row)]
            self.store.mark_photos_skipped(unwanted, "not wanted", self.clock())
            for row in wanted:
                if should_stop():
                    return report
                if self.photos_held_until is not None:
                    report.photos_deferred += 1
                    continue
                self._send_photo(row, report)
        return report

    def _send_photo(self, row: dict[str, Any], report: PassReport) -> None:
        """One photo: checked against its record, within the day's budget, then PUT; marked by the reply."""
        rid = row["id"]
        data = self._readable_photo(row, report)
        if data is None:
            return
        now = self.clock()
        if self.photo_budget_bytes:
            if len(data) > self.photo_budget_bytes:
                self._skip(rid, f"larger ({len(data)} bytes) than a day's budget (full_photo_mb_per_day)", report)
                return
            midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            if self.store.photo_bytes_sent_since(midnight) + len(data) > self.photo_budget_bytes:
                self.photos_held_until = midnight + timedelta(days=1)
                report.photos_deferred_until = self.photos_held_until
                report.photos_deferred += 1
                log.info("today's photo budget is spent; the rest go from %s UTC", f"{self.photos_held_until:%Y-%m-%d}")
                return
        try:
            status = self.client.put_photo(row["photo_sha256"], data)
        except PhotoQuotaFull as exc:
            self.photos_held_until = now + QUOTA_RETRY
            self.photo_quota_full = report.photo_quota_full = str(exc)
            report.photos_deferred += 1
            log.warning("base keeps no more photos of this device (%s); records keep syncing", exc)
            return
        except PhotoNotWanted as exc:
            self._skip(rid, f"base has no record naming it ({exc})", report)
            return
        except PhotoRefused as exc:
            self._skip(rid, f"refused by base ({exc})", report)
            return
        except BatchTooLarge as exc:
            self._skip(rid, f"too large for the collector ({exc})", report)
            return
        except CollectorError as exc:
            if type(exc) is not CollectorError:
                raise  # offline, interrupted, busy, token: as for records, the photo is sent again later
            # The collector answered, but not as the photo contract says (one older than this device):
            # the records are at base already, so hold the photos back instead of failing the sync.
            self.photos_held_until = now + QUOTA_RETRY
            self.photo_problem = report.photo_problem = str(exc)
            report.photos_deferred += 1
            log.warning("full photos held back: %s", exc)
            return
        self.store.mark_photo_sent(rid, status, len(data), self.clock())
        report.photos_sent += 1
        report.photo_duplicates += int(status == protocol.DUPLICATE)

    def _readable_photo(self, row: dict[str, Any], report: PassReport) -> bytes | None:
        """The photo's bytes when they are the ones the record names; else it is skipped, said why."""
        if row.get("photo_pruned_at"):
            self._skip(row["id"], "the photo was deleted to free space (after an export)", report)
            return None
        try:
            data = self.store.photo_file(row).read_bytes()
        except (OSError, ValueError) as exc:
            self._skip(row["id"], f"the photo cannot be read ({exc})", report)
            return None
        if protocol.sha256_hex(data) != row.get("photo_sha256"):
            self._skip(row["id"], "the photo is damaged (its SHA-256 is not the one recorded)", report)
            return None
        return data

    def _skip(self, rid: str, reason: str, report: PassReport) -> None:
        log.warning("full photo of %s not sent: %s", rid, reason)
        self.store.mark_photos_skipped([rid], reason, self.clock())
        report.photos_skipped[rid] = reason

    # ---- records ------------------------------------------------------------------------------

    def _pack(self, rows: list[dict[str, Any]], report: PassReport) -> tuple[list[str], list[bytes]]:
        """As many rows as fit the body budget (at least one), encoded."""
        ids: list[str] = []
        parts: list[bytes] = []
        size = 64
        for row in rows:
            part = encode_record(self._record(row, report))
            too_large = len(part) + 64 > self.body_budget  # even alone
            if too_large and row["id"] not in self._no_full_photo and protocol.PHOTO_FIELD.encode() in part:
                log.warning("%s with its photo is larger than the collector takes; sending a thumbnail", row["id"])
                self._no_full_photo.add(row["id"])
                report.without_photo += 1
                part = encode_record(self._record(row, report))
            if parts and size + len(part) + 1 > self.body_budget:
                break
            ids.append(row["id"])
            parts.append(part)
            size += len(part) + 1
        return ids, parts

    def _record(self, row: dict[str, Any], report: PassReport) -> dict[str, Any]:
        if self.include_photos == "none":
            return protocol.record_from_row(row)
        jpeg = self._photo_bytes(row)
        if jpeg is None:
            report.without_photo += 1
            return protocol.record_from_row(row)
        thumbnail = make_thumbnail(jpeg)
        full = None
        if self.include_photos == "full" and row["id"] not in self._no_full_photo and not self._goes_alone(row):
            if protocol.sha256_hex(jpeg) == row.get("photo_sha256"):
                full = jpeg
            else:
                log.warning(
                    "photo of %s does not match its recorded SHA-256 (damaged); sending the thumbnail", row["id"]
                )
                report.without_photo += 1
        return protocol.record_from_row(row, thumbnail=thumbnail, photo=full)

    def _goes_alone(self, row: dict[str, Any]) -> bool:
        """The photo pass sends this record's full photo on its own: the batch carries its thumbnail only."""
        return self.photo_policy.wants(row)

    def _photo_bytes(self, row: dict[str, Any]) -> bytes | None:
        try:
            return self.store.photo_file(row).read_bytes()
        except (OSError, ValueError) as exc:
            log.warning("photo of %s cannot be read (%s); sending the record without it", row["id"], exc)
            return None

    def _shrink(self, exc: BatchTooLarge, ids: list[str]) -> None:
        if len(ids) > 1:
            limit = exc.max_bytes if exc.max_bytes else self.body_budget // 2
            self.body_budget = max(1024, min(self.body_budget // 2, int(limit * 0.9)))  # ends at one record a batch
            log.info("the collector takes smaller batches; now packing up to %d bytes", self.body_budget)
            return
        rid = ids[0]
        if self.include_photos == "full" and rid not in self._no_full_photo:
            log.warning("%s with its full photo is too large for the collector; sending it with a thumbnail", rid)
            self._no_full_photo.add(rid)
            return
        self.refused[rid] = f"too large for the collector even alone ({exc})"

    def _hold_back(self, exc: RecordsRejected, ids: list[str], report: PassReport) -> None:
        named = {str(e.get("id")): str(e.get("reason", "refused")) for e in exc.errors if e.get("id") in ids}
        if not named:
            raise CollectorError(f"{exc} (naming no record of this batch)")
        for rid, reason in named.items():
            log.error("the collector refused diagnosis %s: %s; it stays on this device", rid, reason)
        self.refused.update(named)
        report.refused.update(named)


def check_owner(client: CollectorClient, cfg: Config) -> CollectorInfo:
    """Ask the collector whose token this is; another device's token stops sync before anything is sent."""
    info = client.whoami()
    owner = info.device_id
    if owner != cfg.device_id:
        raise SyncSetupError(
            f"the token belongs to {owner!r} but this device is {cfg.device_id!r}: set [device] id = "
            f'"{owner}" or issue a token for {cfg.device_id!r}',
            "token is for another device",
        )
    return info
