"""Build the shipped classifier end to end: split, train, export, quantize, calibrate, stamp.

    python -m models.pipeline.build --data ../shared/data/plantvillage --out models
    python -m models.pipeline.build --smoke --out /tmp/smoke   # minutes -> seconds, for CI

Reproducible from --seed: the split is a pure function of seed and photo bytes, and the
training order, augmentations and initial head come from the same seed.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from appliance.vision.preprocess import InputSpec, resize_square, to_tensor

from . import calibrate, export, split, threshold
from .backbone import load_from_export, load_imagenet_backbone
from .data import load_pixels
from .mobilenetv2 import MobileNetV2
from .train import TrainConfig, predict_logits, train

BACKGROUND_PREFIX = "background__"
MODEL_NAME = "leafnet"
MODEL_VERSION = "1.0.0"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "plantvillage"
DEFAULT_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenetv2-12-int8.onnx"


def ort_logits(path: Path, pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = [sess.run(None, {export.INPUT_NAME: to_tensor(resize_square(p, spec.size), spec)})[0] for p in pixels]
    return np.concatenate(out)


def calibration_tensors(
    pixels: np.ndarray, labels: np.ndarray, spec: InputSpec, count: int, seed: int
) -> list[np.ndarray]:
    """A class-stratified, seeded sample of training photos, preprocessed as on the device."""
    rng = np.random.default_rng(seed)
    per_class = max(1, count // (labels.max() + 1))
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        chosen += list(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return [to_tensor(resize_square(pixels[i], spec.size), spec) for i in sorted(chosen)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--out", type=Path, default=REPO / "models")
    ap.add_argument("--work", type=Path, default=REPO / "models" / "work", help="pixel cache (not committed)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--lr-backbone", type=float, default=TrainConfig.lr_backbone)
    ap.add_argument("--lr-head", type=float, default=TrainConfig.lr_head)
    ap.add_argument("--crop-min", type=float, default=TrainConfig.crop_min, help="smallest random crop (area share)")
    ap.add_argument("--swap-p", type=float, default=TrainConfig.swap_p, help="chance of a background swap")
    ap.add_argument("--init-from", type=Path, help="continue from this fp32 export of a previous stage")
    ap.add_argument("--calibration-images", type=int, default=340)
    ap.add_argument(
        "--refuse-below",
        default="auto",
        help="calibrated confidence under which to refuse; auto: chosen on the validation split (threshold.py)",
    )
    ap.add_argument("--smoke", action="store_true", help="3 classes, 12 photos each, 3 steps: checks the pipeline runs")
    args = ap.parse_args(argv)

    started = time.time()
    log_lines: list[str] = []

    def log(msg: str) -> None:
        line = f"[{time.time() - started:7.1f}s] {msg}"
        print(line, flush=True)
        log_lines.append(line)

    if not args.data.is_dir():
        raise SystemExit(f"data folder not found: {args.data}")
    if not args.weights.is_file():
        raise SystemExit(f"ImageNet weights not found: {args.weights}")
    classes = split.class_slugs(args.data)
    cfg = TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        lr_backbone=args.lr_backbone,
        lr_head=args.lr_head,
        crop_min=args.crop_min,
        swap_p=args.swap_p,
    )
    per_class = None
    if args.smoke:
        leafy = [c for c in classes if not c.startswith(BACKGROUND_PREFIX)][:2]
        classes = leafy + [c for c in classes if c.startswith(BACKGROUND_PREFIX)]
        per_class, cfg.epochs, cfg.max_steps, cfg.batch_size, cfg.warmup_steps = 12, 1, 3, 8, 1
        args.calibration_images = 6
    args.out.mkdir(parents=True, exist_ok=True)
    entries = split.build_manifest(args.data, args.seed, classes, per_class)
    manifest_path = args.out / "split-manifest.csv"
    manifest_sha = split.write_manifest(entries, manifest_path)
    log(f"manifest: {len(entries)} photos, {len(classes)} classes, sha256 {manifest_sha[:12]}")

    spec = InputSpec(size=args.size)
    index = {c: i for i, c in enumerate(classes)}
    parts = {}
    for name in ("train", "val", "test"):
        sel = [e for e in entries if e.split == name]
        parts[name] = (
            load_pixels(sel, args.data, None if args.smoke else args.work),
            np.array([index[e.slug] for e in sel], dtype=np.int64),
        )
        log(f"{name}: {len(sel)} photos")
    train_px, train_y = parts["train"]
    val_px, val_y = parts["val"]
    leaf = np.array([not classes[y].startswith(BACKGROUND_PREFIX) for y in train_y])
    scenes = train_px[~leaf]

    torch.manual_seed(args.seed)
    net = MobileNetV2(len(classes))
    if args.init_from:
        load_from_export(net, args.init_from)
        log(f"weights from {args.init_from} (continuing a previous stage)")
    else:
        load_imagenet_backbone(net, args.weights)
    history: list[dict[str, float]] = []

    def score(epoch: int, model: MobileNetV2) -> float:
        acc = float((predict_logits(model, val_px, spec).argmax(1) == val_y).mean()) if len(val_y) else 0.0
        history.append({"epoch": epoch + 1, "val_top1_fp32": acc})
        return acc

    t_train = time.time()
    train(net, train_px, train_y, leaf, scenes, spec, cfg, on_epoch=score, log=log)
    train_seconds = time.time() - t_train
    log(f"trained in {train_seconds / 60:.1f} min")

    fp32_path, int8_path = args.out / f"{MODEL_NAME}-fp32.onnx", args.out / f"{MODEL_NAME}-int8.onnx"
    export.export_fp32(net, spec, fp32_path)
    calib = calibration_tensors(train_px, train_y, spec, args.calibration_images, args.seed)
    export.quantize_int8(fp32_path, int8_path, calib)
    log(f"exported and quantized ({len(calib)} calibration photos)")

    temperatures, val_logits = {}, {}
    for kind, path in (("fp32", fp32_path), ("int8", int8_path)):
        val_logits[kind] = logits = ort_logits(path, val_px, spec)
        temperatures[kind] = calibrate.fit_temperature(logits, val_y) if len(val_y) else 1.0
        log(f"{kind}: val top-1 {(logits.argmax(1) == val_y).mean():.4f}, temperature {temperatures[kind]:.3f}")
    if args.refuse_below == "auto":
        probs = calibrate.softmax(val_logits["int8"], temperatures["int8"])
        refuse_below, rates = threshold.choose(probs, val_y, classes)
        log(f"refuse below {refuse_below:.2f} (validation: {rates})")
    else:
        refuse_below = float(args.refuse_below)

    base_meta = {
        "appliance.model_name": MODEL_NAME,
        "appliance.version": MODEL_VERSION + ("-smoke" if args.smoke else ""),
        "appliance.classes": classes,
        "appliance.input_size": spec.size,
        "appliance.mean": list(spec.mean),
        "appliance.std": list(spec.std),
        "appliance.refuse_below": refuse_below,
        "appliance.data_manifest_sha256": manifest_sha,
        "appliance.seed": args.seed,
        "appliance.trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "appliance.recipe": (
            f"MobileNetV2 1.0, full fine-tune from {args.init_from.name if args.init_from else 'ImageNet int8 weights'}"
            f", AdamW lr {cfg.lr_backbone:g}/{cfg.lr_head:g}, {cfg.epochs} epochs, seed {args.seed}, "
            f"crops from {cfg.crop_min:g} of the area, background swap p={cfg.swap_p:g}; static int8 QDQ per-channel"
        ),
    }
    digests = {}
    for kind, path in (("fp32", fp32_path), ("int8", int8_path)):
        meta = dict(base_meta, **{"appliance.temperature": temperatures[kind], "appliance.precision": kind})
        digests[kind] = export.stamp_metadata(path, meta)
    report = {
        "classes": classes,
        "photos": {k: len(v[1]) for k, v in parts.items()},
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "threads": cfg.threads,
        "epochs": cfg.epochs,
        "lr_backbone": cfg.lr_backbone,
        "lr_head": cfg.lr_head,
        "init_from": args.init_from.name if args.init_from else None,
        "crop_min": cfg.crop_min,
        "swap_p": cfg.swap_p,
        "history": history,
        "temperature": temperatures,
        "sha256": digests,
        "int8_bytes": int8_path.stat().st_size,
        "fp32_bytes": fp32_path.stat().st_size,
    }
    (args.out / "training-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "training-log.txt").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    log(f"wrote {int8_path} ({report['int8_bytes'] / 1e6:.2f} MB) sha256 {digests['int8'][:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
