"""USB export of the diagnosis log, and the storage policy that decides when photos may be freed.

Daemon:  report = Exporter(store, cfg).run(find_stick(cfg), progress=export_screens.DisplayProgress(show, kick))
CLI:     cmd_export(cfg, to, full, auto, device)
Policy:  make_room(store, cfg) -> prune_exported_photos(store, keep_free_bytes)
"""

from __future__ import annotations

from appliance.errors import ExportError
from appliance.export.command import cmd_export
from appliance.export.exporter import Exporter, ExportReport, Progress
from appliance.export.media import Medium, check_medium, describe, eject, find_stick, find_sticks
from appliance.export.policy import make_room
from appliance.store.pruning import PruneReport, prune_exported_photos

__all__ = [
    "ExportError",
    "ExportReport",
    "Exporter",
    "Medium",
    "Progress",
    "PruneReport",
    "check_medium",
    "cmd_export",
    "describe",
    "eject",
    "find_stick",
    "find_sticks",
    "make_room",
    "prune_exported_photos",
]
