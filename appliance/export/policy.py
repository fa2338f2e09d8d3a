"""When to prune exported photos: after an export, or when free space falls below the warning level.

The warn/refuse rule itself is the core's (appliance.storage_rule); the pruning (which rows,
which files) belongs to the store (appliance.store.pruning).
"""

from __future__ import annotations

from typing import Any

from appliance.storage_rule import MIB
from appliance.store.pruning import PruneReport, prune_exported_photos


def make_room(store: Any, cfg: Any) -> PruneReport | None:
    """What the daemon calls after an export or when space runs low: prune up to storage.warn_below_mb free."""
    if not cfg.export.prune_exported_photos:
        return None
    keep = cfg.storage.warn_below_mb * MIB
    if store.free_bytes() >= keep:
        return None
    return prune_exported_photos(store, keep)
