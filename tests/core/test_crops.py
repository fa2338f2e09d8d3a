"""Choosing among some crops ([diagnosis] crops, `diagnose --crop`) and the "not known" verdict end to end.

Real onnxruntime on the shipped model where a model is needed; a classifier returning crafted
logits where a verdict must be forced; real SQLite, a real export folder and, where PostgreSQL
is installed, a real collector.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from appliance import config as config_module
from appliance import labels, screens, words
from appliance.classifier import OnnxClassifier
from appliance.cli import main
from appliance.config import loading as config_loading
from appliance.diagnosis import Diagnoser, resolve_crops
from appliance.errors import ConfigError
from appliance.export import Exporter
from appliance.export.exporter import diagnoses_csv
from appliance.result import UnknownReason, Verdict
from appliance.samples import sample_paths
from appliance.store import SqliteStore
from appliance.store.history import format_json, format_table
from appliance.vision.jpeg import encode_jpeg
from leaf_wire import reasons
from tests.helpers.collector import (
    device_config,
    in_process_collector,
    issue_token,
    unsynced_ids,
    write_token,
)
from tests.helpers.paths import MODEL
from tests.helpers.torture.support import config as export_config
from tests.helpers.torture.support import read_csv

LEAF = np.full((240, 320, 3), (40, 150, 60), np.uint8)  # usable: bright enough, leaf-coloured, sharp below
LEAF[::8] = (20, 90, 30)


@pytest.fixture(autouse=True)
def no_system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_loading, "DEFAULT_CONFIG_PATH", tmp_path / "etc" / "config.toml")


@pytest.fixture(scope="module")
def model() -> OnnxClassifier:
    return OnnxClassifier(MODEL, threads=1)


class CraftedClassifier:
    """A Classifier whose logits are chosen by the test: one big logit per wanted class."""

    def __init__(self, classes: tuple[str, ...], favour: dict[str, float]) -> None:
        self.row = np.array([[favour.get(c, 0.0) for c in classes]], dtype=np.float32)

    def logits(self, tensor: np.ndarray) -> np.ndarray:
        return self.row


def crafted(model: OnnxClassifier, favour: dict[str, float], classes: tuple[str, ...] | None = None, **kw):
    info = replace(model.info, classes=classes or model.info.classes, temperature=1.0)
    return Diagnoser(CraftedClassifier(info.classes, favour), info, **kw)


def with_other_plant(model: OnnxClassifier) -> tuple[str, ...]:
    """The model's classes with an other-plant class, whether or not this model has one."""
    classes = model.info.classes
    return classes if "other__plant" in classes else (*classes, "other__plant")


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- checking the crops against the model

CLASSES = ("apple__apple_scab", "apple__healthy", "grape__black_rot", "background__no_leaf", "other__plant")


def test_crops_are_checked_against_the_model_classes() -> None:
    assert resolve_crops(None, CLASSES) == ()
    assert resolve_crops([" Apple", "apple"], CLASSES) == ("apple",)
    with pytest.raises(ConfigError, match=r"'banana' not a crop this model knows; it knows apple, grape$"):
        resolve_crops(["banana"], CLASSES)
    with pytest.raises(ConfigError, match="the list is empty; name at least one of apple, grape"):
        resolve_crops([], CLASSES)
    # grape has a disease class but no healthy one: every healthy grape leaf would be called diseased
    with pytest.raises(ConfigError, match="no class grape__healthy, which the crop needs"):
        resolve_crops(["grape"], CLASSES)


def test_diagnoser_refuses_a_crop_its_model_lacks(model: OnnxClassifier) -> None:
    with pytest.raises(ConfigError, match="it knows apple, blueberry"):
        Diagnoser(model, model.info, crops=["banana"])
    lacking = tuple(c for c in model.info.classes if c != "apple__healthy")
    with pytest.raises(ConfigError, match="no class apple__healthy"):
        crafted(model, {}, lacking, crops=["apple"])


