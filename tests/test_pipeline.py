"""The training pipeline: a deterministic split, calibration maths, and a retraining smoke run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.pipeline import build, split
from models.pipeline.calibrate import expected_calibration_error, fit_temperature, nll, softmax


def test_split_depends_only_on_seed_and_bytes():
    sha = "ab" * 32
    assert split.assign_split(sha, 7) == split.assign_split(sha, 7)
    counts = {"train": 0, "val": 0, "test": 0}
    for i in range(3000):
        counts[split.assign_split(f"{i:064x}", 7)] += 1
    assert 0.12 < counts["test"] / 3000 < 0.18 and 0.12 < counts["val"] / 3000 < 0.18


def test_committed_manifest_matches_the_photos(shared_data):
    entries = split.read_manifest(build.REPO / "models" / "split-manifest.csv")
    assert len(entries) == sum(1 for _ in shared_data.glob("*/*.jpg")) + sum(1 for _ in shared_data.glob("*/*.png"))
    assert {e.split for e in entries} == {"train", "val", "test"}
    assert all(split.assign_split(e.sha256, 7) == e.split for e in entries)
    sample = entries[:: max(1, len(entries) // 50)]
    assert split.verify_files(sample, shared_data) == []


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


@pytest.mark.slow
def test_retraining_smoke_run(tmp_path, shared_data, shared_weights):
    """Few classes, few photos, a few steps: split -> train -> export -> quantize -> load -> diagnose."""
    from appliance.classifier import OnnxClassifier
    from appliance.diagnosis import Diagnoser

    out = tmp_path / "smoke"
    assert build.main(["--smoke", "--out", str(out), "--data", str(shared_data), "--weights", str(shared_weights)]) == 0
    report = json.loads((out / "training-report.json").read_text())
    assert len(report["classes"]) == 3 and report["classes"][-1] == "background__no_leaf"
    clf = OnnxClassifier(out / "leafnet-int8.onnx", threads=1)
    assert clf.info.classes == tuple(report["classes"])
    assert clf.info.version.endswith("-smoke")
    first = next(e for e in split.read_manifest(out / "split-manifest.csv") if e.split == "test")
    d = Diagnoser(clf, clf.info).diagnose_file(shared_data / first.file)
    assert d.top[0].slug in report["classes"]
    assert abs(sum(r.probability for r in d.top) - 1.0) < 1e-3  # top-3 of 3 classes covers all
