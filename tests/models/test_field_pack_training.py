"""Training on a field pack from base: the pack is verified, its held-out part never reaches training
or tuning, the new model is judged against the shipped one, and a worse one is not shipped."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from models.pipeline import build, card, compare, data, fieldpack, split
from tests.helpers.paths import MODEL, REPO

SAMPLES = REPO / "appliance" / "samples"
# Committed PlantVillage samples (appliance/samples/ATTRIBUTION.md) and the class each teaches.
PACK_SOURCES = {
    "03-apple-apple-scab.jpg": "apple__apple_scab",
    "09-apple-healthy.jpg": "apple__healthy",
    "08-background-no-leaf.jpg": "background__no_leaf",
    "01-tomato-late-blight.jpg": "tomato__late_blight",
}
RULE = {"key": "sha256", "hex_digits": 16, "modulus": 100, "held_out_below": 20}
KNOWN = {*PACK_SOURCES.values(), "other__plant", "corn__common_rust"}


def _held_out(sha: str) -> bool:
    return int(sha[:16], 16) % 100 < 20


def _variants(path: Path, count: int) -> list[bytes]:
    """Distinct photos of one sample (turned, mirrored, cropped, re-encoded), as a phone might take them."""
    base = Image.open(path).convert("RGB")
    out = []
    for i in range(count):
        img = base.rotate(90 * (i % 4), expand=True)
        img = ImageOps.mirror(img) if i % 2 else img
        w, h = img.size
        cut = 2 + i
        img = img.crop((cut, cut, w - cut, h - cut))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80 + i)
        out.append(buf.getvalue())
    return out


def write_sums(root: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}"
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS"
    ]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_pack(root: Path, per_sample: int = 8, extra: tuple[tuple[str, bytes], ...] = ()) -> Path:
    """A pack in the collector's export format, the held-out rule applied to every photo."""
    root.mkdir(parents=True)
    rows, counts = [], {}
    photos = [(slug, blob) for name, slug in PACK_SOURCES.items() for blob in _variants(SAMPLES / name, per_sample)]
    for i, (slug, blob) in enumerate([*photos, *extra]):
        n = i // per_sample
        (root / slug).mkdir(exist_ok=True)
        sha = hashlib.sha256(blob).hexdigest()
        (root / slug / f"{sha}.jpg").write_bytes(blob)
        part = "held_out" if _held_out(sha) else "train"
        rows.append([sha, slug, part, f"pi-{n % 2}", str(1000 + i), "ana;ben", "agree"])
        c = counts.setdefault(slug, {"train": 0, "held_out": 0})
        c[part] += 1
    with (root / "provenance.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sha256", "slug", "part", "device_id", "diagnosis_id", "labellers", "agreement"])
        w.writerows(sorted(rows))
    with (root / "classes.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["slug", "photos", "train", "held_out"])
        for slug, c in sorted(counts.items()):
            w.writerow([slug, c["train"] + c["held_out"], c["train"], c["held_out"]])
    total = {k: sum(c[k] for c in counts.values()) for k in ("train", "held_out")}
    meta = {
        "format": "leaf-field-pack",
        "format_version": 1,
        "created_at": "2026-12-02T12:00:00Z",
        "counts": total,
        "held_out_rule": RULE,
    }
    (root / "pack.json").write_text(json.dumps(meta), encoding="utf-8")
    write_sums(root)
    return root


@pytest.fixture
def pack(tmp_path) -> Path:
    return make_pack(tmp_path / "pack")


def _rows(pack: Path) -> list[dict[str, str]]:
    with (pack / "provenance.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_pack_is_read_and_its_held_out_part_gets_its_own_split(pack):
    read = fieldpack.read_pack(pack, KNOWN)
    rows = _rows(pack)
    assert len(read.photos) == len(rows) == 4 * 8
    assert read.counts()["held_out"] >= 2 and read.counts()["train"] >= 10  # the rule splits this pack both ways
    entries = fieldpack.entries(read, seed=7)
    for e in entries:
        assert (e.split == fieldpack.HELD_OUT) == _held_out(e.sha256), e.file
        assert e.split in ("train", "val", fieldpack.HELD_OUT) and e.source == fieldpack.SOURCE
        assert (pack / e.file).is_file() and split.file_sha256(pack / e.file) == e.sha256
    assert entries == fieldpack.entries(read, seed=7)


def _rewrite_provenance(pack: Path, rows: list[dict[str, str]]) -> None:
    with (pack / "provenance.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_sums(pack)


def test_a_pack_without_backgrounds_says_field_and_the_labellers_background_is_kept(pack):
    assert {e.background for e in fieldpack.entries(fieldpack.read_pack(pack, KNOWN), seed=7)} == {"field"}
    rows = _rows(pack)
    said = {r["sha256"]: ("natural", "plain", "")[i % 3] for i, r in enumerate(rows)}
    _rewrite_provenance(pack, [r | {"background": said[r["sha256"]]} for r in rows])
    entries = fieldpack.entries(fieldpack.read_pack(pack, KNOWN), seed=7)
    assert {e.sha256: e.background for e in entries} == {sha: bg or "field" for sha, bg in said.items()}


def test_an_unknown_background_is_named(pack):
    rows = _rows(pack)
    _rewrite_provenance(pack, [r | {"background": "lab" if i == 0 else ""} for i, r in enumerate(rows)])
    with pytest.raises(fieldpack.PackError, match=r"background 'lab' is none of 'natural', 'plain', ''"):
        fieldpack.read_pack(pack, KNOWN)


def test_a_changed_photo_is_named(pack):
    victim = next((pack / "apple__healthy").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(fieldpack.PackError, match=rf"apple__healthy/{victim.name}: sha256 differs"):
        fieldpack.read_pack(pack, KNOWN)


def test_a_file_not_in_the_sums_is_named(pack):
    (pack / "apple__healthy" / "extra.jpg").write_bytes(b"not listed")
    with pytest.raises(fieldpack.PackError, match=r"apple__healthy/extra.jpg: not listed in SHA256SUMS"):
        fieldpack.read_pack(pack, KNOWN)


def test_a_wrong_held_out_column_is_named_even_with_fresh_sums(pack):
    rows = _rows(pack)
    moved = next(r for r in rows if r["part"] == "held_out")
    moved["part"] = "train"  # someone wants a held-out photo trained on
    with (pack / "provenance.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_sums(pack)  # the sums agree: only the recomputed rule can catch it
    with pytest.raises(fieldpack.PackError) as err:
        fieldpack.read_pack(pack, KNOWN)
    assert f"{moved['slug']}/{moved['sha256']}.jpg: provenance.csv says train, the held-out rule says held_out" in str(
        err.value
    )


def test_counts_in_pack_json_must_match_the_photos(pack):
    meta = json.loads((pack / "pack.json").read_text())
    meta["counts"]["held_out"] += 1
    (pack / "pack.json").write_text(json.dumps(meta))
    write_sums(pack)
    with pytest.raises(fieldpack.PackError, match=r"pack.json: counts differ .*held_out"):
        fieldpack.read_pack(pack, KNOWN)


def test_an_unknown_slug_lists_the_known_ones(pack):
    with pytest.raises(fieldpack.PackError) as err:
        fieldpack.read_pack(pack, KNOWN - {"tomato__late_blight"})
    text = str(err.value)
    assert "tomato__late_blight not a class of this model" in text
    assert "known: apple__apple_scab, apple__healthy, background__no_leaf, corn__common_rust" in text


def test_the_guard_stops_a_held_out_photo_by_split_or_by_bytes(pack):
    entries = fieldpack.entries(fieldpack.read_pack(pack, KNOWN), seed=7)
    held = [e for e in entries if e.split == fieldpack.HELD_OUT]
    seen = [e for e in entries if e.split != fieldpack.HELD_OUT]
    fieldpack.guard_held_out(seen, held)  # as the build calls it: no error
    with pytest.raises(fieldpack.LeakError):
        fieldpack.guard_held_out([*seen, held[0]], held)
    copy = split.Entry("train", held[0].slug, "plantvillage/x.jpg", held[0].sha256)  # same bytes, other source
    with pytest.raises(fieldpack.LeakError, match=r"plantvillage/x\.jpg"):
        fieldpack.guard_held_out([*seen, copy], held)


def _figures(right: int, wrong: int, leaf_right: int) -> dict:
    return {
        "field": {"photos": 10, "right": right, "refused": 10 - right - wrong, "unknown": 0, "wrong": wrong},
        "lab": {"leaf_photos": 20, "leaf_right": leaf_right, "leaf_top1": leaf_right / 20},
    }


def _on_plant(figures: dict, right: int, wrong: int) -> dict:
    plant = {"photos": 4, "right": right, "refused": 4 - right - wrong, "unknown": 0, "wrong": wrong}
    return figures | {"field_by_background": {"natural": plant}}


def test_a_model_that_gains_on_paper_and_loses_on_the_plant_is_worse():
    before = _on_plant(_figures(7, 1, 18), right=3, wrong=0)
    better_in_all = _on_plant(_figures(8, 1, 18), right=2, wrong=1)  # one more right in all, fewer on the tree
    assert compare.worse(before, better_in_all) == [
        "held-out field photos on the plant right: 2 < 3 of 4",
        "held-out field photos on the plant wrong: 1 > 0 of 4",
    ]
    assert compare.worse(before, _on_plant(_figures(8, 1, 18), right=3, wrong=0)) == []
    assert compare.worse(_figures(7, 1, 18), better_in_all) == []  # no photo said to be on the plant before


def test_one_photo_makes_a_model_worse_and_ties_are_not():
    before = _figures(7, 1, 18)
    assert compare.worse(before, _figures(7, 1, 18)) == []
    assert compare.worse(before, _figures(8, 0, 19)) == []
    assert compare.worse(before, _figures(6, 1, 18)) == ["held-out field photos right: 6 < 7 of 10"]
    assert compare.worse(before, _figures(7, 2, 18)) == ["held-out field photos wrong: 2 > 1 of 10"]
    assert len(compare.worse(before, _figures(9, 0, 17))) == 1  # better in the field, worse in the lab


def test_a_bad_pack_stops_the_build_before_training(pack, tmp_path, shared_root, shared_weights):
    victim = next((pack / "apple__apple_scab").iterdir())
    victim.write_bytes(b"")
    out = tmp_path / "out"
    args = ["--smoke", "--data", str(shared_root), "--weights", str(shared_weights), "--field-pack", str(pack)]
    with pytest.raises(SystemExit, match=f"field pack refused: .*{victim.name}"):
        build.main([*args, "--out", str(out)])
    assert not out.exists()


class Spy:
    """Calls through to the real function and keeps the pixels it was given."""

    def __init__(self, fn, arg: int) -> None:
        self.fn, self.arg, self.seen = fn, arg, []

    def __call__(self, *a, **kw):
        self.seen.append(np.asarray(a[self.arg]))
        return self.fn(*a, **kw)


def _seed_shipped(out: Path) -> dict[str, bytes]:
    out.mkdir()
    files = {"leafnet-int8.onnx": b"shipped int8", "split-manifest.csv": b"shipped manifest"}
    for name, blob in files.items():
        (out / name).write_bytes(blob)
    return files


@pytest.mark.slow
def test_smoke_build_with_a_pack_refuses_a_worse_model_and_ships_it_when_told(
    tmp_path, shared_root, shared_weights, monkeypatch, capsys
):
    # A lab photo the smoke run would use (its first apple scab photos) is in the pack too, held out if
    # one of them is: the pack's label and part win, and it must leave the lab source.
    lab = sorted((shared_root / "plantvillage" / "apple__apple_scab").glob("*.jpg"))[:12]
    twin = next((p for p in lab if _held_out(split.file_sha256(p))), lab[0])
    pack = make_pack(tmp_path / "pack", extra=(("apple__apple_scab", twin.read_bytes()),))
    args = ["--smoke", "--data", str(shared_root), "--weights", str(shared_weights)]
    args += ["--field-pack", str(pack), "--baseline", str(MODEL)]
    trained, tuned, calibrated = Spy(build.train, 1), Spy(build.ort_logits, 1), Spy(build.calibration_tensors, 0)
    monkeypatch.setattr(build, "train", trained)
    monkeypatch.setattr(build, "ort_logits", tuned)
    monkeypatch.setattr(build, "calibration_tensors", calibrated)

    # 1. Three training steps cannot beat the shipped model: refused, the shipped files stay.
    out = tmp_path / "out"
    shipped = _seed_shipped(out)
    assert build.main([*args, "--out", str(out)]) == build.EXIT_WORSE
    printed = capsys.readouterr().out
    assert "## Field pack: before / after" in printed and "REFUSED: worse than" in printed
    for name, blob in shipped.items():
        assert (out / name).read_bytes() == blob
    candidate = out / build.CANDIDATE
    assert (candidate / "leafnet-int8.onnx").stat().st_size > 100_000
    cmp = json.loads((candidate / build.COMPARISON).read_text())
    assert cmp["decision"] == "refused" and cmp["worse_because"]
    assert cmp["command"].startswith("python -m models.pipeline.build --smoke")

    # What the build recorded: every held-out photo in its own split, none in train or val.
    everything = split.read_manifest(candidate / "split-manifest.csv")
    assert [e.source for e in everything if e.sha256 == split.file_sha256(twin)] == [fieldpack.SOURCE]
    assert "also in the pack: counted as pack photos only" in printed
    manifest = [e for e in everything if e.source == fieldpack.SOURCE]
    held = [e for e in manifest if _held_out(e.sha256)]
    assert held and all(e.split == fieldpack.HELD_OUT for e in held)
    assert all(e.split in ("train", "val") for e in manifest if not _held_out(e.sha256))
    assert cmp["after"]["field"]["photos"] == cmp["before"]["field"]["photos"] == len(held)
    report = json.loads((candidate / "training-report.json").read_text())
    assert report["field_pack"]["held_out"] == len(held) and report["field_pack"]["train"] > 0

    # What the steps were given: no held-out photo's pixels reached training, quantization or tuning.
    held_px = data.load_pixels(held, pack).reshape(len(held), -1)
    pack_train = [e for e in manifest if e.split == "train"]
    given = {
        "training": trained.seen[0],
        "int8 calibration": calibrated.seen[0],
        "temperature and threshold": tuned.seen[0],
    }
    for step, px in given.items():
        flat = px.reshape(len(px), -1)
        assert not any((flat == h).all(1).any() for h in held_px), f"a held-out photo reached {step}"
    train_flat = trained.seen[0].reshape(len(trained.seen[0]), -1)
    train_px = data.load_pixels(pack_train, pack).reshape(len(pack_train), -1)
    assert all((train_flat == t).all(1).any() for t in train_px)  # the pack's train part was trained on

    # 2. The same build with --ship-even-if-worse replaces the shipped files, and says so.
    out2 = tmp_path / "out2"
    _seed_shipped(out2)
    assert build.main([*args, "--out", str(out2), "--ship-even-if-worse"]) == 0
    printed = capsys.readouterr().out
    assert "shipped anyway, as --ship-even-if-worse asks" in printed
    assert not (out2 / build.CANDIDATE).exists()
    from appliance.classifier import OnnxClassifier

    assert OnnxClassifier(out2 / "leafnet-int8.onnx", threads=1).info.version.endswith("-smoke")
    cmp2 = json.loads((out2 / build.COMPARISON).read_text())
    assert cmp2["decision"] == "shipped" and cmp2["shipped_even_if_worse"] is True
    section = card.field_pack(cmp2)
    assert "--ship-even-if-worse" in section and cmp2["command"] in section
    assert f"| all classes | {len(held)} | before (" in section
    assert f"| background not said | {len(held)} | before (" in section  # this pack's labellers said none