def test_config_file_crops_are_typed_and_checked(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.toml"
    for text, expected in (
        ("[diagnosis]\ncrops = []\n", "diagnosis.crops: must name at least one crop"),
        ('[diagnosis]\ncrops = "apple"\n', "diagnosis.crops: must be a list of strings"),
        ('[diagnosis]\ncrops = ["apple", 3]\n', "diagnosis.crops: must be a list of strings"),
        ('[diagnosis]\ncrops = ["Apple scab"]\n', 'diagnosis.crops: "apple scab" is not a crop name'),
    ):
        path.write_text(text)
        code, out, err = run(capsys, "config", "check", "--config", path)
        assert code == 2 and out == "", text
        assert f"{path}: {expected}" in err and "Traceback" not in err, err

    path.write_text('[diagnosis]\ncrops = ["banana"]\n')  # well formed: only the model can say it is wrong
    assert config_module.config_check(path) == []
    code, _, err = run(capsys, "config", "check", "--config", path)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: {path}: diagnosis.crops: 'banana' not a crop this model knows; it knows "
        + ", ".join(labels.crops_of(OnnxClassifier(MODEL, threads=1).info.classes))
    ]

    path.write_text('[diagnosis]\ncrops = ["Apple", "grape"]\n')
    assert run(capsys, "config", "check", "--config", path)[:2] == (0, f"OK: {path}\n")
    assert config_module.load_config(path).diagnosis.crops == ("apple", "grape")
    code, shown, _ = run(capsys, "config", "show", "--config", path)
    assert code == 0 and 'crops = ["apple", "grape"]' in shown
    assert run(capsys, "config", "show")[1].count("# crops = ") == 1  # absent: shown commented out


# ---------------------------------------------------------------- diagnose --crop


def test_diagnose_crop_flag_overrides_the_config_and_restricts_the_answer(tmp_path: Path, capsys) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[diagnosis]\ncrops = ["tomato"]\n')
    code, out, _ = run(capsys, "diagnose", "--json", "--config", path, "--crop", "apple", *sample_paths())
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == len(sample_paths())
    for row in rows:
        assert row["crops"] == ["apple"]
        assert row["verdict"] in ("diagnosis", "retake", "unknown")
        assert row["verdict"] != "unknown" or row["reason"] in ("other_plant", "unknown_condition")
        for ranked in row["top_k"]:
            slug = ranked["slug"]
            assert slug.startswith("apple__") or labels.is_no_leaf_class(slug) or labels.is_other_plant_class(slug)
    scab = next(r for r in rows if "apple-scab" in r["file"])
    assert (scab["verdict"], scab["top_k"][0]["slug"]) == ("diagnosis", "apple__apple_scab")

    code, out, _ = run(capsys, "diagnose", "--json", "--config", path, sample_paths()[0])
    assert json.loads(out)["crops"] == ["tomato"]  # without the flag, the config's crops
    code, out, _ = run(capsys, "diagnose", "--crop", "apple", "--crop", "grape", sample_paths()[0])
    assert code == 0 and out.startswith("Crops: Apple, Grape\n")


@pytest.mark.parametrize("flags", [["--crop", "banana"], ["--crop", "apple", "--crop", "Kiwi"], ["--crop", ""]])
def test_diagnose_unknown_crop_is_one_clear_line_and_exit_2(capsys, flags: list[str]) -> None:
    code, out, err = run(capsys, "diagnose", *flags, sample_paths()[0])
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("error: --crop: ") and "not a crop this model knows; it knows apple, " in line
    assert "Traceback" not in err


# ---------------------------------------------------------------- renormalisation and the verdicts


def test_restricted_probabilities_are_renormalised_over_the_chosen_crop(model: OnnxClassifier) -> None:
    everything = Diagnoser(model, model.info, top_k=len(model.info.classes))
    apple = Diagnoser(model, model.info, top_k=len(model.info.classes), crops=["apple"])
    allowed = {c for c in model.info.classes if not labels.is_crop_class(c) or labels.crop_of(c) == "apple"}
    for path in sample_paths():
        d = apple.diagnose_file(path)
        assert d.crops == ("apple",)
        assert {r.slug for r in d.top if r.probability > 0} <= allowed, path.name
        assert sum(r.probability for r in d.top) == pytest.approx(1.0, abs=1e-4)
        full = {r.slug: r.probability for r in everything.diagnose_file(path).top}
        mass = sum(full[s] for s in allowed)
        for r in d.top:
            if r.slug in allowed and full[r.slug] > 1e-3:
                assert r.probability == pytest.approx(full[r.slug] / mass, rel=1e-3, abs=1e-5)


