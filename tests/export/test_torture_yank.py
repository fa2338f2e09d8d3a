"""The stick vanishes, turns read-only or is swapped mid-export: a clear error, the store unchanged, and the
next export completes. The target is a folder or a real tmpfs mount (root only, failing in CI otherwise)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.errors import ExportError
from appliance.export import Exporter, Progress
from tests.helpers.torture.support import clock, config, fill, open_store, remount, tmpfs

STORE_UNCHANGED = "Nothing was marked as exported"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def export(data_dir: Path, target: Path, progress=None):
    with open_store(data_dir) as store:
        return Exporter(store, config(data_dir), now=clock()).run(target, progress=progress)


def unexported(data_dir: Path) -> list[str]:
    with open_store(data_dir) as store:
        return [r["id"] for r in store.unexported()]


def once(condition):
    """A progress callback that acts the first time `condition(progress)` holds."""
    fired: list[Progress] = []

    def decorate(action):
        def callback(p: Progress) -> None:
            if not fired and condition(p):
                fired.append(p)
                action(p)

        callback.fired = fired
        return callback

    return decorate


def test_the_stick_folder_vanishing_mid_write(data_dir: Path, tmp_path: Path) -> None:
    with open_store(data_dir) as store:
        ids = fill(store, 8, size=50_000)
    stick = tmp_path / "stick"
    stick.mkdir()

    @once(lambda p: p.phase == "writing" and p.files_done == 3)
    def pull_out(_: Progress) -> None:
        shutil.rmtree(stick)

    with pytest.raises(ExportError, match=rf"removed or stopped answering while writing .*{STORE_UNCHANGED}"):
        export(data_dir, stick, pull_out)
    assert pull_out.fired and unexported(data_dir) == ids
    stick.mkdir()  # plugged in again (an empty stick this time)
    assert export(data_dir, stick).rows == 8
    assert unexported(data_dir) == []


def test_the_stick_turning_read_only_mid_write(data_dir: Path, tmp_path: Path) -> None:
    with open_store(data_dir) as store:
        ids = fill(store, 8, size=50_000)
    with tmpfs(tmp_path / "stick", "8m") as stick:

        @once(lambda p: p.phase == "writing" and p.files_done == 4)
        def lock(_: Progress) -> None:
            remount(stick, "ro")  # what a stick does when it finds errors and protects itself

        with pytest.raises(ExportError, match=rf"became read-only while writing .*{STORE_UNCHANGED}"):
            export(data_dir, stick, lock)
        assert lock.fired and unexported(data_dir) == ids
        with pytest.raises(ExportError, match="is read-only: its write-protect switch may be on"):
            export(data_dir, stick)  # still read-only when tried again: refused up front
        remount(stick, "rw")
        report = export(data_dir, stick)
        assert report.rows == 8 and unexported(data_dir) == []
        assert [p.name for p in report.export_dir.parent.iterdir() if p.is_dir()] == [report.export_dir.name]
        check = subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=report.export_dir)
        assert check.returncode == 0


def test_the_stick_pulled_and_plugged_in_again_while_checking(data_dir: Path, tmp_path: Path) -> None:
    with open_store(data_dir) as store:
        ids = fill(store, 6, size=50_000)
    with tmpfs(tmp_path / "stick", "8m") as stick:

        @once(lambda p: p.phase == "verifying")
        def swap(_: Progress) -> None:
            # the old file system stays reachable only through the export's open folders; the path now
            # leads to a freshly mounted (empty) stick, as after a pull and re-insert
            subprocess.run(["umount", "-l", str(stick)], check=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(stick)], check=True)

        with pytest.raises(ExportError, match=STORE_UNCHANGED):
            export(data_dir, stick, swap)
        assert swap.fired and unexported(data_dir) == ids
        assert export(data_dir, stick).rows == 6
        assert unexported(data_dir) == []


def test_a_stick_mounted_read_only_is_refused_with_the_reason(data_dir: Path, tmp_path: Path) -> None:
    with open_store(data_dir) as store:
        ids = fill(store, 2)
    with tmpfs(tmp_path / "stick", "4m", options="ro") as stick:
        with pytest.raises(ExportError, match="is read-only: its write-protect switch may be on"):
            export(data_dir, stick)
        assert unexported(data_dir) == ids
