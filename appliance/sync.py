"""Sending the diagnosis log to the fleet collector: `appliance sync` once, or a SyncWorker in the daemon.

Exactly once, end to end: a row is marked synced only after the collector acknowledged its id
(stored now, or already had), and the collector ignores an id it already holds. So a batch cut
off anywhere (network gone, collector killed after its commit, power cut on the Pi) is simply
sent again and nothing is lost or doubled.

The worker opens its own SqliteStore (its own connections: the store allows one writer thread
per instance, and SQLite's busy_timeout arbitrates with the daemon's), runs in its own thread,
and is only ever *read* by the daemon through `state` (an immutable snapshot), so the button
loop never waits for the network.
"""

from __future__ import annotations

import io
import logging
import random
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from appliance import __version__
from appliance.config import Config
from appliance.errors import StoreError, SyncSetupError
from appliance.store.sqlite_store import SqliteStore, count_unsynced
from leaf_wire import protocol
from leaf_wire.client import (
    BatchTooLarge,
    CollectorBusy,
    CollectorClient,
    CollectorError,
    CollectorInfo,
    CollectorInterrupted,
    CollectorUnreachable,
    RecordsRejected,
    encode_record,
)

log = logging.getLogger("appliance.sync")

THUMBNAIL_SIDE = 160  # pixels, longest side: enough to recognise a leaf on the agronomist's page
THUMBNAIL_QUALITY = 70
BODY_BUDGET = 8 * 1024 * 1024  # bytes per request until the collector says its own limit
BACKOFF_FIRST_S = 15.0
BACKOFF_CAP_S = 900.0
STOP_TIMEOUT_S = 5.0


# ---------------------------------------------------------------- state for the ready screen


class SyncStatus(StrEnum):
    OFF = "off"  # [sync] enabled = false
    STARTING = "starting"  # no attempt finished yet
    SYNCING = "syncing"
    SYNCED = "synced"  # the last attempt reached the collector
    OFFLINE = "offline"  # could not reach it, the connection broke, or it asked to come back later
    ERROR = "error"  # the collector said no, or the device is not set up right


@dataclass(frozen=True)
class SyncState:
    status: SyncStatus
    waiting: int | None = None  # rows not yet acknowledged (None: not counted yet)
    last_success: datetime | None = None  # UTC
    problem: str = ""  # a few words for the screen, e.g. "token refused"
    detail: str = ""  # the full message, for the log and `appliance sync`
    refused: int = 0  # records the collector will not take (kept on the device)

    def line(self, now: datetime | None = None) -> str:
        """One line for the ready screen: "Synced 12:04, 0 waiting", "Offline, 37 waiting", "Sync error: ..."."""
        waiting = "" if self.waiting is None else f", {self.waiting} waiting"
        if self.status == SyncStatus.OFF:
            return "Sync off"
        if self.status == SyncStatus.ERROR:
            return f"Sync error: {self.problem or 'see the log'}"
        if self.status == SyncStatus.OFFLINE:
            label = {"interrupted": "Sync interrupted", "collector busy": "Collector busy"}.get(self.problem, "Offline")
            return f"{label}{waiting}"
        if self.status == SyncStatus.SYNCING:
            return f"Syncing{waiting}"
        if self.last_success is None:
            return f"Not synced yet{waiting}"
        return f"Synced {_when(self.last_success, now)}{waiting}"


def _when(moment: datetime, now: datetime | None) -> str:
    local = moment.astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return f"{local:%H:%M}" if local.date() == today else f"{local.day} {local:%b} {local:%H:%M}"


# ---------------------------------------------------------------- pieces


def read_token(path: Path) -> str:
    """The device token, refusing a file other users could read (it is the device's password)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SyncSetupError(
            f"no token file at {path}: issue a token with `leaf-collector token issue DEVICE_ID` on the collector "
            f"and write it there (mode 600, owned by the service user), or set sync.token_file",
            "no token file",
        ) from None
    except (PermissionError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise SyncSetupError(f"cannot read the token file {path}: {exc}", "token file unreadable") from None
    if mode & 0o007:
        raise SyncSetupError(
            f"the token file {path} is readable by other users; run `chmod 600 {path}`", "token file not private"
        )
    if not text or any(c.isspace() for c in text):
        raise SyncSetupError(
            f"the token file {path} must hold exactly one token (as printed by leaf-collector)", "bad token file"
        )
    return text


def make_thumbnail(jpeg: bytes, side: int = THUMBNAIL_SIDE) -> bytes | None:
    """A small JPEG of the photo, or None when it cannot be decoded (the record is sent without one)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            image.draft("RGB", (side, side))  # JPEG decodes at 1/2..1/8 scale: fast on a Pi
            small = image.convert("RGB")
            small.thumbnail((side, side))
            out = io.BytesIO()
            small.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        log.warning("cannot make a thumbnail: %s", exc)
        return None