def test_crafted_logits_give_each_unknown_reason(model: OnnxClassifier) -> None:
    classes = with_other_plant(model)
    other = crafted(model, {"other__plant": 12.0}, classes).diagnose(LEAF)
    assert (other.verdict, other.reason) == (Verdict.UNKNOWN, UnknownReason.OTHER_PLANT)
    assert (other.condition, other.crop) == (reasons.unknown_words("other_plant")[0], "")

    # Sure it is an apple leaf, not sure which apple condition: "Apple, but not a condition it knows".
    split = {"apple__apple_scab": 8.0, "apple__black_rot": 8.0, "apple__cedar_apple_rust": 8.0}
    d = crafted(model, split, classes, crops=["apple"]).diagnose(LEAF)
    assert (d.verdict, d.reason, d.crop) == (Verdict.UNKNOWN, UnknownReason.UNKNOWN_CONDITION, "Apple")
    assert d.condition == reasons.unknown_words("unknown_condition")[0] and d.crops == ("apple",)

    # A confident grape answer outside the chosen crops is not named: it counts for nothing.
    grape = crafted(model, {"grape__black_rot": 12.0, "other__plant": 4.0}, classes, crops=["apple"])
    assert grape.diagnose(LEAF).reason is UnknownReason.OTHER_PLANT


def test_unknown_screen_and_ready_crops_render_at_every_size(model: OnnxClassifier) -> None:
    split = {"apple__apple_scab": 8.0, "apple__black_rot": 8.0, "apple__cedar_apple_rust": 8.0}
    d = crafted(model, split, crops=["apple"]).diagnose(LEAF)
    unknown = screens.UnknownScreen.of(d, LEAF)
    assert (unknown.headline, unknown.crop, unknown.reason) == (d.condition, "Apple", d.reason)
    for size in ((240, 240), (320, 240), (480, 320), (800, 480)):
        frame = screens.render(unknown, size)
        assert tuple(frame[2, 2]) == screens.PURPLE  # its own colour: not a result, not a retake
        plain = screens.render(screens.ReadyScreen("1.0.0", 3, 900.0), size)
        apple = screens.render(screens.ReadyScreen("1.0.0", 3, 900.0, crops=("Apple",)), size)
        every = screens.render(screens.ReadyScreen("1.0.0", 3, 900.0, crops=()), size)
        assert not np.array_equal(plain, apple) and not np.array_equal(apple, every)
    assert words.crops_line(("Apple", "Grape")) == "Crops: Apple, Grape"
    assert words.crops_line(()) == "All crops"


# ---------------------------------------------------------------- store -> history -> export -> sync


def record_unknowns(model: OnnxClassifier, data_dir: Path, device_id: str) -> list[str]:
    classes = with_other_plant(model)
    split = {"apple__apple_scab": 8.0, "apple__black_rot": 8.0, "apple__cedar_apple_rust": 8.0}
    made = [
        crafted(model, {"other__plant": 12.0}, classes).diagnose(LEAF),
        crafted(model, split, classes, crops=["apple"]).diagnose(LEAF),
        crafted(model, {"apple__apple_scab": 12.0}, classes, crops=["apple"]).diagnose(LEAF),
    ]
    assert [d.verdict for d in made] == [Verdict.UNKNOWN, Verdict.UNKNOWN, Verdict.DIAGNOSIS]
    with SqliteStore.open(data_dir / "diagnoses.sqlite3", data_dir) as store:
        return [store.record(d, encode_jpeg(LEAF), device_id=device_id, latency={"x_ms": 1.0}).id for d in made]


