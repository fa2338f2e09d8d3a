"""`leaf-collector export-field-pack DIR`: the labelled field photos as a folder the training pipeline reads.

DIR/<slug>/<sha256>.jpg like ../shared/data/plantvillage, with classes.csv (counts per class and
part), provenance.csv (where each photo came from, what the device said, who labelled it, how
far they agreed, and the background they saw), pack.json (format, counts, the held-out rule) and SHA256SUMS over every
other file (`sha256sum -c SHA256SUMS` checks a copy).

The held-out part depends on a photo's own checksum and nothing else, so a photo never changes
side when more photos are labelled later, and the training side can recompute the rule from
pack.json. The pack is written to DIR.partial and renamed into place at the end, so a cut-off
export never looks like a finished one, and a folder that is not a pack is never overwritten.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leaf_collector import __version__
from leaf_collector.consensus import BACKGROUNDS, LABELS_BY_PHOTO, MARK_CLASSES, agreed_background, consensus
from leaf_collector.errors import CollectorFailure
from leaf_collector.fieldfigures import outcome
from leaf_collector.page import iso
from leaf_collector.photostore import PhotoStore, PhotoStoreError, fsync_dir

if TYPE_CHECKING:
    import psycopg

FORMAT = "leaf-field-pack"
FORMAT_VERSION = 1
TRAIN, HELD_OUT = "train", "held_out"
PACK_JSON, SUMS, CLASSES_CSV, PROVENANCE_CSV = "pack.json", "SHA256SUMS", "classes.csv", "provenance.csv"
_MARKER = ".leaf-field-pack-incomplete"  # only ever inside DIR.partial

_HEX_DIGITS, _MODULUS, _BELOW = 16, 100, 20
HELD_OUT_RULE: dict[str, Any] = {
    "key": "sha256",
    "hex_digits": _HEX_DIGITS,
    "modulus": _MODULUS,
    "held_out_below": _BELOW,
    "text": f"held out when int(sha256[:{_HEX_DIGITS}], 16) % {_MODULUS} < {_BELOW}; no training may use it",
}
CONSENSUS_RULE = (
    "a photo is exported when every label given to it is the same (one label is enough); photos whose labels "
    "differ are left out as disagreements; 'unusable' is left out; not_a_leaf and other_plant name classes; "
    f"its background ({' or '.join(BACKGROUNDS)}) is the one every labeller who said one agrees on, else empty"
)
PROVENANCE_COLUMNS = (
    "sha256",
    "slug",
    "part",
    "file",
    "device_id",
    "diagnosis_id",
    "created_at",
    "verdict",
    "reason",
    "top1_slug",
    "top1_probability",
    "crops",  # the crops the device chose among, ";"-separated; empty: every crop
    "outcome",  # the device's answer against the label: right / refused / unknown / wrong
    "labellers",  # ";"-separated, in the same order as labels
    "labels",
    "agreement",  # labels naming the class / labels given
    "background",  # natural (on the plant) / plain (picked, on paper or cloth) as the labellers agree; "": not said
)


class FieldPackError(CollectorFailure):
    """The pack cannot be written where asked; the message says why and what to do. Nothing was changed."""


def is_held_out(sha256: str) -> bool:
    """The held-out rule of pack.json's held_out_rule, from the photo's checksum alone."""
    return int(sha256[:_HEX_DIGITS], 16) % _MODULUS < _BELOW


# Each labelled photo with its labels and the diagnosis the labelling page showed for it (the first
# to arrive naming it: labelling._NAMED), in one statement so the export is one consistent snapshot.
_LABELLED = f"""
WITH given AS ({LABELS_BY_PHOTO})
SELECT g.photo_sha256, g.labellers, g.given, g.backgrounds, f.device_id AS sender, d.id, d.device_id, d.created_at,
       d.verdict, d.reason, d.top1_slug, d.top1_probability, d.crops
FROM given g JOIN field_photos f ON f.sha256 = g.photo_sha256
LEFT JOIN LATERAL (SELECT * FROM diagnoses x WHERE x.photo_sha256 = g.photo_sha256
                   ORDER BY x.received_at, x.id LIMIT 1) d ON true
