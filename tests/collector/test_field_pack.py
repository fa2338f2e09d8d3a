"""The field pack (`leaf-collector export-field-pack`) and the page's "Models on the fleet", on a real
collector over HTTP and a real PostgreSQL: records through the batch API, real JPEGs in the photo store."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest

from leaf_collector.cli import main
from leaf_collector.db import connect
from leaf_collector.fieldfigures import outcome
from tests.helpers.collector import call, issue_token
from tests.helpers.labelling import add_field_photo


def _accounts(dsn: str, *names: str) -> None:
    with connect(dsn) as conn:
        for name in names:
            conn.execute("INSERT INTO accounts (username, password_hash) VALUES (%s, 'not-a-real-hash')", (name,))


def _label(dsn: str, sha: str, username: str, label: str, background: str | None = None) -> None:
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO labels (photo_sha256, username, label, background) VALUES (%s, %s, %s, %s)",
            (sha, username, label, background),
        )


@pytest.fixture
def base(collector, dsn: str):
    """pi-01's field photos, labelled by alice and bob in every way the pack must handle."""
    token = issue_token(dsn, "pi-01")
    _accounts(dsn, "alice", "bob")

    def photo(n: int, **changes):
        return add_field_photo(collector, dsn, token, "pi-01", n, **changes)

    p = {
        "agreed": photo(0, top1_slug="tomato__late_blight", crops=["tomato"]),
        "single": photo(1, top1_slug="tomato__late_blight", top1_probability=0.55),
        "split": photo(2, top1_slug="tomato__late_blight"),
        "unusable": photo(3, top1_slug="tomato__late_blight"),
        "no_leaf": photo(4, verdict="retake", reason="no_leaf", top1_slug=None, top1_probability=None, crop="",
                         condition="", topk=[]),
        "other": photo(5, verdict="unknown", reason="other_plant", top1_slug="other__plant", crop="",
                       condition=""),
        "held": photo(6, top1_slug="apple__healthy", crop="Apple", condition="Healthy"),
        "later": photo(7, top1_slug="tomato__late_blight"),
        "both_unusable": photo(8, top1_slug="tomato__late_blight"),
        "held2": photo(11, top1_slug="tomato__late_blight"),
    }  # fmt: skip
    for who, background in (("alice", "natural"), ("bob", "plain")):  # the label agreed, the background not
        _label(dsn, p["agreed"]["sha"], who, "tomato__late_blight", background)
        _label(dsn, p["both_unusable"]["sha"], who, "unusable")
    _label(dsn, p["single"]["sha"], "alice", "potato__early_blight", "plain")
    _label(dsn, p["split"]["sha"], "alice", "tomato__late_blight")
    _label(dsn, p["split"]["sha"], "bob", "tomato__leaf_mold")
    _label(dsn, p["unusable"]["sha"], "alice", "unusable")
    _label(dsn, p["no_leaf"]["sha"], "alice", "not_a_leaf")
    _label(dsn, p["other"]["sha"], "bob", "other_plant")
    _label(dsn, p["held"]["sha"], "alice", "apple__healthy", "natural")
    _label(dsn, p["held2"]["sha"], "bob", "tomato__early_blight")
    return collector, p


