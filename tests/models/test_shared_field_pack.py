"""The full run's pack (models.pipeline.shared_field_pack): the shared field photos as if labelled at base.

Its held-out part must be photos no model here was trained or tuned on (the manifest's test
split), its train part none of the test split, and the pipeline must read it as the collector's
own export.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from models.pipeline import fieldpack, shared_field_pack, sources

REPO = Path(__file__).resolve().parents[2]


def test_the_shared_pack_holds_out_only_test_photos_and_reads_as_an_export(tmp_path: Path, shared_root: Path) -> None:
    out = tmp_path / "pack"
    assert shared_field_pack.main([str(out), "--data", str(shared_root)]) == 0
    with (REPO / "models" / "split-manifest.csv").open(newline="", encoding="utf-8") as fh:
        manifest = [r for r in csv.DictReader(fh) if r["source"] == "field-apple"]
    split_of = {r["sha256"]: r["split"] for r in manifest}
    background_of = {r["sha256"]: r["background"] for r in manifest}
    pack = fieldpack.read_pack(out, sources.known_slugs(shared_root))
    held = [p for p in pack.photos if p.part == "held_out"]
    trained = [p for p in pack.photos if p.part == "train"]
    assert held and trained
    assert {split_of[p.sha256] for p in held} == {"test"}
    assert "test" not in {split_of[p.sha256] for p in trained}
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with (out / "provenance.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["labellers"] for r in rows} == {shared_field_pack.LABELLER} and len(rows) == len(pack.photos)
    # the background travels as images.csv gives it, so the before/after can be read by background
    assert {p.sha256: p.background for p in pack.photos} == {p.sha256: background_of[p.sha256] for p in pack.photos}
    assert {p.background for p in held} == {"natural", "plain"}
