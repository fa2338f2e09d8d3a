"""`appliance export` as the CLI and the udev-started unit call it: output and exit status."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from appliance.export import cmd_export
from appliance.export.command import ProgressPrinter
from appliance.export.exporter import Progress
from tests.helpers.torture.support import config, fill, open_store


def run(cfg, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = {"to": None, "full": False, "auto": False, "device": None, **kwargs}
    code = cmd_export(cfg, args["to"], args["full"], args["auto"], args["device"], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with open_store(data) as store:
        fill(store, 3, size=20_000)
    return data


def test_export_to_a_folder_prints_progress_and_the_result(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "stick"
    target.mkdir()
    code, out, err = run(config(data_dir), to=target)
    assert (code, err) == (0, "")
    assert out.startswith(f"Exporting to {target} (what this stick does not have yet)\n")
    assert "writing: 0 of 3 records" in out and "verifying: 0 of 3 records" in out
    assert "Exported 3 diagnoses and 3 photos" in out and "matches manifest.sha256" in out
    assert "Safe to remove" not in out  # a folder is not a stick that was unmounted
    code, out, _ = run(config(data_dir), to=target)
    assert code == 0 and "Nothing new: this stick already has all 3 diagnoses." in out
    code, out, _ = run(config(data_dir), to=target, full=True)
    assert code == 0 and "Exported 3 diagnoses" in out


def test_automatic_export_can_be_switched_off(data_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run(config(data_dir, auto_on_insert=False), auto=True, device="/dev/sda1")
    assert code == 0 and "Automatic export is off (export.auto_on_insert = false)" in out
    with open_store(data_dir) as store:
        assert len(store.unexported()) == 3


def test_no_stick_found_says_where_it_looked(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(config(data_dir, media_root=tmp_path / "media"))
    assert code == 1
    assert f"No USB stick found (looked for a mounted removable drive under {tmp_path / 'media'})" in err


def test_a_device_that_is_not_mounted_is_named(data_dir: Path) -> None:
    code, _, err = run(config(data_dir), auto=True, device="/dev/sdz9")
    assert code == 1 and "The USB stick /dev/sdz9 is not mounted" in err and "FAT32 or exFAT" in err


def test_a_missing_folder_is_refused(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(config(data_dir), to=tmp_path / "nope")
    assert code == 1 and "is not a folder: create it first" in err


def test_a_failed_export_exits_1_with_the_reason(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "stick"
    (target / "leaf-appliance").mkdir(parents=True)
    (target / "leaf-appliance" / "pi-07").symlink_to(tmp_path)
    code, _, err = run(config(data_dir), to=target)
    assert code == 1 and err.startswith("error: ") and "symbolic link" in err


def test_no_records_yet_is_not_an_error(tmp_path: Path) -> None:
    target = tmp_path / "stick"
    target.mkdir()
    code, out, _ = run(config(tmp_path / "empty"), to=target)
    assert code == 0 and "No diagnoses recorded yet" in out
    assert list(target.iterdir()) == []


def test_the_simulated_stick_is_a_folder_in_the_data_dir(data_dir: Path) -> None:
    cfg = config(data_dir, folder=data_dir.parent / "usb-stick")
    code, _, err = run(cfg)
    assert code == 1 and "No USB stick found" in err
    (data_dir.parent / "usb-stick").mkdir()
    code, out, _ = run(cfg)
    assert code == 0 and "Exported 3 diagnoses" in out


def test_progress_lines_are_throttled_but_every_phase_shows() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, every_s=3600)
    for phase in ("writing", "verifying"):
        for done in range(50):
            printer(Progress(phase, done, 50, done * 1000, 50_000, records_done=done // 2, records_total=25))
    assert out.getvalue().splitlines() == [
        "writing: 0 of 25 records, 0.0 of 0.1 MB",
        "verifying: 0 of 25 records, 0.0 of 0.1 MB",
    ]


def test_the_simulated_stick_is_safe_to_remove_once_synced(data_dir: Path, tmp_path: Path) -> None:
    """The README promises "safe to remove"; a folder standing for the stick never showed it."""
    from appliance.export import Exporter
    from appliance.export_screens import report_screen

    stick = tmp_path / "leaf-appliance-usb-stick"
    stick.mkdir()
    with open_store(data_dir) as store:
        report = Exporter(store, config(data_dir)).run(stick)
    assert report.rows == 3 and report.flushed_folder and not report.ejected and report.safe_to_remove
    assert report_screen(report).body.endswith("Safe to remove the stick.")
