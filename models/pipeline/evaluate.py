"""Recompute the shipped models' figures from the photos in ../shared: the lab and the field.

    python -m models.pipeline.evaluate            # print and write models/evaluation-test.json
    python -m models.pipeline.evaluate --gate     # also fail (exit 1) below the release lines

Every photo goes through the device's own path (decode, preprocess, quality gate, classifier,
calibrated refusal, crop restriction). Figures come only from the parts of each source that
training and tuning never saw (the test split of models/split-manifest.csv):

- lab: PlantVillage test split. Random over photos, several of which show the same leaf, so
  optimistic; it says nothing about photos taken in a field.
- field: the held-out part of each ../shared/data/field/apple folder (split by near-duplicate
  group) and of DeepWeeds (split by capture day), by background (natural / plain), with the
  crop unknown (every crop) and known (crops = ["apple"]). Outcomes: right, refused (retake),
  unknown ("I don't know this"), wrong (a crop and condition named that are not the photo's).
- background checks: the held-out picked leaves on paper or cloth with the leaf painted out
  (does the background alone name a disease?), and the same leaves pasted onto held-out field
  scenes (does the answer change when only the background does?).
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
from appliance.diagnosis import crop_mask, decide, restrict
from appliance.result import Quality, UnknownReason, Verdict
from appliance.vision import quality
from appliance.vision.decode import read_image
from appliance.vision.preprocess import model_view, to_tensor

from . import fieldpack, split
from .calibrate import expected_calibration_error, softmax
from .data import leaf_mask
from .figures import confusion_png, reliability_png

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"
FIELD_CROP = ("apple",)
NEW_DISEASES = ("alternaria_leaf_spot", "brown_spot", "gray_spot")  # apple diseases PlantVillage lacks
OUTCOMES = ("right", "refused", "unknown", "wrong")

# The release lines, issue 9's "Must show": CI refuses a model below any of them.
GATES = {
    "int8_leaf_top1_min": 0.980,
    "int8_vs_fp32_top1_max_drop": 0.010,
    "leaf_refused_max": 0.03,
    "background_refused_min": 0.97,
    "int8_ece_max": 0.03,
    "int8_file_mb_max": 4.0,
    "rust_wrong_max": 0.10,
    "rust_right_min": 0.50,
    "rust_right_crop_known_min": 0.70,
    "new_diseases_wrong_max": 0.15,
    "deepweeds_named_max": 0.03,
}


def require_data(root: Path) -> bool:
    """True when the photos are there; in CI their absence is an error, elsewhere a skip."""
    if (root / "plantvillage").is_dir():
        return True
    msg = f"photos not found at {root}: the evaluation needs ../shared/data (plantvillage, field, other-plants)"
    if os.environ.get("CI") == "true":
        raise SystemExit(f"ERROR: {msg}")
    print(f"SKIPPED: {msg}")
    return False


class Runs:
    """The model's logits and the quality measures of each photo, computed once per model."""

    def __init__(self, clf: OnnxClassifier) -> None:
        self.clf = clf
        self.info = clf.info

    def views(self, views: list[np.ndarray]) -> tuple[np.ndarray, list[Quality]]:
        qs = [quality.measure(v) for v in views]
        logits = [self.clf.logits(to_tensor(v, self.info.spec))[0] for v in views]
        return np.array(logits).reshape(len(views), len(self.info.classes)), qs

    def files(self, entries: list[split.Entry], root: Path) -> tuple[np.ndarray, list[Quality]]:
        return self.views([model_view(read_image(root / e.file), self.info.spec.size) for e in entries])


def verdicts(
    info, logits: np.ndarray, qs: list[Quality], crops: tuple[str, ...], refuse_below: float
) -> tuple[list, np.ndarray]:
    """(decisions, restricted calibrated probabilities) for each photo, as the device decides."""
    probs, mask = softmax(logits, info.temperature), crop_mask(info.classes, crops)
    thresholds = quality.QualityThresholds()
    decisions = [
        decide(q, p, info.classes, refuse_below, thresholds, mask=mask) for q, p in zip(qs, probs, strict=True)
    ]
    return decisions, restrict(probs, mask)


def outcome(expected: str, d) -> str:
    """right / refused / unknown / wrong for a photo whose true class is ``expected``."""
    if d.verdict is Verdict.RETAKE:
        return "refused"
    if d.verdict is Verdict.UNKNOWN:
        return "right" if labels.is_other_plant_class(expected) and d.reason is UnknownReason.OTHER_PLANT else "unknown"
    return "right" if d.top[0].slug == expected else "wrong"


def rates(items: list[str]) -> dict:
    n = len(items)
    c = Counter(items)
    return {"photos": n, **{k: round(c[k] / n, 4) if n else None for k in OUTCOMES}}