def test_unknown_flows_through_store_history_and_usb_export(model: OnnxClassifier, tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = record_unknowns(model, data, "pi-07")
    with SqliteStore.open(data / "diagnoses.sqlite3", data) as store:
        rows = list(reversed(store.recent(10)))
        assert [(r["verdict"], r["reason"], r["crops"]) for r in rows] == [
            ("unknown", "other_plant", []),
            ("unknown", "unknown_condition", ["apple"]),
            ("diagnosis", None, ["apple"]),
        ]
        assert rows[1]["crop"] == "Apple" and rows[0]["crop"] == ""

        table = format_table(rows, width=100)
        assert "unknown: other plant" in table and "unknown: unknown condition" in table
        assert [r["crops"] for r in map(json.loads, format_json(rows).splitlines())] == [[], ["apple"], ["apple"]]
        parsed = list(csv.DictReader(io.StringIO(diagnoses_csv(store, rows, "en").removeprefix("\ufeff"))))
        assert [(p["verdict"], p["unknown_reason"], p["crops"]) for p in parsed] == [
            ("unknown", "other_plant", ""),
            ("unknown", "unknown_condition", "apple"),
            ("diagnosis", "", "apple"),
        ]

        stick = tmp_path / "stick"
        stick.mkdir()
        report = Exporter(store, export_config(data)).run(stick)
    exported = {r["id"]: r for r in read_csv(report.export_dir / "diagnoses.csv")}
    other, condition, named = (exported[i] for i in ids)
    assert (other["verdict"], other["unknown_reason"], other["retake_reason"]) == ("unknown", "other_plant", "")
    assert other["unknown_text"] == "I don't know this plant" and other["crops"] == ""
    assert (condition["unknown_reason"], condition["crop"], condition["crops"]) == (
        "unknown_condition",
        "Apple",
        "apple",
    )
    assert condition["unknown_text"] == "Not a condition this model knows"
    assert (named["verdict"], named["unknown_reason"], named["top1_slug"]) == ("diagnosis", "", "apple__apple_scab")
    jsonl = [json.loads(line) for line in (report.export_dir / "diagnoses.jsonl").read_text().splitlines()]
    assert [(r["verdict"], r["crops"]) for r in jsonl] == [
        ("unknown", []),
        ("unknown", ["apple"]),
        ("diagnosis", ["apple"]),
    ]
    readme = (report.export_dir / "README.txt").read_text(encoding="utf-8")
    assert "unknown_reason" in readme and "unknown = the photo was fine" in readme


def test_unknown_syncs_exactly_once_and_shows_on_the_collector_page(
    model: OnnxClassifier,
    tmp_path: Path,
    dsn: str,
) -> None:
    from appliance.sync import cmd_sync
    from leaf_collector.db import connect
    from tests.helpers.collector import call

    device = "pi-crops-01"
    data = tmp_path / "device"
    ids = record_unknowns(model, data, device)
    server = in_process_collector(dsn)
    try:
        cfg = device_config(data, server.url, write_token(tmp_path / "t", issue_token(dsn, device)), device)
        out = io.StringIO()
        assert cmd_sync(cfg, out=out) == 0, out.getvalue()
        assert unsynced_ids(data) == set()
        assert cmd_sync(cfg, out=io.StringIO()) == 0  # nothing left, nothing sent twice
        with connect(dsn) as conn:
            got = conn.execute(
                "SELECT id::text, verdict, reason, crop, crops, extra FROM diagnoses ORDER BY created_at"
            ).fetchall()
        assert [tuple(g) for g in got] == [
            (ids[0], "unknown", "other_plant", "", [], None),
            (ids[1], "unknown", "unknown_condition", "Apple", ["apple"], None),
            (ids[2], "diagnosis", None, "Apple", ["apple"], None),
        ]
        status, _, body = call(server.url + "/?days=100000")
        html = body.decode()
        assert status == 200
        assert '<div id="total-unknown"><b>2</b>' in html
        assert '<span class="unknown">not known: I don&#x27;t know this plant</span>' in html
        assert '<span class="unknown">not known: Apple – Not a condition this model knows</span>' in html
        status, _, body = call(server.url + "/diagnoses.csv")
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
        assert [(r["verdict"], r["crops"]) for r in rows] == [
            ("unknown", ""),
            ("unknown", "apple"),
            ("diagnosis", "apple"),
        ]
    finally:
        server.close()


def test_collector_migration_2_keeps_rows_and_moves_crops_out_of_extra(
    postgres,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uuid

    from leaf_collector import migrations
    from leaf_collector.db import connect, migrate

    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        assert migrate(url) == [1]
    issue_token(url, "pi-old")
    rows = [(uuid.uuid4(), None), (uuid.uuid4(), '{"crops": ["apple"], "battery": 80}')]
    with connect(url) as conn:
        for rid, extra in rows:
            conn.execute(
                "INSERT INTO diagnoses (id, device_id, created_at, model_version, model_sha256, verdict, topk,"
                " quality, latency, extra) VALUES (%s, 'pi-old', now(), '1.0.0', '', 'diagnosis', '[]', '{}', '{}',"
                " %s::jsonb)",
                (rid, extra),
            )
    assert migrate(url) == [2, 3, 4, 5]
    assert migrate(url) == []
    with connect(url) as conn:
        got = {rid: (crops, extra) for rid, crops, extra in conn.execute("SELECT id, crops, extra FROM diagnoses")}
        assert got[rows[0][0]] == ([], None)
        assert got[rows[1][0]] == (["apple"], {"battery": 80})
        conn.execute(
            "INSERT INTO diagnoses (id, device_id, created_at, model_version, model_sha256, verdict, topk, quality,"
            " latency) VALUES (%s, 'pi-old', now(), '1.0.0', '', 'unknown', '[]', '{}', '{}')",
            (uuid.uuid4(),),
        )
