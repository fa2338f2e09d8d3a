"""The daemon's background sync: its own thread, store connection and back-off; read only through `state`."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.config import Config
from appliance.errors import StoreError, SyncSetupError
from appliance.store.sqlite_store import SqliteStore, count_unsynced
from appliance.sync.session import SyncSession, check_owner, client_from_config
from appliance.sync.state import SyncState, SyncStatus
from appliance.words import ENGLISH
from leaf_wire.client import (
    CollectorBusy,
    CollectorError,
    CollectorInfo,
    CollectorInterrupted,
    CollectorUnreachable,
)

log = logging.getLogger("appliance.sync")


BACKOFF_FIRST_S = 15.0
BACKOFF_CAP_S = 900.0
STOP_TIMEOUT_S = 5.0


def backoff_delay(failures: int, interval_s: float, rng: random.Random) -> float:
    """Seconds before retry number `failures`: doubling from 15 s, capped, with jitter so a fleet spreads out."""
    cap = max(BACKOFF_CAP_S, interval_s)
    raw = min(cap, min(BACKOFF_FIRST_S, interval_s) * 2 ** max(0, failures - 1))
    return raw / 2 + rng.uniform(0, raw / 2)


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

    def line(self, language: str = ENGLISH) -> str:
        return self._state.line(language=language)

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
        if self._session is not None:
            self._session.retry_photos_now()
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
            photos = session.photos_pending()
            if settled and pending <= 0 and not photos:
                self._update(waiting=waiting)  # nothing new to send: no network traffic at all
                return interval
            self._update(status=SyncStatus.SYNCING, waiting=waiting)
            if not self._contacted or pending <= 0:  # first contact, or only to confirm all is well
                self._info = check_owner(session.client, self.cfg)
                session.apply_limits(self._info)
            if pending > 0 or photos:  # the records first, then the full photos base wants
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
        quota_full = bool(session.photo_quota_full)  # shown on the line; records still sync
        if refused:
            self._update(
                status=SyncStatus.ERROR,
                waiting=left,
                last_success=datetime.now(UTC),
                problem=f"{refused} record{'s' if refused != 1 else ''} refused",
                detail="; ".join(f"{rid}: {why}" for rid, why in list(session.refused.items())[:3]),
                refused=refused,
                photo_quota_full=quota_full,
            )
        else:
            self._update(
                status=SyncStatus.SYNCED,
                waiting=left,
                last_success=datetime.now(UTC),
                problem="",
                detail=session.photo_quota_full or session.photo_problem,
                photo_quota_full=quota_full,
            )
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
