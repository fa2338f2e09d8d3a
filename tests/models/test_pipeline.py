"""The training pipeline: deterministic, leak-free splits of every source, calibration maths, augmentations,
the field evaluation's outcome rule, and a retraining smoke run."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest

from appliance.diagnosis import Decision
from appliance.result import Ranked, RetakeReason, UnknownReason, Verdict
from models.pipeline import build, data, evaluate, sources, split
from models.pipeline.calibrate import expected_calibration_error, fit_temperature, nll, softmax

MANIFEST = build.REPO / "models" / "split-manifest.csv"


def test_split_depends_only_on_seed_and_bytes():
    sha = "ab" * 32
    assert split.assign_split(sha, 7) == split.assign_split(sha, 7)
    counts = {"train": 0, "val": 0, "test": 0}
    for i in range(3000):
        counts[split.assign_split(f"{i:064x}", 7)] += 1
    assert 0.12 < counts["test"] / 3000 < 0.18 and 0.12 < counts["val"] / 3000 < 0.18


def test_group_split_keeps_groups_whole_and_reaches_the_shares():
    groups = {f"g{i}": [f"g{i}-{j}" for j in range(1 + i % 3)] for i in range(60)}
    side = sources.split_groups(groups, seed=7)
    for members in groups.values():
        assert len({side[m] for m in members}) == 1
    total = sum(len(v) for v in groups.values())
    share = {k: sum(1 for v in side.values() if v == k) / total for k in ("test", "val")}
    assert abs(share["test"] - sources.TEST_SHARE) < 0.05 and abs(share["val"] - sources.VAL_SHARE) < 0.05
    assert side == sources.split_groups(groups, seed=7)
    assert side != sources.split_groups(groups, seed=8)


def test_committed_manifest_covers_every_source_without_leaks(shared_root):
    entries = split.read_manifest(MANIFEST)
    by_source = defaultdict(list)
    for e in entries:
        by_source[e.source].append(e)
    assert set(by_source) == {"plantvillage", "field-apple", "deepweeds"}
    pv = shared_root / sources.PLANTVILLAGE
    assert len(by_source["plantvillage"]) == sum(1 for _ in pv.glob("*/*.jpg")) + sum(1 for _ in pv.glob("*/*.png"))
    assert all(split.assign_split(e.sha256, 7) == e.split for e in by_source["plantvillage"])
    with (shared_root / sources.FIELD_APPLE / "images.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(by_source["field-apple"]) == len(rows)
    assert {(e.folder, e.background) for e in by_source["field-apple"]} == {
        (r["folder"], r["background"]) for r in rows
    }
    assert len(by_source["deepweeds"]) == sum(1 for _ in (shared_root / sources.DEEPWEEDS).glob("*/*.jpg"))
    for source in ("field-apple", "deepweeds"):
        sides = defaultdict(set)
        for e in by_source[source]:
            sides[e.group].add(e.split)
        assert all(len(s) == 1 for s in sides.values()), f"{source}: a group is split across train/val/test"
        for folder in {e.folder for e in by_source[source]}:
            assert {e.split for e in by_source[source] if e.folder == folder} == {"train", "val", "test"}
    sample = entries[:: max(1, len(entries) // 60)]
    assert split.verify_files(sample, shared_root) == []


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 4000)
    logits = rng.normal(0, 1, (4000, 5))
    logits[np.arange(4000), labels] += 1.5  # right about 60% of the time...
    logits *= 4.0  # ...but far too sure of itself
    t = fit_temperature(logits, labels)
    assert t > 2.0
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    assert expected_calibration_error(softmax(logits, t), labels) < expected_calibration_error(softmax(logits), labels)
    assert expected_calibration_error(softmax(logits, t), labels) < 0.05


def test_paste_on_scene_shrinks_the_leaf_and_keeps_the_scene():
    rng = np.random.default_rng(1)
    leaf = np.zeros((64, 64, 3), np.uint8)
    leaf[..., 1] = 200
    mask = np.ones((64, 64), np.float32)
    scene = np.full((64, 64, 3), 30, np.uint8)
    out = data.paste_on_scene(leaf, mask, scene, rng, min_scale=0.5)
    green = (out[..., 1] > 100).mean()
    assert out.shape == leaf.shape and 0.2 <= green <= 1.0
    assert (out[..., 0] == 30).any()  # the scene shows around the smaller leaf, or the leaf fills it all
    lit = data.field_light(np.full((32, 32, 3), 128, np.uint8), rng)
    assert lit.shape == (32, 32, 3) and lit.dtype == np.uint8


def _decision(verdict, reason=None, slug="apple__healthy"):
    return Decision(verdict, reason, (Ranked(slug, 0.9),))


def test_field_outcomes_count_unknown_and_refusals_apart_from_wrong_answers():
    assert evaluate.outcome("apple__healthy", _decision(Verdict.DIAGNOSIS)) == "right"
    assert evaluate.outcome("apple__gray_spot", _decision(Verdict.DIAGNOSIS)) == "wrong"
    assert evaluate.outcome("apple__gray_spot", _decision(Verdict.RETAKE, RetakeReason.NOT_SURE)) == "refused"
    unknown = _decision(Verdict.UNKNOWN, UnknownReason.UNKNOWN_CONDITION)
    assert evaluate.outcome("apple__gray_spot", unknown) == "unknown"
    other = _decision(Verdict.UNKNOWN, UnknownReason.OTHER_PLANT, "other__plant")
    assert evaluate.outcome("other__plant", other) == "right"
    assert evaluate.outcome("other__plant", _decision(Verdict.DIAGNOSIS)) == "wrong"  # a crop named for a weed


@pytest.mark.slow
def test_retraining_smoke_run(tmp_path, shared_root, shared_weights):
    """Few classes, few photos, a few steps: split -> train -> export -> quantize -> load -> diagnose."""
    from appliance.classifier import OnnxClassifier
    from appliance.diagnosis import Diagnoser

    out = tmp_path / "smoke"
    assert build.main(["--smoke", "--out", str(out), "--data", str(shared_root), "--weights", str(shared_weights)]) == 0
    report = json.loads((out / "training-report.json").read_text())
    assert "background__no_leaf" in report["classes"] and sources.OTHER_PLANT in report["classes"]
    assert {"apple__gray_spot", "apple__brown_spot", "apple__alternaria_leaf_spot"} <= set(report["classes"])
    clf = OnnxClassifier(out / "leafnet-int8.onnx", threads=1)
    assert clf.info.classes == tuple(report["classes"])
    assert clf.info.version.endswith("-smoke")
    manifest = split.read_manifest(out / "split-manifest.csv")
    assert {e.source for e in manifest} == {"plantvillage", "field-apple", "deepweeds"}
    first = next(e for e in manifest if e.split == "test")
    d = Diagnoser(clf, clf.info, crops=["apple"]).diagnose_file(shared_root / first.file)
    assert all(r.slug.startswith(("apple__", "background__", "other__")) for r in d.top)


def test_the_weight_average_moves_toward_the_live_weights() -> None:
    import torch

    from models.pipeline.mobilenetv2 import MobileNetV2
    from models.pipeline.train import _update_average

    net = MobileNetV2(num_classes=3)
    average = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    _update_average(average, net, decay=0.75)
    weight = "classifier.weight"
    assert torch.allclose(average[weight], 0.25 * net.state_dict()[weight])
    _update_average(average, net, decay=0.75)
    assert torch.allclose(average[weight], 0.4375 * net.state_dict()[weight])  # 0.75 * 0.25 + 0.25
    assert set(average) == set(net.state_dict())  # biases (BatchNorm is folded in) are averaged too
