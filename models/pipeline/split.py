"""A deterministic train/val/test split recorded as a manifest of file names and sha256.

Each photo's split is decided by a hash of the seed and the photo's own bytes, so
identical files always land in the same split, and adding photos or classes later
never moves an existing photo to another split.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
FIELDS = ("split", "slug", "file", "sha256", "source", "folder", "background", "group")


@dataclass(frozen=True)
class Entry:
    split: str
    slug: str  # the model class the photo teaches or tests
    file: str  # relative to the data root
    sha256: str
    source: str = "plantvillage"  # plantvillage | field-apple | deepweeds
    folder: str = ""  # the folder in its source (e.g. "rust", "lantana")
    background: str = "lab"  # lab | natural | plain | field
    group: str = ""  # photos of one leaf, scene or trip: never split apart


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assign_split(sha256: str, seed: int, val: float = 0.15, test: float = 0.15) -> str:
    u = int(hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()[:12], 16) / 16**12
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"


def class_slugs(root: Path) -> list[str]:
    """Every folder under the data root is a class, named by its slug."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def build_manifest(
    root: Path, seed: int, classes: list[str] | None = None, per_class: int | None = None
) -> list[Entry]:
    entries: list[Entry] = []
    for slug in classes or class_slugs(root):
        files = sorted(p for p in (root / slug).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if per_class is not None:
            files = files[:per_class]
        for path in files:
            sha = file_sha256(path)
            entries.append(Entry(assign_split(sha, seed), slug, f"{slug}/{path.name}", sha))
    return entries


def write_manifest(entries: list[Entry], path: Path) -> str:
    """Write the manifest CSV; returns its sha256, which the model carries in its metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FIELDS)
        for e in sorted(entries, key=lambda e: (e.split, e.file)):
            writer.writerow((e.split, e.slug, e.file, e.sha256, e.source, e.folder, e.background, e.group))
    return file_sha256(path)


def read_manifest(path: Path) -> list[Entry]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [Entry(**{k: v for k, v in r.items() if k in FIELDS}) for r in csv.DictReader(fh)]


def verify_files(entries: list[Entry], root: Path) -> list[str]:
    """Problems found when the manifest is checked against the photos on disk."""
    problems = []
    for e in entries:
        path = root / e.file
        if not path.is_file():
            problems.append(f"missing: {e.file}")
        elif file_sha256(path) != e.sha256:
            problems.append(f"changed: {e.file}")
    return problems