def _export(collector, dsn: str, target: Path, *extra: str) -> int:
    return main(["export-field-pack", str(target), "--dsn", dsn, "--photo-dir", str(collector.app.photos.root), *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _parts(pack: Path) -> dict[str, str]:
    return {r["sha256"]: r["part"] for r in _rows(pack / "provenance.csv")}


def _sha256sum_check(pack: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=pack, capture_output=True, text=True, timeout=60
    )


def test_the_pack_holds_agreed_photos_in_slug_folders_with_classes_provenance_and_checksums(
    base, dsn: str, tmp_path: Path, capsys
) -> None:
    collector, p = base
    pack = tmp_path / "pack"
    assert _export(collector, dsn, pack) == 0
    out = capsys.readouterr().out
    assert (
        f"field pack {pack}: photos labelled 9, exported 6 (held out 2); left out: disagreements 1, unusable 2, "
        "missing or damaged 0" in out
    )
    assert not (tmp_path / "pack.partial").exists()

    expected = {
        "agreed": "tomato__late_blight",
        "single": "potato__early_blight",
        "no_leaf": "background__no_leaf",
        "other": "other__plant",
        "held": "apple__healthy",
        "held2": "tomato__early_blight",
    }
    images = sorted(f.relative_to(pack).as_posix() for f in pack.glob("*/*.jpg"))
    assert images == sorted(f"{slug}/{p[key]['sha']}.jpg" for key, slug in expected.items())
    for key, slug in expected.items():
        assert (pack / slug / f"{p[key]['sha']}.jpg").read_bytes() == p[key]["data"]  # the photo as it was sent
    for left_out in ("split", "unusable", "both_unusable", "later"):
        assert not list(pack.glob(f"*/{p[left_out]['sha']}.jpg"))
    assert sorted(f.name for f in pack.iterdir()) == sorted(
        ["SHA256SUMS", "classes.csv", "pack.json", "provenance.csv", *{s for s in expected.values()}]
    )

    manifest = json.loads((pack / "pack.json").read_text())
    rule = manifest["held_out_rule"]
    assert (manifest["format"], manifest["format_version"]) == ("leaf-field-pack", 1)

    def held_out(sha: str) -> bool:  # recomputed from pack.json alone, as the training side does
        return int(sha[: rule["hex_digits"]], 16) % rule["modulus"] < rule["held_out_below"]

    provenance = {r["sha256"]: r for r in _rows(pack / "provenance.csv")}
    assert set(provenance) == {p[k]["sha"] for k in expected}
    assert {k: provenance[p[k]["sha"]]["part"] for k in expected} == {
        k: "held_out" if held_out(p[k]["sha"]) else "train" for k in expected
    }
    assert {r["part"] for r in provenance.values()} == {"train", "held_out"}
    assert sum(held_out(p[k]["sha"]) for k in expected) == 2

    agreed = provenance[p["agreed"]["sha"]]
    assert agreed["slug"] == "tomato__late_blight"
    assert agreed["file"] == f"tomato__late_blight/{p['agreed']['sha']}.jpg"
    assert (agreed["device_id"], agreed["diagnosis_id"]) == ("pi-01", p["agreed"]["id"])
    assert agreed["created_at"] == "2025-06-01T10:00:00.000Z"
    assert (agreed["verdict"], agreed["top1_slug"], agreed["top1_probability"]) == (
        "diagnosis",
        "tomato__late_blight",
        "0.9100",
    )
    assert agreed["crops"] == "tomato"
    assert (agreed["labellers"], agreed["labels"], agreed["agreement"]) == (
        "alice;bob",
        "tomato__late_blight;tomato__late_blight",
        "2/2",
    )
    assert agreed["outcome"] == "right"
    assert {k: provenance[p[k]["sha"]]["background"] for k in expected} == {
        "agreed": "",  # alice saw it on the plant, bob on paper: no background is claimed
        "single": "plain",
        "no_leaf": "",
        "other": "",
        "held": "natural",
        "held2": "",
    }
    single = provenance[p["single"]["sha"]]
    assert (single["labellers"], single["agreement"], single["outcome"]) == ("alice", "1/1", "wrong")
    assert single["top1_probability"] == "0.5500"
    no_leaf = provenance[p["no_leaf"]["sha"]]
    assert (no_leaf["labels"], no_leaf["verdict"], no_leaf["reason"], no_leaf["outcome"]) == (
        "not_a_leaf",
        "retake",
        "no_leaf",
        "refused",
    )
    assert no_leaf["top1_slug"] == "" and no_leaf["top1_probability"] == ""
    other = provenance[p["other"]["sha"]]
    assert (other["labels"], other["slug"], other["outcome"]) == ("other_plant", "other__plant", "right")

    classes = _rows(pack / "classes.csv")
    assert [r["slug"] for r in classes] == sorted(set(expected.values()))
    for row in classes:
        mine = [r for r in provenance.values() if r["slug"] == row["slug"]]
        assert int(row["photos"]) == len(mine) == int(row["train"]) + int(row["held_out"])
        assert int(row["held_out"]) == sum(r["part"] == "held_out" for r in mine)
        assert manifest["classes"][row["slug"]] == {"train": int(row["train"]), "held_out": int(row["held_out"])}
    assert manifest["counts"] == {
        "labelled": 9,
        "exported": 6,
        "train": 4,
        "held_out": 2,
        "disagreements": 1,
        "unusable": 2,
        "missing": 0,
    }

    check = _sha256sum_check(pack)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = sorted(line.split("  ", 1)[1] for line in (pack / "SHA256SUMS").read_text().splitlines())
    everything = sorted(f.relative_to(pack).as_posix() for f in pack.rglob("*") if f.is_file())
    assert listed == [f for f in everything if f != "SHA256SUMS"]
    (pack / "classes.csv").write_text("slug,photos,train,held_out\n")  # a tampered copy is caught
    assert _sha256sum_check(pack).returncode != 0


def test_two_exports_are_identical_but_for_created_at_and_a_photo_keeps_its_side(
    base, dsn: str, tmp_path: Path
) -> None:
    collector, p = base
    first, second = tmp_path / "a", tmp_path / "b"
    assert _export(collector, dsn, first) == 0
    assert _export(collector, dsn, second) == 0
    files = sorted(f.relative_to(first) for f in first.rglob("*") if f.is_file())
    assert files == sorted(f.relative_to(second) for f in second.rglob("*") if f.is_file())
    differ = [f.as_posix() for f in files if (first / f).read_bytes() != (second / f).read_bytes()]
    assert set(differ) <= {"pack.json", "SHA256SUMS"}
    one, two = (json.loads((d / "pack.json").read_text()) for d in (first, second))
    assert one.pop("created_at") <= two.pop("created_at")
    assert one == two

    def sums_without_manifest(pack: Path) -> list[str]:
        return [line for line in (pack / "SHA256SUMS").read_text().splitlines() if not line.endswith("  pack.json")]

    assert sums_without_manifest(first) == sums_without_manifest(second)

    before = _parts(first)
    _label(dsn, p["later"]["sha"], "alice", "tomato__late_blight")  # more photos labelled, more to come
    for n in (14, 17, 9):
        extra = add_field_photo(collector, dsn, issue_token(dsn, f"pi-{n}"), f"pi-{n}", n)
        _label(dsn, extra["sha"], "bob", "tomato__late_blight")
    third = tmp_path / "c"
    assert _export(collector, dsn, third) == 0
    after = _parts(third)
    assert len(after) == len(before) + 4
    assert {sha: after[sha] for sha in before} == before
    assert after[p["later"]["sha"]] == "train"
    assert json.loads((third / "pack.json").read_text())["counts"]["held_out"] == 4


def test_a_damaged_or_missing_stored_photo_is_reported_and_left_out(base, dsn: str, tmp_path: Path, capsys) -> None:
    collector, p = base
    store = collector.app.photos
    damaged = store.path(p["agreed"]["sha"])
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    store.path(p["single"]["sha"]).unlink()
    pack = tmp_path / "pack"
    assert _export(collector, dsn, pack) == 0
    captured = capsys.readouterr()
    assert f"left out photo {p['agreed']['sha']}: unreadable or damaged" in captured.err
    assert f"left out photo {p['single']['sha']}: missing from the photo store" in captured.err
    assert "exported 4 (held out 2)" in captured.out and "missing or damaged 2" in captured.out
    provenance = _parts(pack)
    assert p["agreed"]["sha"] not in provenance and p["single"]["sha"] not in provenance
    assert not (pack / "potato__early_blight").exists()  # the class's only photo was missing
    assert "potato__early_blight" not in (pack / "classes.csv").read_text()
    manifest = json.loads((pack / "pack.json").read_text())
    assert manifest["counts"]["missing"] == 2
    assert {m["sha256"] for m in manifest["missing"]} == {p["agreed"]["sha"], p["single"]["sha"]}
    assert _sha256sum_check(pack).returncode == 0


def test_a_foreign_folder_is_refused_and_a_previous_pack_is_replaced_only_when_asked(
    base, dsn: str, tmp_path: Path, capsys
) -> None:
    collector, p = base
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine\n")
    assert _export(collector, dsn, foreign) == 2
    assert "holds no field pack" in capsys.readouterr().err
    assert sorted(f.name for f in foreign.iterdir()) == ["todo.txt"]
    assert not (tmp_path / "notes.partial").exists()
    assert _export(collector, dsn, foreign, "--replace") == 2  # --replace replaces packs only
    assert (foreign / "todo.txt").read_text() == "mine\n"

    assert main(["export-field-pack", str(tmp_path / "x"), "--dsn", dsn, "--photo-dir", str(tmp_path / "no")]) == 2
    assert f"no photo store at {tmp_path / 'no'}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert _export(collector, dsn, a_file) == 2
    assert "is a file" in capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert _export(collector, dsn, empty) == 0  # an empty folder is fine
    assert (empty / "pack.json").is_file()

    pack = tmp_path / "pack"
    assert _export(collector, dsn, pack) == 0
    capsys.readouterr()
    assert _export(collector, dsn, pack) == 2
    assert "pass --replace" in capsys.readouterr().err
    _label(dsn, p["later"]["sha"], "bob", "tomato__late_blight")
    assert p["later"]["sha"] not in _parts(pack)
    assert _export(collector, dsn, pack, "--replace") == 0
    assert p["later"]["sha"] in _parts(pack)
    assert (pack / "tomato__late_blight" / f"{p['later']['sha']}.jpg").is_file()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["empty", "file", "notes", "pack"]  # nothing left aside
    assert _sha256sum_check(pack).returncode == 0

    (pack / "tomato__late_blight" / "my-notes.txt").write_text("keep me\n")
    assert _export(collector, dsn, pack, "--replace") == 2  # a file of someone's inside the pack: not lost
    assert "not part of its field pack (tomato__late_blight/my-notes.txt)" in capsys.readouterr().err
    assert (pack / "tomato__late_blight" / "my-notes.txt").read_text() == "keep me\n"


def test_a_cut_off_export_never_looks_finished_and_is_cleaned_up_by_the_next(
    base, dsn: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    collector, _ = base
    from leaf_collector import fieldpack

    def cut_off(*_args, **_kw):
        raise KeyboardInterrupt  # the export is stopped while it writes the checksums

    pack = tmp_path / "pack"
    monkeypatch.setattr(fieldpack, "fsync_dir", cut_off)
    assert _export(collector, dsn, pack) == 130
    assert not pack.exists()
    partial = tmp_path / "pack.partial"
    assert (partial / ".leaf-field-pack-incomplete").is_file()
    monkeypatch.undo()
    assert _export(collector, dsn, pack) == 0
    assert not partial.exists() and (pack / "pack.json").is_file()

    stranger = tmp_path / "other.partial"
    stranger.mkdir()
    (stranger / "x").write_text("someone's\n")
    assert _export(collector, dsn, tmp_path / "other") == 2
    assert "is not a cut-off export" in capsys.readouterr().err
    assert (stranger / "x").read_text() == "someone's\n"


def test_outcomes_follow_the_training_pipelines_rule() -> None:
    assert outcome("diagnosis", None, "tomato__late_blight", "tomato__late_blight") == "right"
    assert outcome("diagnosis", None, "tomato__leaf_mold", "tomato__late_blight") == "wrong"
    assert outcome("retake", "not_sure", "tomato__late_blight", "tomato__late_blight") == "refused"
    assert outcome("retake", "no_leaf", None, "background__no_leaf") == "refused"
    assert outcome("unknown", "unknown_condition", "tomato__leaf_mold", "tomato__late_blight") == "unknown"
    assert outcome("unknown", "other_plant", "other__plant", "other__plant") == "right"
    assert outcome("unknown", "other_plant", "other__plant", "tomato__healthy") == "unknown"


def test_a_background_is_agreed_by_those_who_said_one() -> None:
    from leaf_collector.consensus import agreed_background

    assert agreed_background(["natural", None]) == "natural"  # not saying is no vote
    assert agreed_background(["plain", "plain"]) == "plain"
    assert agreed_background(["natural", "plain"]) == ""
    assert agreed_background([None, None]) == ""


# ---------------------------------------------------------------- the page: models on the fleet


def _model_row(html: str, device: str) -> list[str]:
    table = re.search(r'<table id="models">(.*?)</table>', html, re.S)
    assert table, html
    for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells and cells[0] == device:
            return cells
    raise AssertionError(f"no row for {device}")


def test_the_page_shows_each_devices_model_since_its_rollout_and_its_field_figures(collector, dsn: str) -> None:
    tokens = {d: issue_token(dsn, d) for d in ("pi-01", "pi-02", "pi-03")}
    _accounts(dsn, "alice", "bob")
    v1 = {"model_version": "leafnet-1", "model_sha256": "ab" * 32}
    v2 = {"model_version": "leafnet-2<b>", "model_sha256": "cd" * 32}

    def photo(
        device: str, n: int, day: int, model: dict[str, str], label: str | list[str], seen: str | None = None, **changes
    ) -> None:
        sent = add_field_photo(
            collector, dsn, tokens[device], device, n, created_at=f"2025-06-{day:02d}T10:00:00.000Z", **model, **changes
        )
        for who, given in zip(("alice", "bob"), [label] if isinstance(label, str) else label, strict=False):
            _label(dsn, sent["sha"], who, given, seen)

    late = {"top1_slug": "tomato__late_blight"}
    # pi-01 ran leafnet-1 (its labelled photos no longer count), then leafnet-2 from 2025-06-05
    photo("pi-01", 0, 1, v1, "tomato__late_blight", **late)
    photo("pi-01", 1, 2, v1, "tomato__leaf_mold", **late)
    photo("pi-01", 2, 5, v2, "tomato__late_blight", "natural", **late)  # right, on the plant
    photo("pi-01", 3, 6, v2, "tomato__late_blight", "plain", **late)  # right, picked
    photo("pi-01", 4, 6, v2, "tomato__late_blight", verdict="retake", reason="not_sure")  # refused
    photo("pi-01", 5, 7, v2, "tomato__healthy", verdict="unknown", reason="unknown_condition", **late)  # unknown
    photo("pi-01", 6, 7, v2, "apple__healthy", "natural", **late)  # wrong, on the plant
    photo("pi-01", 7, 8, v2, ["tomato__late_blight", "tomato__leaf_mold"], **late)  # disagreement: not counted
    photo("pi-01", 8, 8, v2, "unusable", **late)  # not counted
    photo("pi-01", 9, 8, v2, "other_plant", verdict="unknown", reason="other_plant", top1_slug="other__plant")  # right
    # pi-02 runs leafnet-1 and has sent photos nobody has labelled yet
    photo("pi-02", 10, 3, v1, [], **late)
    # pi-03 was rolled back: leafnet-1, leafnet-2, then leafnet-1 again from 2025-06-09
    photo("pi-03", 11, 2, v1, "tomato__late_blight", **late)
    photo("pi-03", 12, 4, v2, "tomato__late_blight", **late)
    photo("pi-03", 13, 9, v1, "tomato__leaf_mold", **late)  # wrong

    status, headers, body = call(collector.url + "/")
    html = body.decode()
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert "<h2>Models on the fleet</h2>" in html
    header = re.search(r'<table id="models"><thead><tr>(.*?)</tr>', html).group(1)
    assert re.findall(r"<th[^>]*>(.*?)</th>", header) == [
        "Device", "Model now", "Since (UTC)", "Right", "Refused", "Unknown", "Wrong", "Labelled", "On the plant",
        "Picked",
    ]  # fmt: skip
    assert _model_row(html, "pi-01") == [
        "pi-01", "leafnet-2&lt;b&gt; cdcdcdcdcdcd", "2025-06-05 10:00", "3", "1", "1", "1", "6",
        "1 of 2 right, 1 wrong", "1 of 1 right, 0 wrong",
    ]  # fmt: skip
    assert "leafnet-2<b>" not in html  # escaped
    assert _model_row(html, "pi-02") == [
        "pi-02", "leafnet-1 abababababab", "2025-06-03 10:00", "", "", "", "", "no labels yet", "", "",
    ]  # fmt: skip
    assert _model_row(html, "pi-03") == [
        "pi-03", "leafnet-1 abababababab", "2025-06-09 10:00", "0", "0", "0", "1", "1", "none said", "none said",
    ]  # fmt: skip


def test_the_page_says_so_when_no_device_has_sent_a_record(collector) -> None:
    status, _, body = call(collector.url + "/")
    assert status == 200
    assert '<p class="muted" id="models">No records yet.</p>' in body.decode()
