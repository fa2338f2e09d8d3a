"""Where the checkout, the shipped model and ../shared are, for every test folder."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data" / "plantvillage"
SHARED_ROOT = REPO.parent / "shared" / "data"  # plantvillage/, field/apple/, other-plants/deepweeds/
SHARED_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenetv2-12-int8.onnx"
MODEL = REPO / "models" / "leafnet-int8.onnx"
