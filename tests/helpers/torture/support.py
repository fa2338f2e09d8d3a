"""Shared pieces for the export and torture tests: diagnoses, stores, size-limited file systems."""

from __future__ import annotations

import contextlib
import csv
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.config import Config, DeviceConfig, ExportConfig
from appliance.result import Diagnosis, Quality, Ranked, RetakeReason, Timings, Verdict
from appliance.store import SqliteStore

REPO = Path(__file__).resolve().parents[3]
JPEG_MAGIC = b"\xff\xd8\xff\xe0"


def diagnosis(
    *,
    crop: str = "Tomato",
    condition: str = "Late blight",
    slug: str = "tomato__late_blight",
    probability: float = 0.875,
    retake: RetakeReason | None = None,
) -> Diagnosis:
    return Diagnosis(
        verdict=Verdict.RETAKE if retake else Verdict.DIAGNOSIS,
        reason=retake,
        top=(Ranked(slug, probability), Ranked("tomato__healthy", 0.1), Ranked("potato__early_blight", 0.025)),
        quality=Quality(
            brightness=121.5, dark_fraction=0.01, bright_fraction=0.0, sharpness=412.25, plant_fraction=0.6
        ),
        timings=Timings(decode_ms=3.0, quality_ms=4.0, inference_ms=31.5, total_ms=40.0),
        model_version="leafnet-test",
        model_sha256="ab" * 32,
        crop="" if retake else crop,
        condition=condition,
    )


def photo_bytes(rng: random.Random, size: int) -> bytes:
    """JPEG-tagged bytes (the store checks the magic only); random content makes every photo distinct."""
    return JPEG_MAGIC + rng.randbytes(max(0, size - len(JPEG_MAGIC)))


def config(data_dir: Path, device_id: str = "pi-07", **export: object) -> Config:
    return replace(
        Config(),
        device=DeviceConfig(id=device_id, data_dir=data_dir),
        export=replace(ExportConfig(), **export),
    )


def open_store(data_dir: Path) -> SqliteStore:
    return SqliteStore.open(data_dir / "diagnoses.sqlite3", data_dir)


def fill(store: SqliteStore, n: int, *, seed: int = 1, size: int = 3000, **kwargs: object) -> list[str]:
    rng = random.Random(seed)
    ids = []
    for _ in range(n):
        record = store.record(diagnosis(**kwargs), photo_bytes(rng, size), device_id="pi-07", latency={"x_ms": 1.0})
        ids.append(record.id)
    return ids


def clock(start: datetime = datetime(2024, 5, 17, 9, 41, 7, tzinfo=UTC)) -> Callable[[], datetime]:
    """Each export a minute after the last, so folder names differ as they would in the field."""
    moments = iter(start + timedelta(minutes=i) for i in range(10_000))
    return lambda: next(moments)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def need_privilege(reason: str) -> None:
    """Skip where this machine cannot do it; in CI that is a failure, never a silent skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run these tests as root with mount allowed)")
    pytest.skip(reason)


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str, *, options: str = "") -> Iterator[Path]:
    """A size-limited file system (tmpfs) at mount_point; always unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        need_privilege("mounting a size-limited tmpfs needs root")
    mount_point.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (f",{options}" if options else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        need_privilege(f"cannot mount tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        remount(mount_point, "rw", check=False)
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def remount(mount_point: Path, mode: str, *, check: bool = True) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], capture_output=True, check=check)
