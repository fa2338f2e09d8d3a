"""USB export of the diagnosis log, and the storage policy that decides when photos may be freed.

Daemon:  report = Exporter(store, cfg).run(find_stick(cfg), progress=export_screens.DisplayProgress(show, kick))
CLI:     cmd_export(cfg, to, full, auto, device)
Policy:  storage_status(free, cfg.storage), prune_exported_photos(store, keep_free_bytes), make_room(store, cfg)
"""

from __future__ import annotations

from appliance.export.command import cmd_export
from appliance.export.errors import ExportError
from appliance.export.exporter import Exporter, ExportReport, Progress
from appliance.export.media import Medium, check_medium, describe, eject, find_stick, find_sticks
from appliance.export.policy import (
    PruneReport,
    StorageLevel,
    StorageStatus,
    make_room,
    prune_exported_photos,
    storage_status,
)

__all__ = [
    "ExportError",
    "ExportReport",
    "Exporter",
    "Medium",
    "Progress",
    "PruneReport",
    "StorageLevel",
    "StorageStatus",
    "check_medium",
    "cmd_export",
    "describe",
    "eject",
    "find_stick",
    "find_sticks",
    "make_room",
    "prune_exported_photos",
    "storage_status",
]