def evaluate_lab(info, path: Path, entries: list[split.Entry], logits: np.ndarray, qs: list[Quality]) -> dict:
    index = {c: i for i, c in enumerate(info.classes)}
    n = len(info.classes)
    decisions, _ = verdicts(info, logits, qs, (), info.refuse_below)
    y = np.array([index[e.slug] for e in entries])
    refused = np.array([d.verdict is not Verdict.DIAGNOSIS for d in decisions])
    reasons = Counter(
        f"{'leaf' if labels.is_crop_class(e.slug) else 'background'}:{d.reason.value}"
        for e, d in zip(entries, decisions, strict=True)
        if d.reason is not None
    )
    pred = logits.argmax(1)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    correct = pred == y
    leaf = np.array([labels.is_crop_class(e.slug) for e in entries])
    accepted_leaf = leaf & ~refused
    per_class = {
        c: {"photos": int((y == i).sum()), "top1": float(correct[y == i].mean()) if (y == i).any() else None}
        for i, c in enumerate(info.classes)
    }
    leaf_class_top1 = [v["top1"] for c, v in per_class.items() if v["top1"] is not None and labels.is_crop_class(c)]
    m = np.array([(lf, q.sharpness, q.brightness, q.plant_fraction) for lf, q in zip(leaf, qs, strict=True)])
    pct = {
        name: {
            kind: [round(float(v), 3) for v in np.percentile(m[m[:, 0] == flag, col], [1, 5, 50])]
            for kind, flag in (("leaf", 1), ("background", 0))
            if (m[:, 0] == flag).any()
        }
        for col, name in ((1, "sharpness"), (2, "brightness"), (3, "plant_fraction"))
    }
    return {
        "model": path.name,
        "sha256": info.sha256,
        "version": info.version,
        "file_mb": round(path.stat().st_size / 1e6, 3),
        "temperature": info.temperature,
        "refuse_below": info.refuse_below,
        "photos": len(y),
        "leaf_photos": int(leaf.sum()),
        "background_photos": int((~leaf).sum()),
        "leaf_top1": float(correct[leaf].mean()),
        "leaf_balanced_top1": float(np.mean(leaf_class_top1)),
        "leaf_top1_when_accepted": float(correct[accepted_leaf].mean()) if accepted_leaf.any() else None,
        "leaf_refused": float(refused[leaf].mean()),
        "background_refused": float(refused[~leaf].mean()) if (~leaf).any() else None,
        "overall_top1": float(correct.mean()),
        "ece_before": expected_calibration_error(softmax(logits, 1.0), y),
        "ece_after": expected_calibration_error(softmax(logits, info.temperature), y),
        "refusal_reasons": dict(sorted(reasons.items())),
        "quality_percentiles_1_5_50": pct,
        "per_class": per_class,
        "classes": list(info.classes),
        "confusion": confusion.tolist(),
    }


def evaluate_field(info, entries: list[split.Entry], logits: np.ndarray, qs: list[Quality]) -> dict:
    """Outcome rates per field folder and background, with the crop unknown and known."""
    out: dict[str, dict] = {}
    for mode, crops in (("crop_unknown", ()), ("crop_apple", FIELD_CROP)):
        decisions, _ = verdicts(info, logits, qs, crops, info.refuse_below)
        got = [outcome(e.slug, d) for e, d in zip(entries, decisions, strict=True)]
        said = Counter()
        table: dict[str, dict] = {}
        for source in sorted({e.source for e in entries}):
            for folder in [*sorted({e.folder for e in entries if e.source == source}), "all"]:
                sel = [i for i, e in enumerate(entries) if e.source == source and folder in (e.folder, "all")]
                row = {"all": rates([got[i] for i in sel])}
                for bg in sorted({entries[i].background for i in sel}):
                    row[bg] = rates([got[i] for i in sel if entries[i].background == bg])
                table[f"{source}/{folder}"] = row
        new = [i for i, e in enumerate(entries) if e.folder in NEW_DISEASES]
        table["field-apple/new_diseases"] = {"all": rates([got[i] for i in new])}
        for e, d, g in zip(entries, decisions, got, strict=True):
            if g == "wrong":
                said[f"{e.source}/{e.folder} -> {d.top[0].slug}"] += 1
        out[mode] = {"table": table, "wrong_answers": dict(said.most_common(25))}
    return out


