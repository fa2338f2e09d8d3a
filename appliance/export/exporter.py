"""Copy the diagnosis log to a USB stick so that "safe to remove" is true when it is shown.

Order of work: snapshot the database; write every file under a temporary name, fsync,
rename, fsync the folder, all inside <stamp>.partial; read every file back (past the page
cache) against the manifest; rename the folder to its final name; only then mark the rows
exported in the store and in the stick's ledger; then unmount. A stick pulled, full or
turned read-only at any point before the marking leaves the store as it was, and the next
export removes the half-written .partial folder and starts again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.errors import ExportError, StoreError
from appliance.export import formats, media
from appliance.export.errors import NOTHING_MARKED, stick_failure
from appliance.export.ledger import add_export, read_ledger, stick_id
from appliance.export.safefs import CHUNK, Folder, is_temp_name
from appliance.store.migrations import utc_timestamp
from appliance.store.snapshot import take_snapshot

EXPORT_ROOT = "leaf-appliance"
PARTIAL_SUFFIX = ".partial"
LOCK_NAME = ".export.lock"
MARGIN_BYTES = 1_000_000  # room kept free on the stick beyond the export itself
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z(-\d+)?")
_FOLDER_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Progress:
    """What the display shows while an export runs; the daemon also kicks its watchdog on every call."""

    phase: str  # preparing | writing | verifying | finishing
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str = ""
    records_done: int = 0  # records whose photo (or, for the last ones, whose table rows) is written / checked
    records_total: int = 0  # the records this export carries: what the end screen counts too

    def text(self) -> str:
        return (
            f"{self.records_done} of {self.records_total} records, "
            f"{self.bytes_done / 1e6:.1f} of {self.bytes_total / 1e6:.1f} MB"
        )


ProgressCallback = Callable[[Progress], None]


@dataclass
class ExportReport:
    target: Path
    stick_id: str
    full: bool
    export_dir: Path | None = None  # the verified folder; None when there was nothing new
    export_name: str = ""  # the same, relative to the stick: leaf-appliance/<device>/<stamp>
    rows: int = 0
    photos: int = 0
    files: int = 0
    bytes: int = 0
    already_on_stick: int = 0
    pruned_photos: list[str] = field(default_factory=list)  # ids whose photo an earlier export holds
    missing_photos: list[str] = field(default_factory=list)  # ids whose photo file is gone from the appliance
    damaged_photos: list[str] = field(default_factory=list)  # ids whose photo no longer matches its checksum
    warnings: list[str] = field(default_factory=list)
    ejected: bool = False
    eject_message: str = ""
    flushed_folder: bool = False  # a folder target (the simulated stick, --to DIR): synced, nothing to unmount

    @property
    def safe_to_remove(self) -> bool:
        return self.ejected or self.flushed_folder

    def summary(self) -> str:
        """A few lines for the terminal and the display."""
        if self.rows:
            lines = [
                f"Exported {self.rows} diagnoses and {self.photos} photos ({self.bytes / 1e6:.1f} MB) "
                f"to {self.export_dir}; every file was read back and matches manifest.sha256."
            ]
        elif self.already_on_stick:
            lines = [f"Nothing new: this stick already has all {self.already_on_stick} diagnoses."]
        else:
            lines = ["No diagnoses recorded yet; nothing to export."]
        if self.pruned_photos:
            lines.append(f"{len(self.pruned_photos)} photos were freed on the appliance after an earlier export.")
        if self.missing_photos:
            lines.append(f"{len(self.missing_photos)} photos were missing on the appliance (see photo_status).")
        if self.damaged_photos:
            lines.append(
                f"{len(self.damaged_photos)} photos no longer match their checksum on the appliance's SD card; "
                f"they were copied as found. Ask the technician to check the card."
            )
        lines += self.warnings
        if self.eject_message:
            lines.append(self.eject_message)
        return "\n".join(lines)


def folder_name(device_id: str) -> str:
    """The device's folder on the stick: FAT-safe characters only, never '.', '..' or hidden."""
    name = _FOLDER_CHARS.sub("_", device_id).strip(". ")
    return name[:64] or "device"