ORDER BY g.photo_sha256
"""


@dataclass(frozen=True)
class PackPhoto:
    sha256: str
    slug: str
    row: dict[str, str]  # its provenance.csv row

    @property
    def file(self) -> str:
        return f"{self.slug}/{self.sha256}.jpg"

    @property
    def part(self) -> str:
        return HELD_OUT if is_held_out(self.sha256) else TRAIN


@dataclass
class Plan:
    """What the labels say should go into the pack, before any photo is read."""

    labelled: int = 0
    photos: list[PackPhoto] = field(default_factory=list)
    disagreements: int = 0
    unusable: int = 0


@dataclass
class Summary:
    labelled: int
    exported: int
    held_out: int
    disagreements: int
    unusable: int
    missing: list[tuple[str, str]]  # (sha256, what is wrong with it)

    def line(self, target: Path) -> str:
        return (
            f"field pack {target}: photos labelled {self.labelled}, exported {self.exported} "
            f"(held out {self.held_out}); left out: disagreements {self.disagreements}, unusable {self.unusable}, "
            f"missing or damaged {len(self.missing)}"
        )


def read_plan(conn: psycopg.Connection) -> Plan:
    plan = Plan()
    rows = conn.execute(_LABELLED).fetchall()
    for sha, labellers, given, said, sender, diagnosis_id, device, created, verdict, reason, top1, p, crops in rows:
        plan.labelled += 1
        agreed = consensus(given)
        if agreed.kind == "disagreement":
            plan.disagreements += 1
            continue
        if agreed.kind == "unusable":
            plan.unusable += 1
            continue
        photo = PackPhoto(sha, agreed.slug, {})
        photo.row.update(
            sha256=sha,
            slug=agreed.slug,
            part=photo.part,
            file=photo.file,
            device_id=device or sender,
            diagnosis_id=str(diagnosis_id or ""),
            created_at=iso(created),
            verdict=verdict or "",
            reason=reason or "",
            top1_slug=top1 or "",
            top1_probability="" if p is None else f"{p:.4f}",
            crops=";".join(crops or []),
            outcome=outcome(verdict, reason, top1, agreed.slug) if verdict else "",
            labellers=";".join(labellers),
            labels=";".join(given),
            agreement=agreed.agreement,
            background=agreed_background(said),
        )
        plan.photos.append(photo)
    plan.photos.sort(key=lambda ph: (ph.slug, ph.sha256))
    return plan


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def check_target(target: Path, replace: bool) -> None:
    """Refuse, before anything is read or written, a place where the pack would lose someone's files."""
    if target.exists() and not target.is_dir():
        raise FieldPackError(f"{target} is a file, not a folder; nothing was written")
    if target.is_dir() and any(target.iterdir()):
        previous = _pack_json(target)
        if previous is None:
            raise FieldPackError(
                f"{target} is not empty and holds no field pack (no {PACK_JSON} of format {FORMAT}); "
                f"nothing was written: name a new or empty folder"
            )
        if not replace:
            raise FieldPackError(
                f"{target} already holds a field pack (made {previous.get('created_at', '?')}); "
                f"pass --replace to write a new one in its place"
            )
        strangers = _files_not_in_pack(target)
        if strangers:
            shown = ", ".join(strangers[:5]) + (" ..." if len(strangers) > 5 else "")
            raise FieldPackError(
                f"{target} holds {len(strangers)} file(s) that are not part of its field pack ({shown}); "
                f"nothing was replaced: move them out first"
            )
    partial = partial_path(target)
    if partial.exists() and not (partial / _MARKER).is_file() and _pack_json(partial) is None:
        raise FieldPackError(
            f"{partial} exists and is not a cut-off export of this command; nothing was written: move it away"
        )