def backoff_delay(failures: int, interval_s: float, rng: random.Random) -> float:
    """Seconds before retry number `failures`: doubling from 15 s, capped, with jitter so a fleet spreads out."""
    cap = max(BACKOFF_CAP_S, interval_s)
    raw = min(cap, min(BACKOFF_FIRST_S, interval_s) * 2 ** max(0, failures - 1))
    return raw / 2 + rng.uniform(0, raw / 2)


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


# ---------------------------------------------------------------- one device's push


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


# ---------------------------------------------------------------- `appliance sync`


def cmd_sync(cfg: Config, *, out: TextIO | None = None) -> int:
    """Send every waiting diagnosis now and say what happened. 0: all sent; 1: some left; 2: not set up."""
    out = out or sys.stdout
    if not cfg.sync.enabled:
        print("note: background sync is off ([sync] enabled = false); sending once now", file=out)
    try:
        client = client_from_config(cfg)
    except SyncSetupError as exc:
        print(f"sync: {exc}", file=out)
        return 2
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        waiting = count_unsynced(cfg.db_path)
        try:
            info = check_owner(client, cfg)
        except CollectorError as exc:
            print(f"sync: {exc}\n{waiting} diagnoses waiting; nothing sent", file=out)
            return 1
        except SyncSetupError as exc:
            print(f"sync: {exc}; nothing sent", file=out)
            return 2
        owner = info.device_id
        if waiting == 0:
            print(f"nothing waiting; {client.base_url} accepts this device's token ({owner})", file=out)
            return 0
        print(f"{waiting} diagnoses waiting; sending to {client.base_url} as {owner}", file=out)
        session = SyncSession.for_config(store, client, cfg)
        session.apply_limits(info)
        report = PassReport()

        def progress(r: PassReport) -> None:
            print(f"  batch {r.batches}: {r.sent} acknowledged so far", file=out)

        try:
            session.push_pending(report, on_batch=progress)
            failure = None
        except CollectorError as exc:
            failure = exc
        left = count_unsynced(cfg.db_path)
    print(f"sent {report.sent}: {report.stored} stored, {report.duplicates} already there; {left} waiting", file=out)
    if report.without_photo:
        print(f"{report.without_photo} sent without their photo (missing, damaged or too large)", file=out)
    for rid, reason in report.refused.items():
        print(f"refused by the collector, kept here: {rid}: {reason}", file=out)
    if failure is not None:
        print(f"sync stopped: {failure}\nthe rest is sent next time (nothing is lost or sent twice)", file=out)
        return 1
    return 1 if report.refused else 0


# ---------------------------------------------------------------- the daemon's worker


