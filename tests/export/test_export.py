"""USB export to a folder standing in for a stick: layout, verification, incremental runs, hostile sticks."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.errors import ExportError
from appliance.export import Exporter, Progress, formats
from appliance.export.exporter import diagnoses_csv, export_lock, folder_name
from appliance.export.formats import CSV_HEADER
from appliance.result import RetakeReason
from appliance.store import SqliteStore
from leaf_wire.csvcell import BOM, unsafe_cell
from tests.helpers.torture.support import clock, config, fill, open_store, read_csv

T0 = datetime(2024, 5, 17, 9, 41, 7, tzinfo=UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path):
    with open_store(data_dir) as s:
        yield s


@pytest.fixture
def stick(tmp_path: Path) -> Path:
    path = tmp_path / "stick"
    path.mkdir()
    return path


def exporter(store: SqliteStore, data_dir: Path, now=None) -> Exporter:
    return Exporter(store, config(data_dir), now=now or clock())


def varied_rows(store: SqliteStore) -> list[str]:
    """Rows a spreadsheet could trip over: non-ASCII, a formula, a retake, a comma and a quote."""
    ids = fill(store, 1, seed=1, crop="Café", condition='Míldio – folha, "mancha"')
    ids += fill(store, 1, seed=2, crop='=HYPERLINK("http://x")', condition="@SUM(A1)")
    ids += fill(store, 1, seed=3, condition="No leaf in view", retake=RetakeReason.NO_LEAF)
    ids += fill(store, 1, seed=4, crop="-1+2", condition="+cmd|' /C calc'!A0")
    return ids


def stored_cells(row: dict) -> dict[str, str]:
    """What the CSV must say for a stored row, as text."""
    top = row["topk"]
    return {
        "id": row["id"],
        "created_at_utc": row["created_at"],
        "device_id": row["device_id"],
        "verdict": row["verdict"],
        "retake_reason": row["reason"] or "",
        "crop": row["crop"],
        "condition": row["condition"],
        "top1_slug": top[0]["slug"],
        "top1_probability": repr(top[0]["probability"]),
        "top2_slug": top[1]["slug"],
        "top3_probability": repr(top[2]["probability"]),
        "quality_sharpness": repr(row["quality"]["sharpness"]),
        "model_sha256": row["model_sha256"],
        "photo_file": f"photos/{row['id']}.jpg",
        "photo_status": "included",
        "photo_sha256": row["photo_sha256"],
        "photo_bytes": str(row["photo_bytes"]),
    }


# ---------------------------------------------------------------- the export folder


def test_export_writes_a_verified_self_describing_folder(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    ids = varied_rows(store)
    report = exporter(store, data_dir).run(stick)

    folder = stick / "leaf-appliance" / "pi-07" / "2024-05-17T09-41-07Z"
    assert report.export_dir == folder and report.export_name == "leaf-appliance/pi-07/2024-05-17T09-41-07Z"
    assert (report.rows, report.photos, report.files) == (4, 4, 9)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.txt", "diagnoses.csv", "diagnoses.jsonl", "diagnoses.sqlite3", "manifest.sha256", "photos",
    ]  # fmt: skip
    assert sorted(p.name for p in (folder / "photos").iterdir()) == sorted(f"{i}.jpg" for i in ids)
    assert not any(p.name.endswith((".tmp", ".partial")) for p in stick.rglob("*"))

    # an independent tool agrees with the manifest, and the manifest covers every file
    check = subprocess.run(["sha256sum", "-c", "manifest.sha256"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 8
    listed = {line.split("  ", 1)[1] for line in (folder / "manifest.sha256").read_text().splitlines()}
    assert listed == {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"manifest.sha256"}

    # the photos are the stored ones, byte for byte
    for rid in ids:
        row = store.get(rid)
        assert hashlib.sha256((folder / "photos" / f"{rid}.jpg").read_bytes()).hexdigest() == row["photo_sha256"]


def test_csv_parses_back_to_exactly_the_stored_rows(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    ids = varied_rows(store)
    report = exporter(store, data_dir).run(stick)
    raw = (report.export_dir / "diagnoses.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # UTF-8 BOM for Excel, CRLF rows

    rows = read_csv(report.export_dir / "diagnoses.csv")
    assert tuple(rows[0]) == CSV_HEADER
    assert [r["id"] for r in rows] == ids
    for parsed in rows:
        for cell in parsed.values():  # nothing a spreadsheet would execute
            assert not cell.startswith(("=", "+", "-", "@")), cell
        stored = store.get(parsed["id"])
        assert {k: unsafe_cell(parsed[k]) for k in stored_cells(stored)} == stored_cells(stored)
    by_id = {r["id"]: r for r in rows}
    assert by_id[ids[1]]["crop"] == '\'=HYPERLINK("http://x")'
    assert by_id[ids[0]]["condition"] == 'Míldio – folha, "mancha"'
    assert by_id[ids[0]]["top1_name"] == "Tomato: Late blight"  # display words beside the slug
    assert by_id[ids[2]]["retake_text"] == "No leaf in view"


def test_jsonl_and_snapshot_hold_every_stored_field(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    ids = varied_rows(store)
    report = exporter(store, data_dir).run(stick)
    lines = (report.export_dir / "diagnoses.jsonl").read_text(encoding="utf-8").splitlines()
    exported = [json.loads(line) for line in lines]
    for record in exported:
        stored = store.get(record["id"])
        assert stored["exported_at"] is not None  # marked after the copy was verified...
        stored["exported_at"] = None  # ...so the copy shows the state before
        assert {k: record[k] for k in stored} == stored
        assert record["photo_file"] == f"photos/{record['id']}.jpg"

    snapshot = report.export_dir / "diagnoses.sqlite3"
    conn = sqlite3.connect(f"{snapshot.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # opens from a read-only stick
        assert [r[0] for r in conn.execute("SELECT id FROM diagnoses ORDER BY rowid")] == ids
    finally:
        conn.close()
    assert not list(report.export_dir.glob("diagnoses.sqlite3-*"))


def test_rows_are_marked_exported_with_the_stick_and_folder(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    ids = fill(store, 3)
    report = exporter(store, data_dir).run(stick)
    assert store.unexported() == []
    conn = sqlite3.connect(store.db_path)
    try:
        ledger = conn.execute("SELECT stick_id, diagnosis_id, export_dir FROM export_ledger").fetchall()
    finally:
        conn.close()
    stick_id = (stick / "leaf-appliance" / "stick-id").read_text().strip()
    assert report.stick_id == stick_id
    assert sorted(ledger) == sorted((stick_id, i, report.export_name) for i in ids)
    on_stick = [
        json.loads(line) for line in (stick / "leaf-appliance" / "pi-07" / "ledger.jsonl").read_text().splitlines()
    ]
    assert [(e["export"], e["ids"], e["stick_id"]) for e in on_stick] == [("2024-05-17T09-41-07Z", ids, stick_id)]
    assert "safe to remove" not in report.summary().lower()  # a folder is not unmounted, so no such promise


def test_readme_names_every_column_and_how_to_check(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    fill(store, 1)
    report = exporter(store, data_dir).run(stick)
    readme = (report.export_dir / "README.txt").read_text(encoding="utf-8")
    for column in CSV_HEADER:
        assert f"  {column}  " in readme, column
    assert "sha256sum -c manifest.sha256" in readme and "UTF-8" in readme and "pi-07" in readme


# ---------------------------------------------------------------- incremental and full


def test_incremental_sends_only_what_this_stick_lacks(store: SqliteStore, data_dir: Path, tmp_path: Path) -> None:
    stick_a, stick_b = tmp_path / "a", tmp_path / "b"
    stick_a.mkdir()
    stick_b.mkdir()
    first = fill(store, 3, seed=1)
    run = exporter(store, data_dir)
    assert run.run(stick_a).rows == 3
    second = fill(store, 2, seed=2)
    again = run.run(stick_a)
    assert (again.rows, again.already_on_stick) == (2, 3)
    assert [r["id"] for r in read_csv(again.export_dir / "diagnoses.csv")] == second

    nothing = run.run(stick_a)
    assert (nothing.rows, nothing.already_on_stick, nothing.export_dir) == (0, 5, None)
    assert "already has all 5" in nothing.summary()
    assert len(list((stick_a / "leaf-appliance" / "pi-07").glob("2024-*"))) == 2

    other = run.run(stick_b)  # another stick has received nothing yet
    assert [r["id"] for r in read_csv(other.export_dir / "diagnoses.csv")] == first + second

    full = run.run(stick_a, full=True)
    assert full.rows == 5 and full.full

    # the agronomist deleted the first export folder: those diagnoses go to this stick again
    for folder in (stick_a / "leaf-appliance" / "pi-07").glob("2024-*"):
        if folder.name != again.export_dir.name:
            subprocess.run(["rm", "-rf", str(folder)], check=True)
    resent = run.run(stick_a)
    assert [r["id"] for r in read_csv(resent.export_dir / "diagnoses.csv")] == first


def test_an_empty_log_exports_nothing(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    report = exporter(store, data_dir).run(stick)
    assert (report.rows, report.export_dir) == (0, None)
    assert "No diagnoses recorded yet" in report.summary()


def test_progress_counts_every_file_byte_and_record(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    fill(store, 5, size=150_000)
    seen: list[Progress] = []
    report = exporter(store, data_dir).run(stick, progress=seen.append)
    writing = [p for p in seen if p.phase == "writing"]
    verifying = [p for p in seen if p.phase == "verifying"]
    assert writing[-1].files_done == writing[-1].files_total == 10
    assert verifying[-1].files_done == verifying[-1].files_total == 10  # the manifest is read back too
    assert writing[-1].bytes_done == writing[-1].bytes_total == report.bytes
    assert verifying[-1].bytes_done == report.bytes
    for phase in (writing, verifying):
        assert [p.bytes_done for p in phase] == sorted(p.bytes_done for p in phase)
    assert len(seen) > 20  # often enough for the daemon to kick its watchdog
    # The screen counts records, as the end screen does: one per photo, the rest once the tables are written.
    for phase in (writing, verifying):
        assert phase[0].records_done == 0 and phase[-1].records_done == phase[-1].records_total == report.rows == 5
        assert [p.records_done for p in phase] == sorted(p.records_done for p in phase)
    # Checking counts up as photos are read back: the tables, read first, must not claim every record done.
    assert sum(p.records_done == p.records_total for p in verifying) <= 2
    assert writing[-1].text().startswith("5 of 5 records, ")


def test_missing_and_damaged_photos_are_reported_not_fatal(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    gone, damaged, fine = fill(store, 3)
    store.photo_file(store.get(gone)).unlink()
    path = store.photo_file(store.get(damaged))
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    report = exporter(store, data_dir).run(stick)
    assert (report.missing_photos, report.damaged_photos, report.photos) == ([gone], [damaged], 2)
    rows = {r["id"]: r for r in read_csv(report.export_dir / "diagnoses.csv")}
    assert (rows[gone]["photo_status"], rows[gone]["photo_file"]) == ("missing", "")
    assert rows[fine]["photo_status"] == "included"
    assert subprocess.run(["sha256sum", "-c", "--quiet", "manifest.sha256"], cwd=report.export_dir).returncode == 0
    assert "missing" in report.summary() and "checksum" in report.summary()


# ---------------------------------------------------------------- hostile or odd sticks


def unexported_count(store: SqliteStore) -> int:
    return len(store.unexported())


@pytest.mark.parametrize("where", ["leaf-appliance", "leaf-appliance/pi-07"])
def test_a_planted_symlink_is_never_followed(
    store: SqliteStore, data_dir: Path, stick: Path, tmp_path: Path, where
) -> None:
    fill(store, 2)
    outside = tmp_path / "outside"
    outside.mkdir()
    link = stick / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    with pytest.raises(ExportError, match="symbolic link"):
        exporter(store, data_dir).run(stick)
    assert list(outside.iterdir()) == []
    assert unexported_count(store) == 2


@pytest.mark.parametrize("name", ["stick-id", "pi-07/ledger.jsonl"])
def test_a_symlinked_bookkeeping_file_is_refused(
    store: SqliteStore, data_dir: Path, stick: Path, tmp_path: Path, name
) -> None:
    fill(store, 1)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the stick")
    link = stick / "leaf-appliance" / name
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    with pytest.raises(ExportError, match="not a plain file"):
        exporter(store, data_dir).run(stick)
    assert secret.read_text() == "not for the stick"
    assert unexported_count(store) == 1


def test_a_file_where_the_folder_goes_gets_a_clear_message(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    fill(store, 1)
    (stick / "leaf-appliance").write_text("a file, not a folder")
    with pytest.raises(ExportError, match=r"leaf-appliance is a file, not a folder"):
        exporter(store, data_dir).run(stick)
    assert unexported_count(store) == 1


def test_leftovers_of_an_interrupted_export_are_removed_without_following_links(
    store: SqliteStore, data_dir: Path, stick: Path, tmp_path: Path
) -> None:
    fill(store, 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    partial = stick / "leaf-appliance" / "pi-07" / "2024-01-01T00-00-00Z.partial"
    partial.mkdir(parents=True)
    (partial / "escape").symlink_to(outside)
    (partial / "half.jpg").write_bytes(b"half")
    stranger = stick / "leaf-appliance" / "pi-07" / "notes-by-the-agronomist.partial"
    stranger.mkdir()
    exporter(store, data_dir).run(stick)
    assert not partial.exists() and stranger.exists()
    assert (outside / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("device_id", "folder"),
    [("pi-07", "pi-07"), ("farm.7_b", "farm.7_b"), ("../../etc", "_.._etc"), ("..", "device"), ("a b:c", "a_b_c")],
)
def test_device_folder_names_are_safe_on_fat(device_id: str, folder: str) -> None:
    assert folder_name(device_id) == folder


def test_a_device_id_cannot_escape_the_export_folder(data_dir: Path, stick: Path) -> None:
    with open_store(data_dir) as store:
        fill(store, 1)
        report = Exporter(store, config(data_dir, device_id="../../x"), now=clock()).run(stick)
    assert report.export_dir.parent == stick / "leaf-appliance" / "_.._x"


def test_the_data_folder_is_not_an_export_target(store: SqliteStore, data_dir: Path) -> None:
    fill(store, 1)
    with pytest.raises(ExportError, match="inside the appliance's data folder"):
        exporter(store, data_dir).run(data_dir / "photos")


def test_a_missing_target_says_the_stick_is_not_mounted(store: SqliteStore, data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not mounted there"):
        exporter(store, data_dir).run(tmp_path / "gone")


def test_two_exports_at_once_are_refused(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    fill(store, 1)
    with export_lock(data_dir), pytest.raises(ExportError, match="already running"):
        exporter(store, data_dir).run(stick)
    assert exporter(store, data_dir).run(stick).rows == 1


def test_two_exports_in_the_same_second_get_separate_folders(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    fill(store, 1)
    same = lambda: T0  # noqa: E731
    first = exporter(store, data_dir, now=same).run(stick)
    second = exporter(store, data_dir, now=same).run(stick, full=True)
    assert (first.export_dir.name, second.export_dir.name) == ("2024-05-17T09-41-07Z", "2024-05-17T09-41-07Z-2")


def test_a_failed_export_leaves_the_store_unchanged_and_the_next_completes(
    store: SqliteStore, data_dir: Path, stick: Path
) -> None:
    ids = fill(store, 4)

    def fail_midway(p: Progress) -> None:
        if p.phase == "writing" and p.files_done == 2:
            raise OSError(5, "Input/output error")

    with pytest.raises(ExportError, match="removed or stopped answering"):
        exporter(store, data_dir).run(stick, progress=fail_midway)
    assert [r["id"] for r in store.unexported()] == ids
    assert not (stick / "leaf-appliance" / "pi-07" / "ledger.jsonl").exists()
    report = exporter(store, data_dir).run(stick)
    assert report.rows == 4 and store.unexported() == []
    assert [p.name for p in (stick / "leaf-appliance" / "pi-07").iterdir() if p.is_dir()] == [report.export_dir.name]


def test_a_stick_that_returns_different_bytes_is_caught(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    ids = fill(store, 2)

    def corrupt_before_reading_back(p: Progress) -> None:
        if p.phase == "verifying" and p.files_done == 0 and p.bytes_done == 0:
            for photo in stick.rglob(f"{ids[0]}.jpg"):
                data = bytearray(photo.read_bytes())
                data[100] ^= 0xFF
                os.truncate(photo, 0)
                photo.write_bytes(bytes(data))

    with pytest.raises(ExportError, match="does not match what was written"):
        exporter(store, data_dir).run(stick, progress=corrupt_before_reading_back)
    assert len(store.unexported()) == 2


def test_the_report_reads_well(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    fill(store, 2)
    text = exporter(store, data_dir).run(stick).summary()
    assert text.startswith("Exported 2 diagnoses and 2 photos") and "read back" in text


def test_csv_cells_are_text_a_spreadsheet_opens(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    fill(store, 1)
    report = exporter(store, data_dir).run(stick)
    text = (report.export_dir / "diagnoses.csv").read_bytes().decode("utf-8-sig")
    (header, row) = list(csv.reader(io.StringIO(text)))
    assert len(header) == len(row) == len(CSV_HEADER)
    assert row[1].endswith("Z") and datetime.fromisoformat(row[1]).tzinfo is not None


def test_a_leftover_folder_thousands_of_levels_deep_is_removed(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    """shutil.rmtree recursed: a crafted .partial folder 3,000 levels deep stopped the export with RecursionError."""
    fill(store, 1)
    partial = stick / "leaf-appliance" / "pi-07" / "2024-01-01T00-00-00Z.partial"
    partial.mkdir(parents=True)
    fd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(3000):  # relative steps: the full path would pass PATH_MAX
            os.mkdir("d", dir_fd=fd)
            if level % 500 == 0:
                with open(os.open("f.jpg", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as f:
                    f.write(b"x")
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    report = exporter(store, data_dir).run(stick)
    assert report.rows == 1 and not partial.exists()


@pytest.mark.parametrize(
    "line",
    [
        '{"export": "x\\u0000y", "ids": ["a"]}',  # a NUL in the folder name
        '{"export": "2024-01-01T00-00-00Z", "ids": 5}',
        "[" * 100_000,  # nested past the JSON parser's recursion limit
        '{"export": ["not", "a", "name"], "ids": []}',
    ],
    ids=["nul-in-name", "ids-not-a-list", "nested-100000", "name-not-a-string"],
)
def test_a_crafted_ledger_line_is_skipped_and_the_export_goes_on(
    store: SqliteStore, data_dir: Path, stick: Path, line: str
) -> None:
    ids = fill(store, 2)
    device = stick / "leaf-appliance" / "pi-07"
    (device / "2024-01-01T00-00-00Z").mkdir(parents=True)
    (device / "ledger.jsonl").write_text(line + "\n", encoding="utf-8")
    report = exporter(store, data_dir).run(stick)
    assert report.rows == 2 and set(ids) <= {r["id"] for r in read_csv(report.export_dir / "diagnoses.csv")}


def test_history_csv_is_the_exports_csv_byte_for_byte(store: SqliteStore, data_dir: Path, stick: Path) -> None:
    """Issue 12: `history --csv` had other columns and raw JSON cells; it is now the export's diagnoses.csv."""
    varied_rows(store)
    pruned_later = fill(store, 1, seed=9)[0]
    rows = store.recent()
    report = exporter(store, data_dir).run(stick)
    exported = (report.export_dir / "diagnoses.csv").read_bytes()
    order = {r["id"]: r for r in store.recent()}  # the export lists oldest first
    in_export_order = [order[r["id"]] for r in read_csv(report.export_dir / "diagnoses.csv")]
    assert diagnoses_csv(store, in_export_order, "en").encode("utf-8") == exported
    assert len(rows) == len(in_export_order)
    store.photo_file(order[pruned_later]).unlink()  # gone from the appliance: the history says so
    again = list(csv.DictReader(io.StringIO(diagnoses_csv(store, store.recent(), "en").removeprefix(BOM))))
    assert list(again[0]) == list(formats.CSV_HEADER)
    assert {r["id"]: r["photo_status"] for r in again}[pruned_later] == formats.PHOTO_MISSING
