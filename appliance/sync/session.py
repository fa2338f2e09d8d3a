"""One device's push: its unsynced rows through a collector client, batch by batch, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from appliance import __version__
from appliance.config import Config
from appliance.errors import SyncSetupError
from appliance.store.sqlite_store import SqliteStore
from appliance.sync.thumbnail import make_thumbnail
from appliance.sync.token import read_token
from leaf_wire import protocol
from leaf_wire.client import (
    BatchTooLarge,
    CollectorClient,
    CollectorError,
    CollectorInfo,
    RecordsRejected,
    encode_record,
)

log = logging.getLogger("appliance.sync")


BODY_BUDGET = 8 * 1024 * 1024  # bytes per request until the collector says its own limit


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
    ) -> None:
        self.store = store
        self.client = client
        self.batch_size = batch_size
        self.include_photos = include_photos
        self.body_budget = body_budget
        self.refused: dict[str, str] = {}  # held back for this session's life; retried after a restart
        self._no_full_photo: set[str] = set()

    @classmethod
    def for_config(cls, store: SqliteStore, client: CollectorClient, cfg: Config) -> SyncSession:
        """The session `appliance sync` and the daemon's worker both use: batch size and photos from [sync]."""
        return cls(store, client, batch_size=cfg.sync.batch_size, include_photos=cfg.sync.include_photos)

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
        return report

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
        if self.include_photos == "full" and row["id"] not in self._no_full_photo:
            if protocol.sha256_hex(jpeg) == row.get("photo_sha256"):
                full = jpeg
            else:
                log.warning(
                    "photo of %s does not match its recorded SHA-256 (damaged); sending the thumbnail", row["id"]
                )
                report.without_photo += 1
        return protocol.record_from_row(row, thumbnail=thumbnail, photo=full)

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
