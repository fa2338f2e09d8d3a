"""Which mounted file system is a USB stick, and whether it can take an export.

Raspberry Pi OS Lite does not automount: the udev rule and export unit mount a stick under
/media/leaf-appliance/<sdX1> (a desktop puts it under /media/<user>/<LABEL>). The mount table
says what is mounted where; sysfs says whether the disk behind it is removable or on USB
(USB hard drives and some sticks report removable=0 but sit below a USB controller). The SD
card the appliance runs from is never a target.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import ExportError

MOUNTS = Path("/proc/self/mounts")
SYS_BLOCK = Path("/sys/block")
SYS_CLASS_BLOCK = Path("/sys/class/block")
MB = 1_000_000
UNMOUNT_TIMEOUT_S = 20  # below the service's WatchdogSec=30: every write was already flushed
_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """The mount table writes space, tab, newline and backslash as octal escapes (\\040...)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class Mount:
    device: str
    mount_point: Path
    fstype: str
    options: frozenset[str]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def read_mounts(mounts_file: Path = MOUNTS) -> list[Mount]:
    """Every line of the mount table, in order (a later mount on the same point hides an earlier one)."""
    try:
        text = Path(mounts_file).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mounts.append(Mount(_unescape(parts[0]), Path(_unescape(parts[1])), parts[2], frozenset(parts[3].split(","))))
    return mounts


def mount_of(path: Path, mounts: Sequence[Mount]) -> Mount | None:
    """The mount a path lives on: the longest mount point containing it (the last one, when stacked)."""
    real = Path(os.path.realpath(path))
    best: Mount | None = None
    for mount in mounts:
        inside = real == mount.mount_point or mount.mount_point in real.parents
        if inside and (best is None or len(mount.mount_point.parts) >= len(best.mount_point.parts)):
            best = mount
    return best


@dataclass(frozen=True)
class Medium:
    """A candidate export target and what the system says about the disk behind it."""

    path: Path
    mount: Mount | None
    disk: str | None  # kernel name of the whole disk, e.g. "sda"
    removable: bool  # sysfs removable flag, or the disk hangs off a USB controller
    read_only: bool

    @property
    def device(self) -> str:
        return self.mount.device if self.mount else ""

    @property
    def is_mount_point(self) -> bool:
        return self.mount is not None and Path(os.path.realpath(self.path)) == self.mount.mount_point


def disk_of(device: str, sys_class_block: Path = SYS_CLASS_BLOCK) -> str | None:
    """'/dev/sda1' (or a /dev/disk/by-* link to it) -> 'sda'; None for what is not a block device."""
    if not device.startswith("/dev/"):
        return None
    name = Path(os.path.realpath(device)).name if Path(device).exists() else Path(device).name
    entry = Path(sys_class_block) / name
    if not entry.exists():
        return None
    if (entry / "partition").exists():
        return Path(os.path.realpath(entry)).parent.name
    return name


def disk_is_removable(disk: str, sys_block: Path = SYS_BLOCK) -> bool:
    entry = Path(sys_block) / disk
    try:
        if (entry / "removable").read_text().strip() == "1":
            return True
    except OSError:
        pass
    return "/usb" in os.path.realpath(entry)


def describe(
    path: Path,
    *,
    mounts_file: Path = MOUNTS,
    sys_block: Path = SYS_BLOCK,
    sys_class_block: Path = SYS_CLASS_BLOCK,
) -> Medium:
    mount = mount_of(path, read_mounts(mounts_file))
    disk = disk_of(mount.device, sys_class_block) if mount else None
    removable = disk is not None and disk_is_removable(disk, sys_block)
    return Medium(Path(path), mount, disk, removable, _read_only(path, mount))


def _read_only(path: Path, mount: Mount | None) -> bool:
    if mount is not None and mount.read_only:
        return True
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(path, os.W_OK)


def find_sticks(
    media_root: Path = Path("/media"),
    *,
    mounts_file: Path = MOUNTS,
    sys_block: Path = SYS_BLOCK,
    sys_class_block: Path = SYS_CLASS_BLOCK,
) -> list[Medium]:
    """Mounted removable drives under media_root, writable ones first."""
    root = Path(os.path.realpath(media_root))
    mounts = read_mounts(mounts_file)
    found: dict[Path, Medium] = {}
    for mount in mounts:
        if not (mount.mount_point == root or root in mount.mount_point.parents):
            continue
        if mount_of(mount.mount_point, mounts) != mount:
            continue  # hidden by a later mount on the same point
        disk = disk_of(mount.device, sys_class_block)
        if disk is None or not disk_is_removable(disk, sys_block):
            continue
        found[mount.mount_point] = Medium(mount.mount_point, mount, disk, True, _read_only(mount.mount_point, mount))
    return sorted(found.values(), key=lambda m: (m.read_only, str(m.path)))


