"""The photo sources a model is trained and judged on, each split so nothing leaks across.

- PlantVillage lab photos: split by a hash of seed and photo bytes (split.assign_split), as
  for leafnet 1.0, so the lab test split is the same photos as before.
- Field apple photos (../shared/data/field/apple): split by near-duplicate group, per folder,
  groups taken in hash order: the first 25% of each folder's photos to test, the next 15% to
  val. Rust is taught as PlantVillage's cedar apple rust (same genus, Gymnosporangium).
- DeepWeeds (other plants, ../shared/data/other-plants/deepweeds): split by capture date per
  label (by date and hour for labels photographed on fewer than four days), so test scenes
  come from days the model never saw. All of them teach one class: other__plant.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from pathlib import Path

from .split import IMAGE_SUFFIXES, Entry, assign_split, file_sha256

PLANTVILLAGE = "plantvillage"
FIELD_APPLE = "field/apple"
DEEPWEEDS = "other-plants/deepweeds"
OTHER_PLANT = "other__plant"
FIELD_APPLE_SLUGS = {
    "alternaria_leaf_spot": "apple__alternaria_leaf_spot",
    "brown_spot": "apple__brown_spot",
    "gray_spot": "apple__gray_spot",
    "healthy": "apple__healthy",
    "rust": "apple__cedar_apple_rust",
}
TEST_SHARE, VAL_SHARE = 0.25, 0.15


def _key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def split_groups(groups: dict[str, list[str]], seed: int) -> dict[str, str]:
    """Whole groups to test, then val, in hash order, until each share of the photos is reached."""
    total = sum(len(v) for v in groups.values())
    out, taken = {}, {"test": 0, "val": 0}
    for g in sorted(groups, key=lambda g: _key(seed, g)):
        n = len(groups[g])
        if taken["test"] + n <= round(TEST_SHARE * total) or taken["test"] == 0:
            side = "test"
        elif taken["val"] + n <= round(VAL_SHARE * total) or taken["val"] == 0:
            side = "val"
        else:
            side = "train"
        if side != "train":
            taken[side] += n
        for f in groups[g]:
            out[f] = side
    return out


def plantvillage(data: Path, seed: int, classes: list[str] | None = None, per_class: int | None = None) -> list[Entry]:
    root = data / PLANTVILLAGE
    slugs = classes or sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    entries = []
    for slug in slugs:
        files = sorted(p for p in (root / slug).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files[:per_class] if per_class else files:
            sha = file_sha256(path)
            entries.append(
                Entry(assign_split(sha, seed), slug, f"{PLANTVILLAGE}/{slug}/{path.name}", sha, PLANTVILLAGE, slug)
            )
    return entries


def field_apple(data: Path, seed: int, per_class: int | None = None) -> list[Entry]:
    root = data / FIELD_APPLE
    with (root / "images.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["folder"] in FIELD_APPLE_SLUGS]
    by_folder: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_folder[r["folder"]].append(r)
    entries = []
    for folder, items in sorted(by_folder.items()):
        items = sorted(items, key=lambda r: r["file"])[:per_class] if per_class else items
        groups: dict[str, list[str]] = defaultdict(list)
        for r in items:
            groups[r["near_duplicate_group"] or r["file"]].append(r["file"])
        side = split_groups(groups, seed)
        for r in items:
            rel = f"{FIELD_APPLE}/{folder}/{r['file']}"
            entries.append(
                Entry(
                    side[r["file"]],
                    FIELD_APPLE_SLUGS[folder],
                    rel,
                    file_sha256(data / rel),
                    "field-apple",
                    folder,
                    r["background"],
                    r["near_duplicate_group"] or r["file"],
                )
            )
    return entries


def deepweeds(data: Path, seed: int, per_class: int | None = None) -> list[Entry]:
    root = data / DEEPWEEDS
    with (root / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_label: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r["file"])
    entries = []
    for label, files in sorted(by_label.items()):
        files = sorted(files)[:per_class] if per_class else sorted(files)
        days = {Path(f).name[:8] for f in files}
        width = 8 if len(days) >= 4 else 11  # "YYYYMMDD" or "YYYYMMDD-HH"
        groups: dict[str, list[str]] = defaultdict(list)
        for f in files:
            groups[f"{label}/{Path(f).name[:width]}"].append(f)
        side = split_groups(groups, seed)
        group_of = {f: g for g, fs in groups.items() for f in fs}
        for f in files:
            rel = f"{DEEPWEEDS}/{f}"
            entries.append(
                Entry(side[f], OTHER_PLANT, rel, file_sha256(data / rel), "deepweeds", label, "field", group_of[f])
            )
    return entries


def known_slugs(data: Path) -> set[str]:
    """The classes a full build teaches: PlantVillage's folders, the field apple classes, other plants."""
    pv = {p.name for p in (data / PLANTVILLAGE).iterdir() if p.is_dir() and not p.name.startswith(".")}
    return pv | set(FIELD_APPLE_SLUGS.values()) | {OTHER_PLANT}


def all_entries(data: Path, seed: int, smoke: bool = False, also: tuple[str, ...] = ()) -> list[Entry]:
    """Every photo of every source with its split; smoke: a few classes and photos, for CI.

    ``also``: classes a smoke run must teach too (a field pack's), so its photos have a class.
    """
    if smoke:
        pv_classes = sorted(p.name for p in (data / PLANTVILLAGE).iterdir() if p.is_dir())
        leafy = [*[c for c in pv_classes if c.startswith("apple__")][:2], "background__no_leaf"]
        leafy += [c for c in also if c in pv_classes and c not in leafy]
        return plantvillage(data, seed, leafy, 12) + field_apple(data, seed, 6) + deepweeds(data, seed, 4)
    return plantvillage(data, seed) + field_apple(data, seed) + deepweeds(data, seed)