def background_checks(runs: Runs, entries: list[split.Entry], root: Path) -> dict:
    """Does the background tell the class? Leaf painted out, and leaf moved onto field scenes."""
    info = runs.info
    size = info.spec.size
    plain = [e for e in entries if e.source == "field-apple" and e.background == "plain"]
    scenes = [e for e in entries if e.source == "deepweeds"]
    if not plain or not scenes:
        return {}
    rng = np.random.default_rng(0)
    painted, moved, kept = [], [], []
    for e in plain:
        view = model_view(read_image(root / e.file), size)  # RGB, as the classifier sees it
        mask = leaf_mask(view)[..., None]
        if mask.mean() < 0.05:
            continue
        paper = np.median(view[mask[..., 0] < 0.1], axis=0) if (mask < 0.1).any() else np.full(3, 200.0)
        painted.append((view * (1 - mask) + paper * mask).astype(np.uint8))
        scene_entry = scenes[int(rng.integers(len(scenes)))]
        scene = model_view(read_image(root / scene_entry.file), size).astype(np.float32)
        moved.append((view * mask + scene * (1 - mask)).astype(np.uint8))
        kept.append(e)
    out = {"photos": len(kept)}
    for name, views in (("leaf_painted_out", painted), ("leaf_on_field_scene", moved)):
        logits, qs = runs.views(views)
        for mode, crops in (("crop_unknown", ()), ("crop_apple", FIELD_CROP)):
            decisions, _ = verdicts(info, logits, qs, crops, info.refuse_below)
            if name == "leaf_painted_out":
                named = [d.verdict is Verdict.DIAGNOSIS and not labels.label(d.top[0].slug).healthy for d in decisions]
                out[f"{name}/{mode}"] = {"disease_named": round(float(np.mean(named)), 4)}
            else:
                out[f"{name}/{mode}"] = rates([outcome(e.slug, d) for e, d in zip(kept, decisions, strict=True)])
    return out


def calibration_with_crop(info, entries: list[split.Entry], logits: np.ndarray) -> dict:
    """ECE of the renormalised probabilities with crops = apple, on the photos that setting sees."""
    keep = [
        i
        for i, e in enumerate(entries)
        if e.slug in info.classes and (not labels.is_crop_class(e.slug) or labels.crop_of(e.slug) == "apple")
    ]
    probs = restrict(softmax(logits[keep], info.temperature), crop_mask(info.classes, FIELD_CROP))
    y = np.array([info.classes.index(entries[i].slug) for i in keep])
    return {"photos": len(keep), "ece": expected_calibration_error(probs, y), "probs": probs, "labels": y}


def gate(results: dict) -> list[str]:
    i8, f32 = results["int8"], results["fp32"]
    field = results["field"]["crop_unknown"]["table"]
    known = results["field"]["crop_apple"]["table"]
    rust, rust_known = field["field-apple/rust"]["all"], known["field-apple/rust"]["all"]
    new = field["field-apple/new_diseases"]["all"]
    new_known = known["field-apple/new_diseases"]["all"]
    weeds, weeds_known = field["deepweeds/all"]["all"], known["deepweeds/all"]["all"]
    g = GATES
    checks = [
        (
            i8["leaf_top1"] >= g["int8_leaf_top1_min"],
            f"lab int8 leaf top-1 {i8['leaf_top1']:.4f} >= {g['int8_leaf_top1_min']}",
        ),
        (
            f32["leaf_top1"] - i8["leaf_top1"] <= g["int8_vs_fp32_top1_max_drop"],
            f"int8 within {g['int8_vs_fp32_top1_max_drop'] * 100:.1f} pt of fp32 "
            f"({i8['leaf_top1']:.4f} vs {f32['leaf_top1']:.4f})",
        ),
        (
            i8["leaf_refused"] <= g["leaf_refused_max"],
            f"lab leaf photos refused {i8['leaf_refused']:.4f} <= {g['leaf_refused_max']}",
        ),
        (
            (i8["background_refused"] or 0) >= g["background_refused_min"],
            f"no-leaf photos refused {i8['background_refused']:.4f} >= {g['background_refused_min']}",
        ),
        (
            i8["ece_after"] <= g["int8_ece_max"],
            f"int8 ECE after temperature scaling {i8['ece_after']:.4f} <= {g['int8_ece_max']}",
        ),
        (i8["file_mb"] <= g["int8_file_mb_max"], f"int8 model file {i8['file_mb']} MB <= {g['int8_file_mb_max']} MB"),
        (
            rust["wrong"] <= g["rust_wrong_max"],
            f"field rust wrong {rust['wrong']:.4f} <= {g['rust_wrong_max']} (crop unknown)",
        ),
        (
            rust["right"] >= g["rust_right_min"],
            f"field rust right {rust['right']:.4f} >= {g['rust_right_min']} (crop unknown)",
        ),
        (
            rust_known["right"] >= g["rust_right_crop_known_min"],
            f"field rust right {rust_known['right']:.4f} >= {g['rust_right_crop_known_min']} (crop = apple)",
        ),
        (
            max(new["wrong"], new_known["wrong"]) <= g["new_diseases_wrong_max"],
            f"apple diseases PlantVillage lacks: wrong {new['wrong']:.4f} / {new_known['wrong']:.4f} "
            f"(crop unknown / apple) <= {g['new_diseases_wrong_max']}",
        ),
        (
            max(weeds["wrong"], weeds_known["wrong"]) <= g["deepweeds_named_max"],
            f"DeepWeeds: crop and condition named {weeds['wrong']:.4f} / {weeds_known['wrong']:.4f} "
            f"(crop unknown / apple) <= {g['deepweeds_named_max']}",
        ),
    ]
    for ok, text in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return [text for ok, text in checks if not ok]


