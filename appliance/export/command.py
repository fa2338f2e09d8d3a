"""`appliance export`: by hand (--to DIR), or started by udev when a stick is plugged in (--auto --device)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from appliance.errors import ExportError
from appliance.export import media
from appliance.export.exporter import Exporter, Progress
from appliance.export.policy import make_room

PRINT_EVERY_S = 2.0


class ProgressPrinter:
    """Progress lines for a terminal or the journal: each phase, then at most one line every few seconds."""

    def __init__(self, out: TextIO, every_s: float = PRINT_EVERY_S) -> None:
        self.out, self.every_s = out, every_s
        self._phase = ""
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.files_total == 0 or (p.phase == self._phase and now - self._last < self.every_s):
            return
        self._phase, self._last = p.phase, now
        print(f"{p.phase}: {p.text()}", file=self.out, flush=True)


def resolve_target(cfg: Any, to: Path | None, device: str | None) -> Path | None:
    """Where to export: --to DIR as given, --device's mount point, else a stick found under export.media_root."""
    if to is not None:
        folder = Path(to).expanduser()
        if not folder.is_dir():
            raise ExportError(
                f"{folder} is not a folder: create it first, or give the folder where the stick is mounted."
            )
        return folder
    if device is not None:
        mount_point = media.mount_point_of_device(device)
        if mount_point is None:
            raise ExportError(
                f"The USB stick {device} is not mounted: it was pulled out, or its file system cannot be read "
                f"(format it as FAT32 or exFAT on a computer and plug it in again)."
            )
        media.check_medium(media.describe(mount_point), data_dir=cfg.data_dir)
        return mount_point
    found = media.find_stick(cfg)
    if found is not None and cfg.export.folder is None:
        media.check_medium(media.describe(found), data_dir=cfg.data_dir)
    return found


def cmd_export(
    cfg: Any,
    to: Path | None,
    full: bool,
    auto: bool,
    device: str | None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Export, printing progress and the result; 0 = done (or nothing to do), 1 = the export failed."""
    from appliance.store import SqliteStore

    out, err = out or sys.stdout, err or sys.stderr
    if auto and not cfg.export.auto_on_insert:
        print("Automatic export is off (export.auto_on_insert = false): hold the button to export.", file=out)
        return 0
    try:
        target = resolve_target(cfg, to, device)
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return 1
    if target is None:
        where = cfg.export.folder or cfg.export.media_root
        print(
            f"error: No USB stick found (looked for a mounted removable drive under {where}). "
            f"Plug one in, or give a folder with --to DIR.",
            file=err,
        )
        return 1
    if not cfg.db_path.exists():
        print(f"No diagnoses recorded yet ({cfg.db_path} does not exist); nothing to export.", file=out)
        return 0
    print(f"Exporting to {target} ({'everything' if full else 'what this stick does not have yet'})", file=out)
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        try:
            report = Exporter(store, cfg).run(target, full=full, progress=ProgressPrinter(out))
        except ExportError as exc:
            print(f"error: {exc}", file=err)
            return 1
        print(report.summary(), file=out)
        if report.rows:
            try:
                pruned = make_room(store, cfg)
            except Exception as exc:  # freeing space is a bonus; the export itself is done
                print(f"warning: could not free space on the appliance: {exc}", file=err)
            else:
                if pruned is not None and pruned.pruned:
                    print(
                        f"Freed {pruned.freed_bytes / 1e6:.0f} MB on the appliance ({pruned.pruned} exported photos).",
                        file=out,
                    )
    if report.ejected:
        print("Safe to remove the USB stick.", file=out)
    return 0
