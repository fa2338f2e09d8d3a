"""Recompute the test-split figures of the shipped models from the photos in ../shared.

    python -m models.pipeline.evaluate            # print and write models/evaluation.json
    python -m models.pipeline.evaluate --gate     # also fail (exit 1) below the release lines

Every photo goes through the same runtime path as on the device (decode, preprocess,
quality gate, classifier, calibrated refusal). The split is random over PlantVillage lab
photos, several of which show the same physical leaf, so these figures are optimistic and
say nothing about photos taken in a field.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from appliance import labels
from appliance.classifier import OnnxClassifier
from appliance.diagnosis import Diagnoser
from appliance.vision import quality
from appliance.vision.preprocess import model_view, read_image, to_tensor

from . import split
from .calibrate import expected_calibration_error, softmax
from .figures import confusion_png

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "plantvillage"

# The release lines (issue 2). Targets are higher; these are what CI refuses to go below.
GATES = {
    "int8_leaf_top1_min": 0.975,
    "int8_vs_fp32_top1_max_drop": 0.010,
    "leaf_refused_max": 0.03,
    "background_refused_min": 0.95,
    "int8_ece_max": 0.03,
    "int8_file_mb_max": 4.0,
}


def require_data(root: Path) -> bool:
    """True when the photos are there; in CI their absence is an error, elsewhere a skip."""
    if root.is_dir():
        return True
    msg = f"photos not found at {root}: the evaluation needs ../shared/data/plantvillage"
    if os.environ.get("CI") == "true":
        raise SystemExit(f"ERROR: {msg}")
    print(f"SKIPPED: {msg}")
    return False


def evaluate_model(model_path: Path, entries: list[split.Entry], root: Path) -> dict:
    clf = OnnxClassifier(model_path, threads=2)
    info = clf.info
    diag = Diagnoser(clf, info)
    index = {c: i for i, c in enumerate(info.classes)}
    n = len(info.classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    logits_all, labels_all, refused, reasons, measures = [], [], [], Counter(), []
    for e in entries:
        view = model_view(read_image(root / e.file), info.spec.size)
        q = quality.measure(view)
        logits = clf.logits(to_tensor(view, info.spec))[0]
        reason = diag.decide(q, clf.probabilities(logits)).reason
        y = index[e.slug]
        confusion[y, int(np.argmax(logits))] += 1
        logits_all.append(logits)
        labels_all.append(y)
        refused.append(reason is not None)
        if reason is not None:
            reasons[f"{'leaf' if labels.is_crop_class(e.slug) else 'background'}:{reason.value}"] += 1
        measures.append((labels.is_crop_class(e.slug), q.sharpness, q.brightness, q.plant_fraction))
    logits_arr, y_arr, refused_arr = np.array(logits_all), np.array(labels_all), np.array(refused)
    leaf = np.array([labels.is_crop_class(info.classes[y]) for y in y_arr])
    pred = logits_arr.argmax(1)
    correct = pred == y_arr
    accepted_leaf = leaf & ~refused_arr
    probs_t = softmax(logits_arr, info.temperature)
    per_class = {
        c: {
            "photos": int((y_arr == i).sum()),
            "top1": float(correct[y_arr == i].mean()) if (y_arr == i).any() else None,
        }
        for i, c in enumerate(info.classes)
    }
    m = np.array(measures, dtype=np.float64)
    pct = {
        name: {
            kind: [round(float(v), 3) for v in np.percentile(m[m[:, 0] == flag, col], [1, 5, 50])]
            for kind, flag in (("leaf", 1), ("background", 0))
            if (m[:, 0] == flag).any()
        }
        for col, name in ((1, "sharpness"), (2, "brightness"), (3, "plant_fraction"))
    }
    return {
        "model": model_path.name,
        "sha256": info.sha256,
        "version": info.version,
        "file_mb": round(model_path.stat().st_size / 1e6, 3),
        "temperature": info.temperature,
        "refuse_below": diag.refuse_below,
        "photos": len(y_arr),
        "leaf_photos": int(leaf.sum()),
        "background_photos": int((~leaf).sum()),
        "leaf_top1": float(correct[leaf].mean()),
        "leaf_top1_when_accepted": float(correct[accepted_leaf].mean()) if accepted_leaf.any() else None,
        "leaf_refused": float(refused_arr[leaf].mean()),
        "background_refused": float(refused_arr[~leaf].mean()) if (~leaf).any() else None,
        "overall_top1": float(correct.mean()),
        "ece_before": expected_calibration_error(softmax(logits_arr, 1.0), y_arr),
        "ece_after": expected_calibration_error(probs_t, y_arr),
        "refusal_reasons": dict(sorted(reasons.items())),
        "quality_percentiles_1_5_50": pct,
        "per_class": per_class,
        "classes": list(info.classes),
        "confusion": confusion.tolist(),
    }


def gate(results: dict) -> list[str]:
    i8, f32 = results["int8"], results["fp32"]
    checks = [
        (
            i8["leaf_top1"] >= GATES["int8_leaf_top1_min"],
            f"int8 leaf top-1 {i8['leaf_top1']:.4f} >= {GATES['int8_leaf_top1_min']}",
        ),
        (
            f32["leaf_top1"] - i8["leaf_top1"] <= GATES["int8_vs_fp32_top1_max_drop"],
            f"int8 within {GATES['int8_vs_fp32_top1_max_drop'] * 100:.1f} pt of fp32 "
            f"({i8['leaf_top1']:.4f} vs {f32['leaf_top1']:.4f})",
        ),
        (
            i8["leaf_refused"] <= GATES["leaf_refused_max"],
            f"leaf photos refused {i8['leaf_refused']:.4f} <= {GATES['leaf_refused_max']}",
        ),
        (
            (i8["background_refused"] or 0) >= GATES["background_refused_min"],
            f"no-leaf photos refused {i8['background_refused']} >= {GATES['background_refused_min']}",
        ),
        (
            i8["ece_after"] <= GATES["int8_ece_max"],
            f"int8 ECE after temperature scaling {i8['ece_after']:.4f} <= {GATES['int8_ece_max']}",
        ),
        (
            i8["file_mb"] <= GATES["int8_file_mb_max"],
            f"int8 model file {i8['file_mb']} MB <= {GATES['int8_file_mb_max']} MB",
        ),
    ]
    for ok, text in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return [text for ok, text in checks if not ok]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--out", type=Path, default=None, help="JSON figures (default: <models>/evaluation.json)")
    ap.add_argument("--confusion", type=Path, default=None, help="also draw the int8 confusion matrix here (PNG)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--gate", action="store_true", help="exit 1 when a release line is not met")
    args = ap.parse_args(argv)
    if not require_data(args.data):
        return 0
    entries = [e for e in split.read_manifest(args.models / "split-manifest.csv") if e.split == args.split]
    problems = split.verify_files(entries, args.data)
    if problems:
        print(f"ERROR: the photos differ from the split manifest ({len(problems)}): {problems[:5]}", file=sys.stderr)
        return 1
    results = {"split": args.split, "photos": len(entries)}
    for kind in ("int8", "fp32"):
        results[kind] = evaluate_model(args.models / f"leafnet-{kind}.onnx", entries, args.data)
        r = results[kind]
        print(
            f"{kind}: leaf top-1 {r['leaf_top1']:.4f} (accepted only {r['leaf_top1_when_accepted']:.4f}), "
            f"leaf refused {r['leaf_refused']:.4f}, no-leaf refused {r['background_refused']:.4f}, "
            f"ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f} (T={r['temperature']:.3f}), {r['file_mb']} MB"
        )
    print(f"refusals (int8): {results['int8']['refusal_reasons']}")
    out = args.out or args.models / f"evaluation-{args.split}.json"
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"figures written to {out}")
    if args.confusion:
        r = results["int8"]
        confusion_png(
            np.array(r["confusion"]),
            r["classes"],
            args.confusion,
            f"leafnet int8, {args.split} split ({r['photos']} photos): top-1 {r['overall_top1'] * 100:.2f}%",
        )
        print(f"confusion matrix drawn to {args.confusion}")
    if args.gate:
        print("release gates:")
        failed = gate(results)
        if failed:
            print(f"GATE FAILED: {len(failed)} line(s) not met", file=sys.stderr)
            return 1
        print("all release gates met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
