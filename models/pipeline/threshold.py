"""Choose the confidence under which the appliance says "not sure", on the validation split.

Rule: the lowest threshold on a 0.05 grid that refuses (retake or unknown) at least 97% of the
validation photos of each class that is not a crop (no leaf; other plants), as long as it refuses
at most 2% of the validation leaf photos; otherwise the highest threshold that keeps leaf
refusals within 2%. The test split is never looked at.

    python -m models.pipeline.threshold --models models     # choose and stamp into both models
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx

from appliance.labels import is_crop_class

from . import export

GRID = tuple(round(0.40 + 0.05 * i, 2) for i in range(11))  # 0.40 .. 0.90
BACKGROUND_REFUSED_AIM = 0.97
LEAF_REFUSED_LIMIT = 0.02


def choose(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[float, dict[str, float]]:
    """probs: calibrated (N, C); returns (threshold, refusal rates at it)."""
    leaf_class = np.array([is_crop_class(c) for c in classes])
    is_leaf = leaf_class[labels]
    predicted_leaf = leaf_class[probs.argmax(1)]
    conf = probs.max(1)

    non_crop = sorted({int(y) for y in labels if not leaf_class[y]})

    def rates(t: float) -> dict[str, float]:
        refused = ~predicted_leaf | (conf < t)
        return {
            "leaf_refused": float(refused[is_leaf].mean()) if is_leaf.any() else 0.0,
            # the worst of the non-crop classes, so many weed photos cannot hide missed no-leaf ones
            "background_refused": min((float(refused[labels == c].mean()) for c in non_crop), default=1.0),
        }

    ok = [t for t in GRID if rates(t)["leaf_refused"] <= LEAF_REFUSED_LIMIT]
    aimed = [t for t in ok if rates(t)["background_refused"] >= BACKGROUND_REFUSED_AIM]
    t = aimed[0] if aimed else (ok[-1] if ok else GRID[0])
    return t, rates(t)


def restamp(path: Path, threshold: float) -> str:
    """Rewrite one metadata value of an existing model (and its .sha256)."""
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    meta["appliance.refuse_below"] = json.dumps(threshold)
    return export.stamp_metadata(path, meta)


def main(argv: list[str] | None = None) -> int:
    from .build import DEFAULT_DATA, REPO, ort_logits
    from .calibrate import softmax
    from .data import load_pixels
    from .split import read_manifest

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=REPO / "models")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--work", type=Path, default=REPO / "models" / "work")
    args = ap.parse_args(argv)
    from appliance.classifier import OnnxClassifier

    info = OnnxClassifier(args.models / "leafnet-int8.onnx", threads=2).info
    val = [e for e in read_manifest(args.models / "split-manifest.csv") if e.split == "val"]
    pixels = load_pixels(val, args.data, args.work)
    labels = np.array([info.classes.index(e.slug) for e in val])
    logits = ort_logits(args.models / "leafnet-int8.onnx", pixels, info.spec)
    t, rates = choose(softmax(logits, info.temperature), labels, list(info.classes))
    for name in ("leafnet-int8.onnx", "leafnet-fp32.onnx"):
        restamp(args.models / name, t)
    print(
        f"refuse below {t:.2f}: validation leaf refused {rates['leaf_refused']:.4f}, "
        f"no-leaf refused {rates['background_refused']:.4f}; stamped into both models"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
