"""Build the shipped classifier end to end: split, train, export, quantize, calibrate, stamp.

    python -m models.pipeline.build --data ../shared/data/plantvillage --out models
    python -m models.pipeline.build --smoke --out /tmp/smoke   # minutes -> seconds, for CI
    python -m models.pipeline.build --field-pack DIR ...       # also the photos labelled at base

With --field-pack the model is built in OUT/candidate/ and judged against the shipped one
(--baseline) on the pack's held-out part and the lab test split (compare.py); it replaces the
files in OUT only when it is not worse, or with --ship-even-if-worse.

Reproducible from --seed: the split is a pure function of seed and photo bytes, and the
training order, augmentations and initial head come from the same seed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from appliance.labels import is_crop_class
from appliance.vision.preprocess import InputSpec, resize_square, to_tensor

from . import calibrate, card, compare, export, fakequant, fieldpack, sources, split, threshold
from .backbone import load_from_export, load_imagenet_backbone
from .data import STORE_SIZE, load_pixels
from .mobilenetv2 import MobileNetV2
from .train import TrainConfig, predict_logits, train

MODEL_NAME = "leafnet"
MODEL_VERSION = "2.1.0"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"  # plantvillage/, field/apple/, other-plants/deepweeds/
DEFAULT_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenetv2-12-int8.onnx"
DEFAULT_BASELINE = REPO / "models" / f"{MODEL_NAME}-int8.onnx"  # the shipped model a candidate must beat
COMPARISON = "field-pack-comparison.json"
CANDIDATE = "candidate"  # under --out: where a model built with a field pack waits to be judged
EXIT_WORSE = 3


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


def top1_per_source(logits: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> dict[str, float]:
    """Top-1 of each photo source (plantvillage, field-apple, deepweeds) on its own."""
    right = logits.argmax(1) == labels
    return {str(s): float(right[sources == s].mean()) for s in sorted(set(sources))}


def _count(entries: list[split.Entry]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        out[e.source] = out.get(e.source, 0) + 1
    return out


def _shipped_files() -> list[str]:
    names = ["split-manifest.csv", "training-report.json", "training-log.txt", COMPARISON]
    for kind in ("fp32", "int8"):
        names += [f"{MODEL_NAME}-{kind}.onnx", f"{MODEL_NAME}-{kind}.onnx.sha256"]
    return names


def _pixels(entries: list[split.Entry], roots: dict[str, Path], default: Path, cache: Path | None) -> np.ndarray:
    """load_pixels over photos that live under different folders (a field pack is not under --data)."""
    out = np.empty((len(entries), STORE_SIZE, STORE_SIZE, 3), dtype=np.uint8)
    for root in {roots.get(e.source, default) for e in entries}:
        idx = [i for i, e in enumerate(entries) if roots.get(e.source, default) == root]
        out[idx] = load_pixels([entries[i] for i in idx], root, cache)
    return out


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
    ap.add_argument("--leaf-scale-min", type=float, default=0.55, help="smallest size of a pasted leaf (share)")
    ap.add_argument("--field-light-p", type=float, default=0.3, help="chance of outdoor-light augmentation")
    ap.add_argument("--field-repeat", type=int, default=2, help="times a field photo is seen per epoch")
    ap.add_argument("--init-from", type=Path, help="continue from this fp32 export of a previous stage")
    ap.add_argument("--ema", type=float, default=0.0, help="moving-average decay of the weights (0 = off)")
    ap.add_argument(
        "--qat", action="store_true", help="train through simulated int8 rounding (fakequant.py): a last stage"
    )
    ap.add_argument("--calibration-images", type=int, default=340)
    ap.add_argument(
        "--refuse-below",
        default="auto",
        help="calibrated confidence under which to refuse; auto: chosen on the validation split (threshold.py)",
    )
    ap.add_argument("--smoke", action="store_true", help="a few classes and photos, 3 steps: checks the pipeline runs")
    ap.add_argument("--field-pack", type=Path, help="photos labelled at base (leaf-collector export-field-pack)")
    ap.add_argument("--field-pack-repeat", type=int, default=2, help="times a field pack photo is seen per epoch")
    ap.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="the shipped int8 model to beat")
    ap.add_argument(
        "--ship-even-if-worse", action="store_true", help="replace the files in --out even if the new model is worse"
    )
    args = ap.parse_args(argv)
    command = "python -m models.pipeline.build " + shlex.join(sys.argv[1:] if argv is None else argv)

    started = time.time()
    log_lines: list[str] = []

    def log(msg: str) -> None:
        line = f"[{time.time() - started:7.1f}s] {msg}"
        print(line, flush=True)
        log_lines.append(line)

    if not (args.data / sources.PLANTVILLAGE).is_dir():
        raise SystemExit(f"data folder not found: {args.data / sources.PLANTVILLAGE}")
    if not args.weights.is_file():
        raise SystemExit(f"ImageNet weights not found: {args.weights}")
    cfg = TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        lr_backbone=args.lr_backbone,
        lr_head=args.lr_head,
        crop_min=args.crop_min,
        swap_p=args.swap_p,
        leaf_scale_min=args.leaf_scale_min,
        field_light_p=args.field_light_p,
        ema_decay=args.ema,
    )
    if args.smoke:
        cfg.epochs, cfg.max_steps, cfg.batch_size, cfg.warmup_steps = 1, 3, 8, 1
        args.calibration_images = 6
    pack = None
    if args.field_pack:
        try:
            pack = fieldpack.read_pack(args.field_pack, sources.known_slugs(args.data))
        except (fieldpack.PackError, OSError) as exc:
            raise SystemExit(f"field pack refused: {exc}") from None
        if not args.baseline.is_file():
            raise SystemExit(f"baseline model not found: {args.baseline} (--baseline names the model to beat)")
        log(f"field pack {args.field_pack}: verified, {pack.counts()} photos, classes {', '.join(pack.slugs())}")
    args.out.mkdir(parents=True, exist_ok=True)
    stage = args.out / CANDIDATE if pack else args.out
    stage.mkdir(exist_ok=True)
    if pack:
        for name in _shipped_files():
            (stage / name).unlink(missing_ok=True)  # a refused candidate of an earlier run
    entries = sources.all_entries(args.data, args.seed, smoke=args.smoke, also=tuple(pack.slugs()) if pack else ())
    if pack:
        mine = fieldpack.entries(pack, args.seed)
        taken = {e.sha256 for e in mine}
        also_in_pack = [e for e in entries if e.sha256 in taken]
        if also_in_pack:
            # The pack's label and held-out rule win: the photo must not sit in two splits.
            log(f"{len(also_in_pack)} photo(s) of other sources are also in the pack: counted as pack photos only")
            entries = [e for e in entries if e.sha256 not in taken]
        entries += mine
    roots = {fieldpack.SOURCE: pack.root} if pack else {}
    classes = sorted({e.slug for e in entries})
    manifest_path = stage / "split-manifest.csv"
    manifest_sha = split.write_manifest(entries, manifest_path)
    log(f"manifest: {len(entries)} photos, {len(classes)} classes, sha256 {manifest_sha[:12]}")

    spec = InputSpec(size=args.size)
    index = {c: i for i, c in enumerate(classes)}
    parts, kept = {}, {}
    for name in ("train", "val"):
        kept[name] = sel = [e for e in entries if e.split == name]
        parts[name] = (
            _pixels(sel, roots, args.data, None if args.smoke else args.work),
            np.array([index[e.slug] for e in sel], dtype=np.int64),
        )
        log(f"{name}: {len(sel)} photos ({', '.join(f'{k} {v}' for k, v in sorted(_count(sel).items()))})")
    held_out = [e for e in entries if e.split == fieldpack.HELD_OUT]
    # Training, calibration photos, early stopping, temperature and threshold read only these two parts:
    # neither may hold a held-out or test photo, by split or by bytes.
    fieldpack.guard_held_out(kept["train"] + kept["val"], held_out + [e for e in entries if e.split == "test"])
    if pack:
        log(f"{fieldpack.HELD_OUT}: {len(held_out)} photos, kept for the before/after comparison only")
    train_px, train_y = parts["train"]
    val_px, val_y = parts["val"]
    train_entries = kept["train"]
    # Leaves that can be cut out and put on another background: lab photos and picked leaves on paper.
    leaf = np.array([is_crop_class(e.slug) and e.background in ("lab", "plain") for e in train_entries])
    scenes = train_px[np.array([not is_crop_class(e.slug) for e in train_entries])]
    repeat_of = {"field-apple": args.field_repeat, fieldpack.SOURCE: args.field_pack_repeat}
    repeats = np.array([repeat_of.get(e.source, 1) for e in train_entries])
    val_sources = np.array([e.source for e in kept["val"]])

    torch.manual_seed(args.seed)
    net = MobileNetV2(len(classes))
    if args.init_from:
        load_imagenet_backbone(net, args.weights)  # rows of new classes stay fresh; the rest is overwritten
        load_from_export(net, args.init_from, classes)
        log(f"weights from {args.init_from} (continuing a previous stage)")
    else:
        load_imagenet_backbone(net, args.weights)
    history: list[dict[str, float]] = []

    def score(epoch: int, model: MobileNetV2) -> float:
        """Mean of the per-source validation top-1: lab, field apple and other plants count alike."""
        per_source = top1_per_source(predict_logits(model, val_px, spec), val_y, val_sources)
        acc = float(np.mean(list(per_source.values()))) if per_source else 0.0
        history.append(
            {"epoch": epoch + 1, "val_top1_fp32": acc, **{f"val_top1_{k}": v for k, v in per_source.items()}}
        )
        log(f"validation top-1 per source: {per_source}")
        return acc

    t_train = time.time()
    rounding = fakequant.enable(net) if args.qat else []
    train(net, train_px, train_y, leaf, scenes, spec, cfg, on_epoch=score, log=log, repeats=repeats)
    fakequant.disable(net, rounding)
    train_seconds = time.time() - t_train
    log(f"trained in {train_seconds / 60:.1f} min")

    fp32_path, int8_path = stage / f"{MODEL_NAME}-fp32.onnx", stage / f"{MODEL_NAME}-int8.onnx"
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
            f"crops from {cfg.crop_min:g} of the area, background swap p={cfg.swap_p:g} (leaf scale from "
            f"{cfg.leaf_scale_min:g}), field light p={cfg.field_light_p:g}, field photos x{args.field_repeat}; "
            "PlantVillage + field apple + DeepWeeds (other__plant); "
            + (f"field pack from base ({len(held_out)} held out) x{args.field_pack_repeat}; " if pack else "")
            + ("trained through simulated int8 rounding; " if args.qat else "")
            + "static int8 QDQ per-channel"
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
        "leaf_scale_min": cfg.leaf_scale_min,
        "field_light_p": cfg.field_light_p,
        "field_repeat": args.field_repeat,
        "field_pack": _pack_report(pack, entries, args.field_pack_repeat) if pack else None,
        "qat": args.qat,
        "history": history,
        "temperature": temperatures,
        "sha256": digests,
        "int8_bytes": int8_path.stat().st_size,
        "fp32_bytes": fp32_path.stat().st_size,
    }
    log(f"wrote {int8_path} ({report['int8_bytes'] / 1e6:.2f} MB) sha256 {digests['int8'][:12]}")
    ship = True
    if pack:
        lab_test = [e for e in entries if e.source == "plantvillage" and e.split == "test"]
        before = compare.judge(args.baseline, held_out, pack.root, lab_test, args.data)
        after = compare.judge(int8_path, held_out, pack.root, lab_test, args.data)
        reasons = compare.worse(before, after)
        ship = not reasons or args.ship_even_if_worse
        comparison = {
            "command": command,
            "pack": {"path": str(args.field_pack), "created_at": pack.meta.get("created_at"), **report["field_pack"]},
            "before": before,
            "after": after,
            "worse_because": reasons,
            "decision": "shipped" if ship else "refused",
            "shipped_even_if_worse": bool(reasons and args.ship_even_if_worse),
        }
        report["comparison"] = {"decision": comparison["decision"], "worse_because": reasons}
        (stage / COMPARISON).write_text(json.dumps(comparison, indent=1) + "\n", encoding="utf-8")
        for line in card.field_pack(comparison).splitlines():
            log(line)
        if reasons and args.ship_even_if_worse:
            log(f"WORSE than {args.baseline} ({'; '.join(reasons)}): shipped anyway, as --ship-even-if-worse asks")
        elif reasons:
            log(f"REFUSED: worse than {args.baseline}: {'; '.join(reasons)}")
            log(f"the shipped files in {args.out} are untouched; the candidate is in {stage}")
            log("(--ship-even-if-worse ships it anyway)")
        else:
            log(f"not worse than {args.baseline}: shipping into {args.out}")
    (stage / "training-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (stage / "training-log.txt").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    if stage == args.out:
        return 0
    if not ship:
        return EXIT_WORSE
    for name in _shipped_files():
        if (stage / name).exists():
            os.replace(stage / name, args.out / name)
    if not any(stage.iterdir()):
        stage.rmdir()
    print(f"shipped into {args.out}", flush=True)
    return 0


def _pack_report(pack: fieldpack.FieldPack, entries: list[split.Entry], repeat: int) -> dict:
    mine = [e for e in entries if e.source == fieldpack.SOURCE]
    return {
        "photos": len(mine),
        "train": sum(e.split == "train" for e in mine),
        "val": sum(e.split == "val" for e in mine),
        "held_out": sum(e.split == fieldpack.HELD_OUT for e in mine),
        "repeat": repeat,
        "classes": pack.slugs(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