@contextlib.contextmanager
def export_lock(data_dir: Path) -> Iterator[None]:
    """One export at a time per appliance (the long press and the udev-started export can collide)."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise ExportError(f"Cannot create the export lock {path}: {exc.strerror or exc}.") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportError("Another export is already running; wait for it to finish.") from None
        yield
    finally:
        os.close(fd)


class _Ticker:
    """Turns byte counts into Progress calls, often enough for a watchdog."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.phase, self.current = "preparing", ""
        self.files_done = self.files_total = self.bytes_done = self.bytes_total = 0
        self.records_done = self.records_total = 0

    def start(self, phase: str, files_total: int, bytes_total: int, records_total: int) -> None:
        self.phase, self.files_total, self.bytes_total = phase, files_total, bytes_total
        self.records_total = records_total
        self.files_done = self.bytes_done = self.records_done = 0
        self.emit()

    def record_done(self) -> None:
        self.records_done = min(self.records_total, self.records_done + 1)

    def all_records_done(self) -> None:
        self.records_done = self.records_total

    def add_bytes(self, n: int) -> None:
        self.bytes_done += n
        self.emit()

    def file_done(self, name: str) -> None:
        self.files_done += 1
        self.current = name
        self.emit()

    def emit(self) -> None:
        if self.callback is not None:
            self.callback(
                Progress(
                    self.phase,
                    self.files_done,
                    self.files_total,
                    self.bytes_done,
                    self.bytes_total,
                    self.current,
                    self.records_done,
                    self.records_total,
                )
            )


def photo_on_appliance(store: Any, row: dict[str, Any]) -> tuple[str, Path | None, int]:
    """(photo status as the CSV says it, the file, its size): pruned after an earlier export, missing, or there."""
    if row.get("photo_pruned_at"):
        return formats.PHOTO_PRUNED, None, 0
    try:
        source = store.photo_file(row)
        return formats.PHOTO_INCLUDED, source, os.stat(source, follow_symlinks=False).st_size
    except (OSError, ValueError):
        return formats.PHOTO_MISSING, None, 0


def diagnoses_csv(store: Any, rows: list[dict[str, Any]], language: str) -> str:
    """The export's diagnoses.csv for these rows, column for column: what `history --csv` prints."""
    pairs = [(row, photo_on_appliance(store, row)[0]) for row in rows]
    return formats.render_csv(pairs, language).decode("utf-8")


@dataclass
class _Planned:
    row: dict[str, Any]
    status: str
    source: Path | None = None
    size: int = 0


