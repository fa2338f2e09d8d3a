"""A FAT32 stick, the file system almost every USB stick ships with, built in userspace with mtools.

Loop-mounting is not possible on the CI machines, so the export goes to a folder, is copied
into a FAT32 image with mcopy (as a stick would receive it), copied back out, and checked
there: names survive FAT's rules, `sha256sum -c` passes, the CSV reads back, and the stick's
own ledger still makes the next export incremental. Needs `apt-get install mtools`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from appliance.export import Exporter
from appliance.export.exporter import room_needed
from tests.helpers.torture.support import clock, config, fill, need_privilege, open_store, read_csv

FAT_FORBIDDEN = re.compile(r'[\x00-\x1f"*:<>?\\|]')
CLUSTER = 4096


def mtools(*argv: str) -> str:
    if shutil.which("mcopy") is None:
        need_privilege("mtools is not installed (apt-get install -y mtools)")
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
    return done.stdout


def free_bytes(image: Path) -> int:
    listing = mtools("mdir", "-i", str(image), "::/")
    return int(re.search(r"([\d ]+) bytes free", listing).group(1).replace(" ", ""))


def test_an_export_survives_a_round_trip_through_a_fat32_stick(tmp_path: Path) -> None:
    data, staging, back = tmp_path / "data", tmp_path / "staging", tmp_path / "back"
    staging.mkdir()
    back.mkdir()
    image = tmp_path / "stick.img"
    with open(image, "wb") as handle:
        handle.truncate(288 * 2**20)  # sparse; FAT32 needs 65525+ clusters
    mtools("mformat", "-i", str(image), "-F", "-c", str(CLUSTER // 512), "-v", "LEAFSTICK", "::")
    empty = free_bytes(image)

    with open_store(data) as store:
        ids = fill(store, 30, size=70_000, crop="Café", condition="Mancha-alvo")
        report = Exporter(store, config(data), now=clock()).run(staging)
        rows = {i: store.get(i) for i in ids}

    written = sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))
    for name in written:
        for part in Path(name).parts:
            assert not FAT_FORBIDDEN.search(part) and not part.endswith((".", " ")), part

    mtools("mcopy", "-i", str(image), "-s", "-Q", str(staging / "leaf-appliance"), "::/")
    on_fat = mtools("mdir", "-i", str(image), "-/", "-b", "::/").split()
    assert sorted(n.removeprefix("::/").rstrip("/") for n in on_fat) == written  # long names kept exactly
    used = empty - free_bytes(image)
    payload = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    assert used <= room_needed(payload, report.files + 3, CLUSTER)  # the room check is not optimistic

    mtools("mcopy", "-i", str(image), "-s", "-n", "::/leaf-appliance", str(back))
    folder = back / "leaf-appliance" / "pi-07" / report.export_dir.name
    check = subprocess.run(["sha256sum", "-c", "manifest.sha256"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == report.files - 1
    parsed = read_csv(folder / "diagnoses.csv")
    assert [r["id"] for r in parsed] == ids
    assert all(r["crop"] == "Café" and r["photo_sha256"] == rows[r["id"]]["photo_sha256"] for r in parsed)

    with open_store(data) as store:  # the stick comes back: it already has everything
        again = Exporter(store, config(data), now=clock()).run(back)
    assert (again.rows, again.already_on_stick) == (0, 30)
