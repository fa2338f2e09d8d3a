"""Finding the USB stick: the mount table and sysfs, written as real files in the kernel's formats."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from appliance.errors import ExportError
from appliance.export import check_medium, describe, eject, find_stick, find_sticks
from appliance.export.media import Medium, Mount, mount_of, mount_point_of_device, read_mounts, room_message
from tests.helpers.torture.support import config, tmpfs


def fake_system(tmp_path: Path) -> dict[str, Path]:
    """A Pi with its SD card (mmcblk0), a USB stick (sda, removable), a USB disk reporting removable=0 (sdb),
    a read-only stick (sdc) and a SATA-like fixed disk mounted under /media (vda)."""
    sys = tmp_path / "sys"
    disks = {
        "mmcblk0": ("platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa", "0"),
        "sda": ("platform/scb/fd500000.pcie/pci0000:00/0000:01:00.0/usb2/2-1/2-1:1.0/host0/target0:0:0/0:0:0:0", "1"),
        "sdb": ("platform/scb/fd500000.pcie/pci0000:00/0000:01:00.0/usb2/2-2/2-2:1.0/host1/target1:0:0/1:0:0:0", "0"),
        "sdc": ("platform/scb/fd500000.pcie/pci0000:00/0000:01:00.0/usb2/2-3/2-3:1.0/host2/target2:0:0/2:0:0:0", "1"),
        "vda": ("pci0000:00/0000:00:05.0/virtio2", "0"),
    }
    (sys / "block").mkdir(parents=True)
    (sys / "class" / "block").mkdir(parents=True)
    for disk, (parent, removable) in disks.items():
        disk_dir = sys / "devices" / parent / "block" / disk
        disk_dir.mkdir(parents=True)
        (disk_dir / "removable").write_text(removable + "\n")
        (sys / "block" / disk).symlink_to(disk_dir)
        (sys / "class" / "block" / disk).symlink_to(disk_dir)
        part = f"{disk}p1" if disk.startswith("mmc") else f"{disk}1"
        (disk_dir / part).mkdir()
        (disk_dir / part / "partition").write_text("1\n")
        (sys / "class" / "block" / part).symlink_to(disk_dir / part)
    media = tmp_path / "media"
    points = {
        "stick": media / "leaf-appliance" / "sda1",
        "usbdisk": media / "leaf-appliance" / "sdb1",
        "readonly": media / "pi" / "OLD STICK",
        "fixed": media / "backup",
    }
    for point in points.values():
        point.mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/mmcblk0p2 / ext4 rw,noatime 0 0\n"
        "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
        f"/dev/mmcblk0p1 {tmp_path}/boot vfat rw,relatime 0 0\n"
        f"/dev/sdc1 {str(points['readonly']).replace(' ', chr(92) + '040')} vfat ro,nosuid,nodev 0 0\n"
        f"/dev/sda1 {points['stick']} vfat rw,nosuid,nodev,noexec,uid=999 0 0\n"
        f"/dev/sdb1 {points['usbdisk']} exfat rw,nosuid,nodev 0 0\n"
        f"/dev/vda1 {points['fixed']} ext4 rw 0 0\n"
        f"tmpfs {media}/ram tmpfs rw 0 0\n"
    )
    return {"sys": sys, "media": media, "mounts": mounts, **points}


def where(fs: dict[str, Path]) -> dict[str, Path]:
    return {
        "mounts_file": fs["mounts"],
        "sys_block": fs["sys"] / "block",
        "sys_class_block": fs["sys"] / "class" / "block",
    }


def test_the_mount_table_is_read_with_its_escapes(tmp_path: Path) -> None:
    fs = fake_system(tmp_path)
    mounts = read_mounts(fs["mounts"])
    assert mounts[3] == Mount("/dev/sdc1", fs["readonly"], "vfat", frozenset({"ro", "nosuid", "nodev"}))
    assert mounts[3].read_only and not mounts[4].read_only
    assert mount_of(fs["stick"] / "leaf-appliance" / "x", mounts).device == "/dev/sda1"
    assert mount_of(tmp_path / "elsewhere", mounts).device == "/dev/mmcblk0p2"
    assert mount_point_of_device("/dev/sdb1", mounts_file=fs["mounts"]) == fs["usbdisk"]
    assert mount_point_of_device("/dev/sdz1", mounts_file=fs["mounts"]) is None


def test_usb_sticks_are_found_and_fixed_disks_are_not(tmp_path: Path) -> None:
    fs = fake_system(tmp_path)
    found = find_sticks(fs["media"], **where(fs))
    # removable=1 stick, a USB disk that says removable=0, the read-only stick last; not vda, not tmpfs
    assert [(m.path, m.disk, m.read_only) for m in found] == [
        (fs["stick"], "sda", False),
        (fs["usbdisk"], "sdb", False),
        (fs["readonly"], "sdc", True),
    ]
    assert find_stick(None, media_root=fs["media"], **where(fs)) == fs["stick"]
    assert find_stick(None, media_root=tmp_path / "nothing-here", **where(fs)) is None


def test_a_configured_folder_is_the_stick_when_it_exists(tmp_path: Path) -> None:
    folder = tmp_path / "usb-stick"
    cfg = config(tmp_path / "data", folder=folder)
    assert find_stick(cfg) is None  # "plug in" the simulated stick by creating the folder
    folder.mkdir()
    assert find_stick(cfg) == folder


def test_describe_and_check_give_clear_refusals(tmp_path: Path) -> None:
    fs = fake_system(tmp_path)
    stick = describe(fs["stick"], **where(fs))
    assert (stick.device, stick.disk, stick.removable, stick.is_mount_point) == ("/dev/sda1", "sda", True, True)
    check_medium(stick)  # a writable USB stick passes

    with pytest.raises(ExportError, match=r"backup is not a removable drive \(/dev/vda1\); exports go to a USB stick"):
        check_medium(describe(fs["fixed"], **where(fs)))
    with pytest.raises(ExportError, match="read-only: its write-protect switch may be on"):
        check_medium(describe(fs["readonly"], **where(fs)))
    with pytest.raises(ExportError, match=r"No USB stick at .*Plug the stick in again"):
        check_medium(Medium(tmp_path / "pulled-out", None, None, True, False))
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ExportError, match="appliance's own storage"):
        check_medium(Medium(tmp_path, None, "sda", True, False), data_dir=data)


def test_room_is_stated_in_megabytes() -> None:
    text = room_message(3_400_000, 39_200_000, Path("/media/leaf-appliance/sda1"))
    assert text.startswith("Only 3 MB free on the USB stick at /media/leaf-appliance/sda1, need 40 MB.")


class Recorder:
    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        code = 1 if argv[1] in self.fail else 0
        return subprocess.CompletedProcess(argv, code, "", "Error unmounting: target is busy" if code else "")


def stick_medium(tmp_path: Path) -> Medium:
    mount = Mount("/dev/sda1", tmp_path, "vfat", frozenset({"rw"}))
    return Medium(tmp_path, mount, "sda", True, False)


def test_eject_unmounts_and_powers_off_with_udisks(tmp_path: Path) -> None:
    run = Recorder()
    result = eject(stick_medium(tmp_path), run=run, which=lambda name: f"/usr/bin/{name}")
    assert result.done and "safe to remove" in result.message
    assert run.calls == [
        ["/usr/bin/udisksctl", "unmount", "--no-user-interaction", "-b", "/dev/sda1"],
        ["/usr/bin/udisksctl", "power-off", "--no-user-interaction", "-b", "/dev/sda"],
    ]


def test_a_failed_unmount_never_says_safe(tmp_path: Path) -> None:
    run = Recorder(fail={"unmount"})
    result = eject(
        stick_medium(tmp_path), run=run, which=lambda name: f"/usr/bin/{name}" if name == "udisksctl" else None
    )
    assert not result.done
    assert "target is busy" in result.message and "before pulling it out" in result.message
    assert "safe" not in result.message.lower()


def test_a_plain_folder_is_not_unmounted(tmp_path: Path) -> None:
    result = eject(Medium(tmp_path, None, None, False, False), run=Recorder())
    assert not result.done and "nothing to unmount" in result.message


def test_eject_really_unmounts_a_mounted_file_system_as_root(tmp_path: Path) -> None:
    point = tmp_path / "stick"
    with tmpfs(point, "1m"):
        medium = describe(point)
        assert medium.is_mount_point
        result = eject(medium, which=lambda name: None if name == "udisksctl" else "/bin/umount")
        assert result.done, result.message
        assert not os.path.ismount(point)