def field_lines(field: dict) -> list[str]:
    """The field table as text: one line per folder and background, both crop settings."""
    lines = [f"{'held-out photos':<42} {'n':>4}  {'right/refused/unknown/wrong (crop unknown)':<44} crop = apple"]

    def fmt(r: dict) -> str:
        return "/".join("  - " if r[k] is None else f"{r[k] * 100:4.0f}" for k in OUTCOMES)

    for key, row in field["crop_unknown"]["table"].items():
        for bg, r in row.items():
            known = field["crop_apple"]["table"][key][bg]
            lines.append(f"{key + ' [' + bg + ']':<42} {r['photos']:>4}  {fmt(r):<44} {fmt(known)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--out", type=Path, default=None, help="JSON figures (default: <models>/evaluation-<split>.json)")
    ap.add_argument("--confusion", type=Path, default=None, help="also draw the int8 lab confusion matrix here (PNG)")
    ap.add_argument("--reliability", type=Path, default=None, help="also draw the int8 reliability diagram here (PNG)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--gate", action="store_true", help="exit 1 when a release line is not met")
    args = ap.parse_args(argv)
    if not require_data(args.data):
        return 0
    # A field pack's photos live in the pack, not under --data; build.py judges them (compare.py).
    entries = [
        e
        for e in split.read_manifest(args.models / "split-manifest.csv")
        if e.split == args.split and e.source != fieldpack.SOURCE
    ]
    problems = split.verify_files(entries, args.data)
    if problems:
        print(f"ERROR: the photos differ from the split manifest ({len(problems)}): {problems[:5]}", file=sys.stderr)
        return 1
    lab = [e for e in entries if e.source == "plantvillage"]
    field = [e for e in entries if e.source != "plantvillage"]
    results: dict = {"split": args.split, "photos": len(entries), "lab_photos": len(lab), "field_photos": len(field)}
    reliability = {}
    for kind in ("int8", "fp32"):
        path = args.models / f"leafnet-{kind}.onnx"
        runs = Runs(OnnxClassifier(path, threads=2))
        lab_logits, lab_q = runs.files(lab, args.data)
        results[kind] = r = evaluate_lab(runs.info, path, lab, lab_logits, lab_q)
        print(
            f"{kind} lab: leaf top-1 {r['leaf_top1']:.4f} (balanced {r['leaf_balanced_top1']:.4f}, accepted only "
            f"{r['leaf_top1_when_accepted']:.4f}), leaf refused {r['leaf_refused']:.4f}, no-leaf refused "
            f"{r['background_refused']:.4f}, ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f} "
            f"(T={r['temperature']:.3f}), {r['file_mb']} MB"
        )
        if kind != "int8":
            continue
        field_logits, field_q = runs.files(field, args.data)
        results["field"] = evaluate_field(runs.info, field, field_logits, field_q)
        results["background_checks"] = background_checks(runs, entries, args.data)
        cal = calibration_with_crop(runs.info, lab + field, np.concatenate([lab_logits, field_logits]))
        results["ece_crop_apple"] = {"photos": cal["photos"], "ece": cal["ece"]}
        y_lab = np.array([runs.info.classes.index(e.slug) for e in lab])
        reliability = {
            "all crops, lab test split": (softmax(lab_logits, runs.info.temperature), y_lab),
            "crops = apple, lab + field held-out": (cal["probs"], cal["labels"]),
        }
    print(f"refusals (int8, lab): {results['int8']['refusal_reasons']}")
    print("\n".join(field_lines(results["field"])))
    print(f"background checks (int8): {json.dumps(results['background_checks'])}")
    print(f"ECE with crops = apple (renormalised): {results['ece_crop_apple']['ece']:.4f}")
    out = args.out or args.models / f"evaluation-{args.split}.json"
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"figures written to {out}")
    if args.confusion:
        r = results["int8"]
        confusion_png(
            np.array(r["confusion"]),
            r["classes"],
            args.confusion,
            f"leafnet int8, lab {args.split} split ({r['photos']} photos): top-1 {r['overall_top1'] * 100:.2f}%",
        )
        print(f"confusion matrix drawn to {args.confusion}")
    if args.reliability:
        reliability_png(reliability, args.reliability, f"leafnet int8 reliability, {args.split} split")
        print(f"reliability diagram drawn to {args.reliability}")
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
