"""Before / after: the shipped model and a candidate on a field pack's held-out part and the lab test split.

Each photo goes through the device's own path and verdict rule (evaluate.verdicts, evaluate.outcome),
with the crop unknown (every crop), as a device with no `crops` setting answers. The candidate is
worse, and is not shipped, when on the held-out field photos it gets fewer right or more wrong, or
when its lab test-split leaf top-1 is lower: no margin, one photo counts. The same holds on the
held-out photos whose labellers saw the leaf on the plant: a candidate that gains on picked leaves
on paper and loses on the tree has learned the background, not the disease, and is refused even
when its total is better.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from appliance.classifier import OnnxClassifier
from appliance.labels import is_crop_class

from . import evaluate, split

ON_PLANT = "natural"  # split.Entry.background of a leaf photographed on the plant


def _outcomes(got: list[str]) -> dict:
    c = Counter(got)
    return {"photos": len(got), **{k: c[k] for k in evaluate.OUTCOMES}}


def judge(model: Path, held_out: list[split.Entry], pack_root: Path, lab: list[split.Entry], data: Path) -> dict:
    """One model's figures: held-out field outcomes (overall, per class) and lab test-split top-1."""
    runs = evaluate.Runs(OnnxClassifier(model, threads=2))
    info = runs.info
    out: dict = {"model": str(model), "sha256": info.sha256, "version": info.version}
    if held_out:
        logits, qs = runs.files(held_out, pack_root)
        decisions, _ = evaluate.verdicts(info, logits, qs, (), info.refuse_below)
        got = [evaluate.outcome(e.slug, d) for e, d in zip(held_out, decisions, strict=True)]
    else:
        got = []
    out["field"] = _outcomes(got)
    out["field_per_class"] = {
        slug: _outcomes([g for e, g in zip(held_out, got, strict=True) if e.slug == slug])
        for slug in sorted({e.slug for e in held_out})
    }
    out["field_by_background"] = {
        bg: _outcomes([g for e, g in zip(held_out, got, strict=True) if e.background == bg])
        for bg in sorted({e.background for e in held_out})
    }
    lacking = sorted({e.slug for e in lab} - set(info.classes))
    if lacking:
        raise SystemExit(f"{model}: lacks the lab class(es) {', '.join(lacking)}; it cannot be compared")
    leaf = [e for e in lab if is_crop_class(e.slug)]
    if leaf:
        lab_logits, lab_q = runs.files(lab, data)
        r = evaluate.evaluate_lab(info, model, lab, lab_logits, lab_q)
        out["lab"] = {
            "photos": r["photos"],
            "leaf_photos": r["leaf_photos"],
            "leaf_right": round(r["leaf_top1"] * r["leaf_photos"]),
            "leaf_top1": r["leaf_top1"],
            "overall_top1": r["overall_top1"],
        }
    else:
        out["lab"] = {"photos": len(lab), "leaf_photos": 0, "leaf_right": 0, "leaf_top1": None, "overall_top1": None}
    return out


def worse(before: dict, after: dict) -> list[str]:
    """Why ``after`` must not replace ``before`` (empty: it may)."""
    reasons = []
    on_plant = tuple(side.get("field_by_background", {}).get(ON_PLANT) for side in (before, after))
    for what, b, a in (
        ("held-out field photos", before["field"], after["field"]),
        ("held-out field photos on the plant", *on_plant),
    ):
        if not a or not b:
            continue
        if a["right"] < b["right"]:
            reasons.append(f"{what} right: {a['right']} < {b['right']} of {a['photos']}")
        if a["wrong"] > b["wrong"]:
            reasons.append(f"{what} wrong: {a['wrong']} > {b['wrong']} of {a['photos']}")
    bl, al = before["lab"], after["lab"]
    if al["leaf_photos"] and al["leaf_right"] < bl["leaf_right"]:
        reasons.append(
            f"lab test-split leaf top-1: {al['leaf_top1'] * 100:.2f}% < {bl['leaf_top1'] * 100:.2f}% "
            f"({al['leaf_right']} < {bl['leaf_right']} of {al['leaf_photos']})"
        )
    return reasons