class SyncWorker:
    """Background sync for the daemon: start(), read `state`/`line()`, stop(). Nothing here blocks the caller.

    on_change(state) is called from the worker thread whenever the state changes: keep it short
    (e.g. set a flag for the main loop to redraw the ready screen).
    """

    def __init__(
        self,
        cfg: Config,
        *,
        on_change: Callable[[SyncState], None] | None = None,
        first_delay_s: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.on_change = on_change
        self.first_delay_s = first_delay_s
        self._rng = rng or random.Random()
        self._state = SyncState(SyncStatus.STARTING if cfg.sync.enabled else SyncStatus.OFF)
        self._state_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._store: SqliteStore | None = None
        self._session: SyncSession | None = None
        self._info: CollectorInfo | None = None  # the collector's limits, from the first contact
        self._contacted = False

    # ---- called by the daemon (any thread) ------------------------------------------------

    @property
    def state(self) -> SyncState:
        return self._state

    @property
    def enabled(self) -> bool:
        return self.cfg.sync.enabled

    def line(self) -> str:
        return self._state.line()

    def start(self) -> None:
        """Start the thread (does nothing when [sync] enabled = false)."""
        if not self.cfg.sync.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="leaf-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Ask the thread to end and wait up to `timeout`; True when it ended.

        A batch still in flight is harmless to abandon: it was not marked, so it is sent again later.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def sync_now(self) -> None:
        """Try at once (network just came back, a technician asked): skips the wait and the backoff."""
        self._failures = 0
        self._wake.set()

    def note_new_record(self) -> None:
        """The daemon stored a diagnosis: count it as waiting at once (no database access here)."""
        with self._state_lock:
            state = self._state
            if state.waiting is not None:
                self._set(replace(state, waiting=state.waiting + 1))

    # ---- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.first_delay_s
        try:
            while not self._stopping.is_set():
                self._wake.wait(delay)
                self._wake.clear()
                if self._stopping.is_set():
                    break
                delay = self._attempt()
        finally:
            if self._store is not None:
                self._store.close()

    def _attempt(self) -> float:
        """One sync attempt; returns the seconds to wait before the next."""
        interval = float(self.cfg.sync.interval_s)
        try:
            session = self._open_session()
            waiting = count_unsynced(self.cfg.db_path)
            pending = waiting - len(session.refused)
            state = self._state
            settled = state.status == SyncStatus.SYNCED or (state.status == SyncStatus.ERROR and state.refused > 0)
            if settled and pending <= 0:
                self._update(waiting=waiting)  # nothing new to send: no network traffic at all
                return interval
            self._update(status=SyncStatus.SYNCING, waiting=waiting)
            if not self._contacted or pending <= 0:  # first contact, or only to confirm all is well
                self._info = check_owner(session.client, self.cfg)
                session.apply_limits(self._info)
            if pending > 0:
                session.push_pending(should_stop=self._stopping.is_set)
            self._contacted = True
        except CollectorBusy as exc:
            self._fail(SyncStatus.OFFLINE, exc)
            return exc.retry_after_s + self._rng.uniform(0, 5)
        except (CollectorUnreachable, CollectorInterrupted) as exc:
            self._fail(SyncStatus.OFFLINE, exc)
            return backoff_delay(self._failures, interval, self._rng)
        except CollectorError as exc:
            self._fail(SyncStatus.ERROR, exc)
            return backoff_delay(self._failures, interval, self._rng)
        except (SyncSetupError, StoreError, OSError) as exc:
            self._session = None
            self._fail(SyncStatus.ERROR, exc, problem=getattr(exc, "summary", "diagnosis log unavailable"))
            return backoff_delay(self._failures, interval, self._rng)
        except Exception as exc:  # the worker must outlive any bug; the daemon carries on
            log.exception("sync attempt failed")
            self._fail(SyncStatus.ERROR, exc, problem="internal error (see the log)")
            return backoff_delay(self._failures, interval, self._rng)
        self._failures = 0
        refused = len(session.refused)
        left = _safe_count(self.cfg.db_path)
        if refused:
            self._update(
                status=SyncStatus.ERROR,
                waiting=left,
                last_success=datetime.now(UTC),
                problem=f"{refused} record{'s' if refused != 1 else ''} refused",
                detail="; ".join(f"{rid}: {why}" for rid, why in list(session.refused.items())[:3]),
                refused=refused,
            )
        else:
            self._update(status=SyncStatus.SYNCED, waiting=left, last_success=datetime.now(UTC), problem="", detail="")
        return interval

    def _open_session(self) -> SyncSession:
        client = client_from_config(self.cfg)  # reads the token file each time: fixing it needs no restart
        if self._store is None:
            self._store = SqliteStore.open(self.cfg.db_path, self.cfg.data_dir)
        if self._session is None:
            self._session = SyncSession.for_config(self._store, client, self.cfg)
            if self._info is not None:
                self._session.apply_limits(self._info)
        self._session.client = client
        return self._session

    def _fail(self, status: SyncStatus, exc: BaseException, problem: str | None = None) -> None:
        self._failures += 1
        summary = problem or getattr(exc, "summary", "") or type(exc).__name__
        log.warning("sync failed (%s): %s", summary, exc)
        self._update(status=status, waiting=_safe_count(self.cfg.db_path), problem=summary, detail=str(exc))

    def _update(self, **changes: Any) -> None:
        with self._state_lock:
            self._set(replace(self._state, **changes))

    def _set(self, state: SyncState) -> None:
        if state == self._state:
            return
        self._state = state
        if self.on_change is not None:
            try:
                self.on_change(state)
            except Exception:
                log.exception("sync on_change callback failed")


def _safe_count(db_path: Path) -> int | None:
    try:
        return count_unsynced(db_path)
    except Exception:
        return None


__all__ = [
    "PassReport",
    "SyncSession",
    "SyncSetupError",
    "SyncState",
    "SyncStatus",
    "SyncWorker",
    "backoff_delay",
    "client_from_config",
    "cmd_sync",
    "make_thumbnail",
    "read_token",
]
