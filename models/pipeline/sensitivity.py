"""Which layers lose the most when quantized: one int8 file per layer left in float, scored on validation.

    python -m models.pipeline.sensitivity --models models --out models/training/quant-sensitivity.json

Quantizes <models>/leafnet-fp32.onnx as requantize.py does (same calibration photos), once with
every layer in int8 and once more for each Conv/Gemm node left in float, and scores each file on the
validation split against the fp32 file: mean KL divergence of the calibrated probabilities (smooth,
so single photos do not decide) and top-1 per source. Then it adds the most sensitive layers to
the float set one at a time and scores each set. The test split is not read; pick a set here and
write it with `requantize --keep-float ...`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx

from . import calibrate, export, split
from .build import DEFAULT_DATA, REPO, calibration_tensors, ort_logits, top1_per_source
from .data import load_pixels


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL(p || q) over photos: how far the int8 probabilities q drift from the fp32 ones p."""
    p, q = np.clip(p, 1e-12, None), np.clip(q, 1e-12, None)
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def quantizable_nodes(int8: Path) -> list[str]:
    """Names of the Conv and Gemm nodes of a QDQ file: the ones `nodes_to_exclude` can leave in float."""
    return [n.name for n in onnx.load(str(int8)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--work", type=Path, default=REPO / "models" / "work", help="pixel cache and scratch files")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "training" / "quant-sensitivity.json")
    ap.add_argument("--calibration-images", type=int, default=340)
    ap.add_argument("--greedy", type=int, default=8, help="how many of the most sensitive layers to add in turn")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    fp32 = args.models / "leafnet-fp32.onnx"
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    classes = json.loads(meta["appliance.classes"])
    index = {c: i for i, c in enumerate(classes)}
    from appliance.vision.preprocess import InputSpec

    spec = InputSpec(size=int(meta["appliance.input_size"]))
    entries = split.read_manifest(args.models / "split-manifest.csv")
    train = [e for e in entries if e.split == "train"]
    val = [e for e in entries if e.split == "val"]
    train_y = np.array([index[e.slug] for e in train])
    train_px = load_pixels(train, args.data, args.work)
    calib = calibration_tensors(train_px, train_y, spec, args.calibration_images, args.seed)
    val_px, val_y = load_pixels(val, args.data, args.work), np.array([index[e.slug] for e in val])
    sources = np.array([e.source for e in val])

    reference = calibrate.softmax(ort_logits(fp32, val_px, spec), 1.0)
    scratch = args.work / "sensitivity.onnx"
    report: dict[str, object] = {"validation_photos": len(val), "calibration_photos": len(calib)}

    def score(keep: tuple[str, ...]) -> dict[str, object]:
        started = time.monotonic()
        export.quantize_int8(fp32, scratch, calib, keep_float=keep)
        logits = ort_logits(scratch, val_px, spec)
        probs = calibrate.softmax(logits, 1.0)
        row = {
            "float": list(keep),
            "kl": round(kl_divergence(reference, probs), 6),
            "agree": round(float((probs.argmax(1) == reference.argmax(1)).mean()), 4),
            "top1": {k: round(v, 4) for k, v in top1_per_source(logits, val_y, sources).items()},
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(row), flush=True)
        return row

    def save() -> None:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

    report["fp32"] = {"top1": {k: round(v, 4) for k, v in top1_per_source(np.log(reference), val_y, sources).items()}}
    report["all_int8"] = score(())
    names = quantizable_nodes(scratch)
    singles = []
    for name in names:
        singles.append(score((name,)))
        report["one_in_float"] = singles
        save()
    ranked = sorted(singles, key=lambda r: r["kl"])
    chosen: list[str] = []
    report["greedy"] = []
    for row in ranked[: args.greedy]:
        chosen.append(row["float"][0])
        report["greedy"].append(score(tuple(chosen)))
        save()
    scratch.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
