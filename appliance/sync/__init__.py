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

from appliance.errors import SyncSetupError
from appliance.sync.command import cmd_sync
from appliance.sync.session import PassReport, SyncSession, check_owner, client_from_config
from appliance.sync.state import SyncState, SyncStatus
from appliance.sync.thumbnail import make_thumbnail
from appliance.sync.token import read_token
from appliance.sync.worker import SyncWorker, backoff_delay

__all__ = [
    "PassReport",
    "SyncSession",
    "SyncSetupError",
    "SyncState",
    "SyncStatus",
    "SyncWorker",
    "backoff_delay",
    "check_owner",
    "client_from_config",
    "cmd_sync",
    "make_thumbnail",
    "read_token",
]
