"""A field pack made from ../shared/data/field as if an agronomist had labelled it at base (issue 13's full run).

Each photo's label is its folder's class, its background the one images.csv gives. The pack is
written by the collector's own writer (`leaf_collector.fieldpack.write_pack`), so its layout,
checksums and held-out rule are exactly what `leaf-collector export-field-pack` writes. One thing
is stricter than an export from base: the shipped model was trained on this folder's train and
val splits (models/split-manifest.csv), so a photo the pack's rule holds out is kept only when the
manifest put it in the test split, and a photo the rule would train on only when the manifest did
not. The held-out part is then a part no model here has seen, and the before/after on it is fair
to both.

    python -m models.pipeline.shared_field_pack OUT_DIR [--data ../shared/data] [--manifest models/split-manifest.csv]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from leaf_collector import fieldpack

REPO = Path(__file__).resolve().parents[2]
SOURCE = "field-apple"
LABELLER = "folder-name"  # who "labelled": the shared folder's class, as its README describes


class SharedFiles:
    """The PhotoStore the collector's writer reads from: the shared folder's files by their sha256."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def has(self, sha256: str) -> bool:
        return sha256 in self.files

    def put(self, sha256: str, data: bytes) -> bool:
        raise PermissionError("the shared folder is read-only")

    def get(self, sha256: str) -> bytes | None:
        path = self.files.get(sha256)
        return path.read_bytes() if path else None


def plan_from_manifest(data: Path, manifest: Path) -> tuple[fieldpack.Plan, SharedFiles, dict[str, int]]:
    plan = fieldpack.Plan()
    files: dict[str, Path] = {}
    dropped = {"held_out_by_rule_but_trained_on": 0, "train_by_rule_but_test_split": 0}
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] == SOURCE]
    for row in sorted(rows, key=lambda r: r["sha256"]):
        sha, path = row["sha256"], data / row["file"]
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            raise SystemExit(f"{path}: its sha256 is not the manifest's; the shared folder changed")
        held_out = fieldpack.is_held_out(sha)
        if held_out and row["split"] != "test":
            dropped["held_out_by_rule_but_trained_on"] += 1
            continue
        if not held_out and row["split"] == "test":
            dropped["train_by_rule_but_test_split"] += 1
            continue
        plan.labelled += 1
        photo = fieldpack.PackPhoto(sha, row["slug"], {})
        photo.row.update(
            {column: "" for column in fieldpack.PROVENANCE_COLUMNS}
            | {
                "sha256": sha,
                "slug": row["slug"],
                "part": photo.part,
                "file": photo.file,
                "device_id": "shared-folder",
                "labellers": LABELLER,
                "labels": row["slug"],
                "agreement": "1/1",
                "background": row["background"],  # the shared folder's images.csv, checked by eye
            }
        )
        plan.photos.append(photo)
        files[sha] = path
    plan.photos.sort(key=lambda ph: (ph.slug, ph.sha256))
    return plan, SharedFiles(files), dropped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.pipeline.shared_field_pack", description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--manifest", type=Path, default=REPO / "models" / "split-manifest.csv")
    ap.add_argument("--replace", action="store_true")
    args = ap.parse_args(argv)
    plan, store, dropped = plan_from_manifest(args.data, args.manifest)
    summary = fieldpack.write_pack(args.out, plan, store, replace=args.replace, now=datetime.now(UTC))
    print(summary.line(args.out))
    print(
        f"left out so that no model here was trained on a held-out photo: "
        f"{dropped['held_out_by_rule_but_trained_on']} the rule holds out but the manifest trained on, "
        f"{dropped['train_by_rule_but_test_split']} the rule would train on but are in the test split"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
