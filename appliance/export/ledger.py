"""What a stick already holds: its id file and, per device, a ledger of verified exports.

<stick>/leaf-appliance/stick-id            a random UUID, written the first time the stick is used
<stick>/leaf-appliance/<device>/ledger.jsonl  one line per verified export: folder, time, ids

The stick's own ledger decides what an incremental export sends: a diagnosis counts as on the
stick only while the export folder that holds it is still there, so a stick that was wiped,
reformatted or had folders deleted gets those diagnoses again. The store's export_ledger keeps
the appliance's side (which stick got what, when) and marks rows safe to prune.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from appliance.export.safefs import Folder

STICK_ID_NAME = "stick-id"
LEDGER_NAME = "ledger.jsonl"


def stick_id(base: Folder) -> str:
    """The stick's id from <stick>/leaf-appliance/stick-id, written (durably) when missing or unreadable."""
    data = base.read_small(STICK_ID_NAME, limit=4096)
    if data is not None:
        try:
            return str(uuid.UUID(data.decode("ascii").strip()))
        except (UnicodeDecodeError, ValueError):
            pass
    new_id = str(uuid.uuid4())
    base.replace_file(STICK_ID_NAME, (new_id + "\n").encode("ascii"))
    return new_id


@dataclass
class StickLedger:
    entries: list[dict[str, Any]] = field(default_factory=list)
    unreadable_lines: int = 0

    def received(self, folder: Folder) -> set[str]:
        """Ids in exports whose folder is still on the stick."""
        ids: set[str] = set()
        for entry in self.entries:
            name = entry.get("export")
            listed = entry.get("ids")
            if not isinstance(listed, list) or not _plain_name(name) or folder.kind(name) != "dir":
                continue  # hand-edited or crafted: a NUL in a name, "ids": 5 ... counts as not received
            ids.update(i for i in listed if isinstance(i, str))
        return ids

    def render(self) -> bytes:
        return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in self.entries).encode()


def _plain_name(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def read_ledger(device_folder: Folder) -> StickLedger:
    """The device's ledger on this stick; a torn or hand-edited line is skipped, not fatal."""
    data = device_folder.read_small(LEDGER_NAME)
    ledger = StickLedger()
    if not data:
        return ledger
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a crafted line of 100,000 nested [
            ledger.unreadable_lines += 1
            continue
        if isinstance(entry, dict):
            ledger.entries.append(entry)
        else:
            ledger.unreadable_lines += 1
    return ledger


def add_export(
    device_folder: Folder,
    ledger: StickLedger,
    *,
    export: str,
    finished_at: str,
    stick: str,
    full: bool,
    ids: Iterable[str],
) -> None:
    """Append one verified export and swap the ledger in atomically (temp, fsync, rename, fsync dir)."""
    ledger.entries.append(
        {"export": export, "finished_at": finished_at, "stick_id": stick, "full": full, "ids": list(ids)}
    )
    device_folder.replace_file(LEDGER_NAME, ledger.render())