class Exporter:
    """Exports one appliance's diagnoses; see the module docstring for the order of work."""

    def __init__(self, store: Any, cfg: Any, *, now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.device_id = cfg.device_id
        self.language = cfg.device.language
        self._now = now or (lambda: datetime.now(UTC))
        self._doing = "starting"
        self._damaged: list[str] = []

    def run(
        self, target: Path, full: bool = False, progress: ProgressCallback | None = None, *, eject: bool = True
    ) -> ExportReport:
        """Export to the stick (or folder) at `target`; raises ExportError with a message fit for the display."""
        target = Path(target)
        data_dir = Path(self.store.data_dir).resolve()
        resolved = target.resolve()
        if resolved == data_dir or data_dir in resolved.parents:
            raise ExportError(f"{target} is inside the appliance's data folder {data_dir}; export to a USB stick.")
        ticker = _Ticker(progress)
        ticker.emit()
        with export_lock(data_dir), Folder.open_root(target) as root:
            if root.statvfs().f_flag & os.ST_RDONLY:
                raise ExportError(
                    f"The USB stick at {target} is read-only: its write-protect switch may be on, or it has errors "
                    f"(check it on a computer). Nothing was exported."
                )
            try:
                report = self._export(root, target, full, ticker)
            except OSError as exc:
                raise stick_failure(exc, self._doing) from exc
        ticker.phase = "finishing"
        ticker.emit()
        if eject:
            medium = media.describe(target)
            if medium.is_mount_point and medium.removable:  # not a folder (simulation, --to DIR), not a fixed disk
                result = media.eject(medium)
                report.ejected, report.eject_message = result.done, result.message
            elif not medium.is_mount_point:
                # The simulated stick is a folder: once synced it is as safe to "pull" as an unmounted
                # stick, and the simulation shows the same "safe to remove" the Pi does.
                os.sync()
                report.flushed_folder = True
        return report

    # ---- the steps ------------------------------------------------------------------------

    def _export(self, root: Folder, target: Path, full: bool, ticker: _Ticker) -> ExportReport:
        self._doing = f"creating {EXPORT_ROOT}/ on the stick"
        with root.child(EXPORT_ROOT, create=True) as base:
            stick = stick_id(base)
            device_dir = folder_name(self.device_id)
            self._doing = f"creating {EXPORT_ROOT}/{device_dir}/"
            with base.child(device_dir, create=True) as dev:
                self._doing = "tidying up after an earlier, interrupted export"
                _remove_leftovers(dev)
                _remove_leftovers(base)
                self._doing = "reading the stick's ledger"
                ledger = read_ledger(dev)
                received = set() if full else ledger.received(dev)
                try:
                    image, rows = take_snapshot(self.store.db_path, ticker.emit)
                except StoreError as exc:
                    raise ExportError(f"{exc} Nothing was exported.") from exc
                report = ExportReport(target=target, stick_id=stick, full=full)
                send = [row for row in rows if row["id"] not in received]
                report.already_on_stick = len(rows) - len(send)
                if not send:
                    return report
                plan = self._plan(send)
                now = self._now()
                estimate = self._check_room(dev, target, plan, image, now)
                final = _free_name(dev, now.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ"))
                partial = final + PARTIAL_SUFFIX
                self._doing = f"creating {partial}/"
                try:
                    with dev.child(partial, create=True) as work:
                        digests = self._write(work, plan, image, now, full, ticker, estimate)
                        self._verify(work, digests, ticker)
                        identity = work.identity()
                except BaseException:
                    with contextlib.suppress(OSError, ExportError, ValueError):
                        dev.remove_tree(partial)  # give a full stick its room back; a pulled one cannot answer
                    raise
                self._doing = "finishing the export folder"
                dev.rename(partial, final)
                dev.sync()
                export_name = f"{EXPORT_ROOT}/{device_dir}/{final}"
                self._check_same_stick(target / export_name, identity)
                ids = [p.row["id"] for p in plan]
                try:
                    self.store.mark_exported(ids, stick, export_name, now)
                except Exception as exc:
                    raise ExportError(
                        f"The export was written and checked on the stick ({export_name}), but the appliance "
                        f"could not record it ({exc}); the next export will send these diagnoses again."
                    ) from exc
                self._doing = "updating the stick's ledger"
                try:
                    add_export(dev, ledger, export=final, finished_at=utc_timestamp(), stick=stick, full=full, ids=ids)
                except (OSError, ExportError) as exc:
                    report.warnings.append(
                        f"The stick's ledger could not be updated ({exc}); this stick will receive these "
                        f"diagnoses again next time."
                    )
        report.export_dir = target / export_name
        report.export_name = export_name
        report.rows = len(plan)
        report.photos = sum(p.status == formats.PHOTO_INCLUDED for p in plan)
        report.files = len(digests) + 1
        report.bytes = ticker.bytes_total
        for p in plan:
            if p.status == formats.PHOTO_PRUNED:
                report.pruned_photos.append(p.row["id"])
            elif p.status == formats.PHOTO_MISSING:
                report.missing_photos.append(p.row["id"])
        report.damaged_photos = self._damaged
        return report

    def _plan(self, rows: list[dict[str, Any]]) -> list[_Planned]:
        return [_Planned(row, *photo_on_appliance(self.store, row)) for row in rows]

    def _texts(self, plan: list[_Planned], now: datetime, full: bool) -> dict[str, bytes]:
        pairs = [(p.row, p.status) for p in plan]
        info = {
            "device_id": self.device_id,
            "exported_at": utc_timestamp(now),
            "rows": len(plan),
            "photos": sum(p.status == formats.PHOTO_INCLUDED for p in plan),
            "full": full,
            "software": __version__,
        }
        return {
            formats.CSV_NAME: formats.render_csv(pairs, self.language),
            formats.JSONL_NAME: formats.render_jsonl(pairs),
            formats.README_NAME: formats.render_readme(info),
        }

    def _check_room(
        self, dev: Folder, target: Path, plan: list[_Planned], image: bytes, now: datetime
    ) -> dict[str, bytes]:
        """Refuse before writing when the stick cannot take it all; returns the text files as planned."""
        texts = self._texts(plan, now, False)
        files = len(plan) + len(texts) + 2
        payload = sum(p.size for p in plan) + sum(map(len, texts.values())) + len(image) + 100 * files
        vfs = dev.statvfs()
        need = room_needed(payload, files, vfs.f_bsize)
        free = vfs.f_bavail * vfs.f_frsize
        if free < need:
            raise ExportError(media.room_message(free, need, target))
        return texts

    def _write(
        self,
        work: Folder,
        plan: list[_Planned],
        image: bytes,
        now: datetime,
        full: bool,
        ticker: _Ticker,
        estimate: dict[str, bytes],
    ) -> dict[str, str]:
        photo_bytes = sum(p.size for p in plan if p.status == formats.PHOTO_INCLUDED)
        total_files = sum(p.status == formats.PHOTO_INCLUDED for p in plan) + len(estimate) + 2
        ticker.start("writing", total_files, photo_bytes + len(image) + sum(map(len, estimate.values())), len(plan))
        digests: dict[str, str] = {}
        self._damaged = []
        self._doing = f"creating {formats.PHOTOS_DIR}/"
        with work.child(formats.PHOTOS_DIR, create=True) as photos:
            for item in plan:
                if item.status != formats.PHOTO_INCLUDED or item.source is None:
                    continue
                name = formats.photo_name(item.row)
                source = _open_source(item.source)
                if source is None:  # deleted since the plan (pruned by the service meanwhile)
                    item.status = formats.PHOTO_MISSING
                    ticker.bytes_total -= item.size
                    ticker.files_total -= 1
                    ticker.record_done()
                    continue
                self._doing = f"writing {formats.PHOTOS_DIR}/{name}"
                digest, _ = photos.write_file(name, _read_source(source, item.source), ticker.add_bytes)
                if digest != item.row.get("photo_sha256"):
                    self._damaged.append(item.row["id"])
                digests[f"{formats.PHOTOS_DIR}/{name}"] = digest
                ticker.record_done()
                ticker.file_done(name)
            self._doing = f"writing {formats.PHOTOS_DIR}/"
            photos.sync()
        texts = self._texts(plan, now, full)  # the photo statuses are final now
        ticker.bytes_total += sum(map(len, texts.values())) - sum(map(len, estimate.values()))
        for name, data in [(formats.SNAPSHOT_NAME, image), *texts.items()]:
            self._doing = f"writing {name}"
            digests[name], _ = work.write_bytes(name, data, ticker.add_bytes)
            ticker.all_records_done()  # records without a photo are in the tables only
            ticker.file_done(name)
        manifest = formats.render_manifest(digests)
        self._doing = f"writing {formats.MANIFEST_NAME}"
        work.write_bytes(formats.MANIFEST_NAME, manifest)
        ticker.file_done(formats.MANIFEST_NAME)
        work.sync()
        return digests

    def _verify(self, work: Folder, digests: dict[str, str], ticker: _Ticker) -> None:
        """Read everything back from the stick and compare with what was written, before anything is marked."""
        ticker.start("verifying", len(digests) + 1, ticker.bytes_total, ticker.records_total)
        self._doing = "reading the export back from the stick"
        top = {n for n in digests if "/" not in n} | {formats.MANIFEST_NAME, formats.PHOTOS_DIR}
        photo_names = {n.split("/", 1)[1] for n in digests if n.startswith(formats.PHOTOS_DIR + "/")}
        with work.child(formats.PHOTOS_DIR, create=False) as photos:
            if set(work.entries()) != top or set(photos.entries()) != photo_names:
                raise ExportError(
                    f"The stick did not keep the files exactly as written (some are missing or extra). "
                    f"{NOTHING_MARKED}; the stick may be failing: export again, or use another stick."
                )
            manifest = work.read_small(formats.MANIFEST_NAME) or b""
            if formats.parse_manifest(manifest) != digests:
                raise _mismatch(formats.MANIFEST_NAME)
            ticker.file_done(formats.MANIFEST_NAME)
            for name, digest in sorted(digests.items()):
                folder, base = (photos, name.split("/", 1)[1]) if "/" in name else (work, name)
                got, _ = folder.hash_file(base, ticker.add_bytes)
                if got != digest:
                    raise _mismatch(name)
                if folder is photos:
                    ticker.record_done()
                ticker.file_done(name)
        ticker.all_records_done()  # records without a photo are checked with the tables
        ticker.emit()

    def _check_same_stick(self, final_path: Path, identity: tuple[int, int]) -> None:
        """The path must still lead to the folder we wrote: not so after a pull and re-insert."""
        try:
            st = os.stat(final_path, follow_symlinks=False)
        except OSError as exc:
            raise stick_failure(exc, "finishing the export folder") from exc
        if (st.st_dev, st.st_ino) != identity:
            raise ExportError(
                f"The stick changed during the export (was it pulled out and plugged in again?). {NOTHING_MARKED}; "
                f"export again."
            )


def room_needed(payload_bytes: int, files: int, cluster_bytes: int) -> int:
    """Bytes an export takes on the stick: each file rounds up to whole clusters (FAT: f_bsize), plus a margin."""
    return payload_bytes + files * max(cluster_bytes, 512) + MARGIN_BYTES


def _mismatch(name: str) -> ExportError:
    return ExportError(
        f"The copy of {name} read back from the stick does not match what was written: the stick is losing data. "
        f"{NOTHING_MARKED}; use another stick."
    )


def _free_name(dev: Folder, stamp: str) -> str:
    name, n = stamp, 1
    while dev.kind(name) is not None or dev.kind(name + PARTIAL_SUFFIX) is not None:
        n += 1
        name = f"{stamp}-{n}"
    return name


def _remove_leftovers(folder: Folder) -> None:
    """Half-written export folders and temporary files from an interrupted run (only names we make)."""
    for name in folder.entries():
        kind = folder.kind(name)
        if kind == "dir" and name.endswith(PARTIAL_SUFFIX) and _STAMP.fullmatch(name[: -len(PARTIAL_SUFFIX)]):
            folder.remove_tree(name)
        elif kind == "file" and is_temp_name(name):
            folder.remove_file(name)


def _open_source(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _source_failure(path, exc) from exc


def _read_source(fd: int, path: Path) -> Iterator[bytes]:
    """A photo from the SD card; its read errors are the appliance's, not the stick's."""
    try:
        while True:
            try:
                block = os.read(fd, CHUNK)
            except OSError as exc:
                raise _source_failure(path, exc) from exc
            if not block:
                return
            yield block
    finally:
        os.close(fd)


def _source_failure(path: Path, exc: OSError) -> ExportError:
    hint = " The SD card may be failing: ask the technician." if exc.errno == errno.EIO else ""
    return ExportError(
        f"Could not read the photo {path} on the appliance ({exc.strerror or exc}). {NOTHING_MARKED}.{hint}"
    )