def write_pack(target: Path, plan: Plan, store: PhotoStore, *, replace: bool, now: datetime) -> Summary:
    """Write the pack into DIR.partial, verify each photo against its checksum, then rename it to DIR."""
    check_target(target, replace)
    partial = partial_path(target)
    if partial.exists():
        shutil.rmtree(partial)  # a cut-off export of ours (check_target made sure)
    partial.mkdir(parents=True)
    (partial / _MARKER).write_bytes(b"")
    files: dict[str, str] = {}  # relative path -> sha256
    missing: list[tuple[str, str]] = []
    exported: list[PackPhoto] = []
    for photo in plan.photos:
        problem = _copy_photo(store, photo, partial)
        if problem:
            missing.append((photo.sha256, problem))
            continue
        files[photo.file] = photo.sha256
        exported.append(photo)
    classes = Counter((ph.slug, ph.part) for ph in exported)
    slugs = sorted({ph.slug for ph in exported})
    files[CLASSES_CSV] = _write(partial / CLASSES_CSV, _classes_csv(slugs, classes))
    files[PROVENANCE_CSV] = _write(partial / PROVENANCE_CSV, _csv(PROVENANCE_COLUMNS, [ph.row for ph in exported]))
    held_out = sum(1 for ph in exported if ph.part == HELD_OUT)
    summary = Summary(plan.labelled, len(exported), held_out, plan.disagreements, plan.unusable, missing)
    manifest = _manifest(summary, slugs, classes, now)
    files[PACK_JSON] = _write(partial / PACK_JSON, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    _write(partial / SUMS, "".join(f"{files[name]}  {name}\n" for name in sorted(files)).encode())
    for folder in {partial, *(partial / s for s in slugs)}:
        fsync_dir(folder)
    (partial / _MARKER).unlink()
    _put_in_place(partial, target)
    return summary


def _copy_photo(store: PhotoStore, photo: PackPhoto, partial: Path) -> str:
    """Copy one photo into the pack; what is wrong with it when it cannot be ("" when copied)."""
    try:
        data = store.get(photo.sha256)
    except PhotoStoreError as exc:
        return f"unreadable or damaged in the photo store ({exc})"
    if data is None:
        return "missing from the photo store"
    if hashlib.sha256(data).hexdigest() != photo.sha256:
        return "damaged in the photo store (its checksum differs)"
    path = partial / photo.file
    path.parent.mkdir(exist_ok=True)
    _write(path, data)
    return ""


def _classes_csv(slugs: list[str], classes: Counter[tuple[str, str]]) -> bytes:
    rows = [
        {
            "slug": s,
            "photos": str(classes[s, TRAIN] + classes[s, HELD_OUT]),
            "train": str(classes[s, TRAIN]),
            "held_out": str(classes[s, HELD_OUT]),
        }
        for s in slugs
    ]
    return _csv(("slug", "photos", "train", "held_out"), rows)


def _csv(columns: tuple[str, ...], rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _manifest(summary: Summary, slugs: list[str], classes: Counter[tuple[str, str]], now: datetime) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": iso(now),
        "collector_version": __version__,
        "layout": "<slug>/<sha256>.jpg; classes.csv; provenance.csv; SHA256SUMS (sha256sum -c) over every other file",
        "counts": {
            "labelled": summary.labelled,
            "exported": summary.exported,
            "train": summary.exported - summary.held_out,
            "held_out": summary.held_out,
            "disagreements": summary.disagreements,
            "unusable": summary.unusable,
            "missing": len(summary.missing),
        },
        "classes": {s: {"train": classes[s, TRAIN], "held_out": classes[s, HELD_OUT]} for s in slugs},
        "held_out_rule": HELD_OUT_RULE,
        "consensus": CONSENSUS_RULE,
        "marks": MARK_CLASSES,
        "missing": [{"sha256": sha, "problem": why} for sha, why in summary.missing],
    }


def _write(path: Path, data: bytes) -> str:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return hashlib.sha256(data).hexdigest()


def _put_in_place(partial: Path, target: Path) -> None:
    """Rename the finished pack to DIR; a previous pack is moved aside first and removed once the new one is in."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    old = None
    if target.exists():
        old = target.with_name(f"{target.name}.replaced-{os.getpid()}")
        target.rename(old)
    partial.rename(target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old)


def _pack_json(folder: Path) -> dict[str, Any] | None:
    """The folder's pack.json when it is a field pack's, else None."""
    try:
        data = json.loads((folder / PACK_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _files_not_in_pack(folder: Path) -> list[str]:
    try:
        listed = {
            line.split("  ", 1)[1] for line in (folder / SUMS).read_text(encoding="utf-8").splitlines() if "  " in line
        }
    except OSError:
        listed = set()
    listed.add(SUMS)
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    return [p for p in present if p not in listed]


def export(dsn: str, photo_dir: Path, target: Path, *, replace: bool, now: datetime) -> Summary:
    """Read the labels, then write the pack (the target is checked first, so a refusal costs no query)."""
    from leaf_collector import migrations
    from leaf_collector.db import connect
    from leaf_collector.photostore import DiskPhotoStore

    check_target(target, replace)
    if not photo_dir.is_dir():
        raise FieldPackError(f"no photo store at {photo_dir}: give --photo-dir as serve has it; nothing was written")
    with connect(dsn) as conn:
        migrations.check_current(conn)
        plan = read_plan(conn)
    return write_pack(target, plan, DiskPhotoStore(photo_dir), replace=replace, now=now)
