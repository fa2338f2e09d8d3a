"""A field pack exported at base (`leaf-collector export-field-pack`): read it, verify it, split it.

Layout: DIR/<slug>/<sha256>.jpg, DIR/classes.csv (slug, photos, train, held_out),
DIR/provenance.csv (sha256, slug, part, device_id, diagnosis_id, labellers, agreement, ...),
DIR/SHA256SUMS (every other file, `sha256sum -c` format) and DIR/pack.json (format 1 and the
held-out rule). The held-out part is recomputed here from each photo's own sha256 and checked
against the pack, so neither a bad export nor a hand edit can move a photo into training.

A photo's background, where its labellers said one, becomes its Entry's (natural / plain), so a
picked leaf on paper gets the same background swap as a lab photo and the before/after can be read
by background; unsaid, it is "field". The train part goes to the train split, except a seeded hash
share to val (VAL_SHARE), so early stopping, temperature and threshold also see field photos from
the fleet. The held-out part goes to its own split, HELD_OUT, which no training or tuning step
reads (guard_held_out).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .split import IMAGE_SUFFIXES, Entry, assign_split

SOURCE = "field-pack"
PACK_FORMAT, PACK_FORMAT_VERSION = "leaf-field-pack", 1  # what `leaf-collector export-field-pack` writes
HELD_OUT = "field-pack-held-out"
VAL_SHARE = 0.15
PARTS = ("train", "held_out")
SUMS = "SHA256SUMS"
PROVENANCE_NEEDS = ("sha256", "slug", "part")
BACKGROUNDS = ("natural", "plain", "")  # provenance.csv's background column; a pack without it says ""
UNSAID = "field"  # split.Entry.background of a field photo whose background nobody said
MAX_LISTED = 10  # problems named in one error message


class PackError(ValueError):
    """The pack cannot be trained on as it is; the message names every file at fault."""


class LeakError(RuntimeError):
    """A held-out photo reached a step that must never see it."""


@dataclass(frozen=True)
class HeldOutRule:
    hex_digits: int
    modulus: int
    below: int

    def held_out(self, sha256: str) -> bool:
        return int(sha256[: self.hex_digits], 16) % self.modulus < self.below


@dataclass(frozen=True)
class PackPhoto:
    sha256: str
    slug: str
    part: str  # train | held_out, as recomputed and checked
    file: str  # relative to the pack folder
    device_id: str = ""
    agreement: str = ""
    background: str = ""  # natural | plain as the labellers agreed; "" when not said (older packs too)


@dataclass(frozen=True)
class FieldPack:
    root: Path
    rule: HeldOutRule
    photos: tuple[PackPhoto, ...]
    meta: dict

    def counts(self) -> dict[str, int]:
        c = Counter(p.part for p in self.photos)
        return {part: c[part] for part in PARTS}

    def slugs(self) -> list[str]:
        return sorted({p.slug for p in self.photos})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fail(what: str, problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise PackError(f"{what}: " + "; ".join(problems[:MAX_LISTED]) + more)


def _rule(meta: dict) -> HeldOutRule:
    rule = meta.get("held_out_rule") or {}
    if rule.get("key") != "sha256":
        raise PackError(f"pack.json: held_out_rule key {rule.get('key')!r} unknown (expected 'sha256')")
    try:
        out = HeldOutRule(int(rule["hex_digits"]), int(rule["modulus"]), int(rule["held_out_below"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PackError(f"pack.json: held_out_rule needs integer hex_digits, modulus, held_out_below ({exc})") from None
    if not (1 <= out.hex_digits <= 64 and out.modulus > 0 and 0 <= out.below <= out.modulus):
        raise PackError(f"pack.json: held_out_rule out of range: {rule}")
    return out


def _read_sums(root: Path) -> dict[str, str]:
    """name -> sha256 from SHA256SUMS, every file checked, every file of the pack listed."""
    path = root / SUMS
    if not path.is_file():
        raise PackError(f"{path}: missing (the pack must list the sha256 of every file)")
    listed: dict[str, str] = {}
    problems = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        if not sep or len(digest) != 64 or not name:
            problems.append(f"line {n} is not '<sha256>  <file>'")
            continue
        listed[name] = digest.lower()
    _fail(f"{path}", problems)
    for name, digest in sorted(listed.items()):
        file = root / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            problems.append(f"{name}: outside the pack")
        elif not file.is_file():
            problems.append(f"{name}: listed but missing")
        elif _sha256(file) != digest:
            problems.append(f"{name}: sha256 differs from SHA256SUMS (changed after export)")
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {SUMS}
    problems += [f"{name}: not listed in SHA256SUMS" for name in sorted(on_disk - set(listed))]
    _fail(f"{root}: the files differ from {SUMS}", problems)
    return listed


def read_pack(root: Path, known_slugs: set[str] | list[str]) -> FieldPack:
    """The pack's photos, verified; a PackError naming what is wrong otherwise (nothing is changed)."""
    root = Path(root)
    if not (root / "pack.json").is_file():
        raise PackError(f"{root}: not a field pack (no pack.json)")
    try:
        meta = json.loads((root / "pack.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PackError(f"{root / 'pack.json'}: not JSON ({exc})") from None
    if (meta.get("format"), meta.get("format_version")) != (PACK_FORMAT, PACK_FORMAT_VERSION):
        raise PackError(
            f"{root / 'pack.json'}: format {meta.get('format')!r} version {meta.get('format_version')!r} unknown "
            f"(this pipeline reads {PACK_FORMAT!r} version {PACK_FORMAT_VERSION}, "
            "as leaf-collector export-field-pack writes)"
        )
    rule = _rule(meta)
    listed = _read_sums(root)
    by_stem = {(Path(n).parent.as_posix(), Path(n).stem): n for n in listed if Path(n).suffix.lower() in IMAGE_SUFFIXES}

    with (root / "provenance.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in PROVENANCE_NEEDS if c not in (reader.fieldnames or [])]
        if missing:
            raise PackError(f"{root / 'provenance.csv'}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    known = set(known_slugs)
    unknown = sorted({r["slug"] for r in rows} - known)
    if unknown:
        raise PackError(
            f"{root / 'provenance.csv'}: slug(s) {', '.join(unknown)} not a class of this model; "
            f"known: {', '.join(sorted(known))}"
        )
    photos, problems, seen = [], [], set()
    for n, r in enumerate(rows, 2):
        sha, slug, part = r["sha256"].strip().lower(), r["slug"].strip(), r["part"].strip()
        name = by_stem.get((slug, sha))
        where = name or f"{slug}/{sha}.jpg"
        if sha in seen:
            problems.append(f"{where}: listed twice in provenance.csv (line {n})")
            continue
        seen.add(sha)
        if name is None:
            problems.append(f"{where}: in provenance.csv (line {n}) but not in the pack")
            continue
        if listed[name] != sha:
            problems.append(f"{name}: its bytes' sha256 is {listed[name][:12]}..., not the name's")
            continue
        if part not in PARTS:
            problems.append(f"{name}: part {part!r} is neither train nor held_out")
            continue
        expected = "held_out" if rule.held_out(sha) else "train"
        if part != expected:
            problems.append(f"{name}: provenance.csv says {part}, the held-out rule says {expected}")
            continue
        background = (r.get("background") or "").strip()
        if background not in BACKGROUNDS:
            problems.append(f"{name}: background {background!r} is none of {', '.join(map(repr, BACKGROUNDS))}")
            continue
        photos.append(PackPhoto(sha, slug, part, name, r.get("device_id", ""), r.get("agreement", ""), background))
    named = {p.file for p in photos} | {by_stem.get((r["slug"].strip(), r["sha256"].strip().lower())) for r in rows}
    problems += [f"{name}: a photo not in provenance.csv" for name in sorted(set(by_stem.values()) - named)]
    _fail(f"{root}: provenance.csv does not match the photos", problems)
    _check_classes(root, photos)
    said = meta.get("counts") if isinstance(meta.get("counts"), dict) else {}
    have = Counter(p.part for p in photos)
    off = [f"{k} {said[k]} (the photos: {have[k]})" for k in PARTS if k in said and said[k] != have[k]]
    _fail(f"{root / 'pack.json'}: counts differ from provenance.csv", off)
    return FieldPack(root, rule, tuple(sorted(photos, key=lambda p: p.file)), meta)


def _check_classes(root: Path, photos: list[PackPhoto]) -> None:
    """classes.csv must say what provenance.csv says, so a reader of either sees the same pack."""
    path = root / "classes.csv"
    if not path.is_file():
        raise PackError(f"{path}: missing")
    want: dict[str, Counter] = {}
    for p in photos:
        want.setdefault(p.slug, Counter())[p.part] += 1
    problems = []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = {r["slug"]: r for r in csv.DictReader(fh)}
    for slug in sorted(set(rows) | set(want)):
        c = want.get(slug, Counter())
        expected = {"photos": c["train"] + c["held_out"], "train": c["train"], "held_out": c["held_out"]}
        r = rows.get(slug)
        got = {k: int(r.get(k) or 0) for k in expected} if r else None
        if got != expected:
            problems.append(f"{slug}: classes.csv says {got}, the photos are {expected}")
    _fail(f"{path}: counts differ from provenance.csv", problems)


def entries(pack: FieldPack, seed: int) -> list[Entry]:
    """Train part -> train (a seeded VAL_SHARE to val); held-out part -> HELD_OUT. File paths are pack-relative."""
    out = []
    for p in pack.photos:
        if p.part == "held_out":
            side = HELD_OUT
        else:
            side = "val" if assign_split(p.sha256, seed, val=VAL_SHARE, test=0.0) == "val" else "train"
        out.append(Entry(side, p.slug, p.file, p.sha256, SOURCE, p.slug, p.background or UNSAID, p.sha256))
    return out


def guard_held_out(seen: list[Entry], held_out: list[Entry]) -> None:
    """Raise LeakError if a photo given to training or tuning is (by split or by bytes) a held-out one."""
    wrong = [e.file for e in seen if e.split in (HELD_OUT, "test")]
    shas = {e.sha256 for e in held_out}
    same_bytes = [e.file for e in seen if e.sha256 in shas]
    if wrong or same_bytes:
        raise LeakError(f"held-out field photos reached training or tuning: {(wrong + same_bytes)[:MAX_LISTED]}")