def find_stick(cfg: Any = None, **where: Any) -> Path | None:
    """Where to export now: the configured folder (simulation), else the first mounted USB stick."""
    export = getattr(cfg, "export", None)
    folder = getattr(export, "folder", None)
    if folder is not None:
        return Path(folder) if Path(folder).is_dir() else None
    if export is not None:
        where.setdefault("media_root", export.media_root)
    sticks = find_sticks(**where)
    return sticks[0].path if sticks else None


def mount_point_of_device(device: str, *, mounts_file: Path = MOUNTS) -> Path | None:
    """Where /dev/sda1 (as udev names it) is mounted, if it is."""
    wanted = os.path.realpath(device)
    for mount in reversed(read_mounts(mounts_file)):
        if mount.device == device or os.path.realpath(mount.device) == wanted:
            return mount.mount_point
    return None


def check_medium(medium: Medium, *, data_dir: Path | None = None, require_removable: bool = True) -> None:
    """Refuse a target that is not a writable removable drive, with the words a person needs."""
    if not medium.path.is_dir():
        raise ExportError(f"No USB stick at {medium.path}: nothing is mounted there. Plug the stick in again.")
    if data_dir is not None and _same_file_system(medium.path, data_dir):
        raise ExportError(
            f"{medium.path} is on the appliance's own storage (where its records are), not a removable drive; "
            f"plug in a USB stick."
        )
    if require_removable and not medium.removable:
        where = f" ({medium.device})" if medium.device else ""
        raise ExportError(f"{medium.path} is not a removable drive{where}; exports go to a USB stick.")
    if medium.read_only:
        raise ExportError(
            f"The USB stick at {medium.path} is read-only: its write-protect switch may be on, or it has errors "
            f"(check it on a computer). Nothing was exported."
        )


def _same_file_system(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def room_message(free: int, need: int, where: Path) -> str:
    return (
        f"Only {_mb(free, up=False)} MB free on the USB stick at {where}, need {_mb(need, up=True)} MB. "
        f"Free space on the stick or use a bigger one; nothing was exported."
    )


def _mb(n: int, *, up: bool) -> int:
    return -(-n // MB) if up else n // MB


@dataclass(frozen=True)
class EjectResult:
    done: bool  # unmounted: the stick may be pulled out
    message: str


Runner = Callable[..., subprocess.CompletedProcess[str]]


def eject(
    medium: Medium, *, run: Runner = subprocess.run, which: Callable[[str], str | None] = shutil.which
) -> EjectResult:
    """Unmount (and with udisks power off) a stick so every write reached it before anyone says 'safe'."""
    if medium.mount is None or not medium.is_mount_point:
        return EjectResult(False, f"{medium.path} is a folder, not a mounted stick: nothing to unmount.")
    os.sync()
    mount_point, device = medium.mount.mount_point, medium.mount.device
    udisksctl = which("udisksctl")
    if udisksctl:
        unmounted = _call(run, [udisksctl, "unmount", "--no-user-interaction", "-b", device])
        if unmounted is None:
            if medium.disk:
                _call(run, [udisksctl, "power-off", "--no-user-interaction", "-b", f"/dev/{medium.disk}"])
            return EjectResult(True, "The USB stick was unmounted: safe to remove.")
        failure = unmounted
    else:
        failure = "udisksctl is not installed"
    umount = which("umount")
    if umount and os.geteuid() == 0:
        unmounted = _call(run, [umount, str(mount_point)])
        if unmounted is None:
            return EjectResult(True, "The USB stick was unmounted: safe to remove.")
        failure = unmounted
    return EjectResult(
        False,
        f"The stick could not be unmounted ({failure}); every file was written and checked, but wait a few "
        f"seconds (or unmount it) before pulling it out.",
    )


def _call(run: Runner, argv: list[str]) -> str | None:
    """None when the command worked, else why not."""
    try:
        done = run(argv, capture_output=True, text=True, timeout=UNMOUNT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{Path(argv[0]).name}: {exc}"
    if done.returncode != 0:
        return f"{Path(argv[0]).name}: {(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}"
    return None
