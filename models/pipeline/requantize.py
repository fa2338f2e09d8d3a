"""Quantize an fp32 export again with other calibration settings, and re-fit what depends on it.

    python -m models.pipeline.requantize --models models --method percentile --calibration-images 800

Writes <models>/leafnet-int8.onnx from <models>/leafnet-fp32.onnx: calibration on training
photos (class-stratified, seeded), temperature fitted and refusal threshold chosen on the
validation split, metadata copied from the fp32 export. Prints the validation top-1 per source
of both files, so settings are compared on validation photos only; the test split is not read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx

from . import calibrate, export, split, threshold
from .build import DEFAULT_DATA, REPO, calibration_tensors, ort_logits, top1_per_source
from .data import load_pixels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--work", type=Path, default=REPO / "models" / "work", help="pixel cache (not committed)")
    ap.add_argument("--method", choices=export.CALIBRATION_METHODS, default="minmax")
    ap.add_argument("--calibration-images", type=int, default=340)
    ap.add_argument("--keep-float", nargs="*", default=[], metavar="NODE", help="ONNX node names to leave in float")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    fp32, int8 = args.models / "leafnet-fp32.onnx", args.models / "leafnet-int8.onnx"
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    classes = json.loads(meta["appliance.classes"])
    index = {c: i for i, c in enumerate(classes)}
    from appliance.vision.preprocess import InputSpec

    spec = InputSpec(size=int(meta["appliance.input_size"]))
    entries = split.read_manifest(args.models / "split-manifest.csv")
    parts = {}
    for name in ("train", "val"):
        sel = [e for e in entries if e.split == name]
        parts[name] = (load_pixels(sel, args.data, args.work), np.array([index[e.slug] for e in sel]), sel)
    train_px, train_y, _ = parts["train"]
    val_px, val_y, val_entries = parts["val"]
    val_sources = np.array([e.source for e in val_entries])

    keep = tuple(args.keep_float)
    calib = calibration_tensors(train_px, train_y, spec, args.calibration_images, args.seed)
    export.quantize_int8(fp32, int8, calib, method=args.method, keep_float=keep)

    logits = {kind: ort_logits(path, val_px, spec) for kind, path in (("fp32", fp32), ("int8", int8))}
    temperature = calibrate.fit_temperature(logits["int8"], val_y)
    refuse_below, rates = threshold.choose(calibrate.softmax(logits["int8"], temperature), val_y, classes)
    meta.update(
        {
            "appliance.temperature": json.dumps(temperature),
            "appliance.precision": "int8",
            "appliance.refuse_below": json.dumps(refuse_below),
            "appliance.quantization": json.dumps(
                f"static QDQ per-channel, {args.method} calibration on {len(calib)} training photos"
                + (f", {', '.join(keep)} in float" if keep else "")
            ),
        }
    )
    digest = export.stamp_metadata(int8, meta)
    for kind in ("fp32", "int8"):
        top1 = {k: round(v, 4) for k, v in top1_per_source(logits[kind], val_y, val_sources).items()}
        print(f"{kind}: validation top-1 per source {top1}")
    agree = float((logits["int8"].argmax(1) == logits["fp32"].argmax(1)).mean())
    print(
        f"int8 ({args.method}, {len(calib)} photos{', float: ' + ' '.join(keep) if keep else ''}): agrees with fp32 on "
        f"{agree:.4f} of validation photos; T={temperature:.3f}, refuse below {refuse_below:.2f} {rates}; "
        f"{int8.stat().st_size / 1e6:.2f} MB sha256 {digest[:12]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
