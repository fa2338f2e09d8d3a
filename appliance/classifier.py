"""The int8 leaf classifier: one onnxruntime session, checked against its sha256 at load.

The model carries everything the runtime needs in its ONNX metadata (class slugs in output
order, input size, mean/std, temperature, version), so no side files travel with it; only
its checksum is kept beside it (or in the config) because a file cannot hold its own hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from .errors import ModelError
from .ports import ModelInfo
from .vision.preprocess import InputSpec

MODEL_FILE = "leafnet-int8.onnx"
INSTALLED_MODELS = Path("/opt/leaf-appliance/models")
META = "appliance."


def default_model_path() -> Path:
    """The model in this checkout's models/ folder, else the one the installer put in /opt."""
    checkout = Path(__file__).resolve().parents[1] / "models" / MODEL_FILE
    return checkout if checkout.exists() else INSTALLED_MODELS / MODEL_FILE


def expected_sha256(path: Path, configured: str = "") -> str:
    if configured:
        return configured.lower()
    side = path.with_name(path.name + ".sha256")
    try:
        text = side.read_text(encoding="utf-8").split()
    except OSError:
        raise ModelError(
            f"{path}: no checksum to verify it against: put its sha256 in {side} or in the config (model.sha256)"
        ) from None
    if not text or not re.fullmatch(r"[0-9a-fA-F]{64}", text[0]):
        raise ModelError(f"{side}: not a sha256 checksum file")
    return text[0].lower()


def _parse_metadata(path: Path, sha256: str, meta: dict[str, str]) -> ModelInfo:
    def get(key: str):
        try:
            return json.loads(meta[META + key])
        except KeyError:
            raise ModelError(f"{path}: not a leaf-appliance model (metadata '{META + key}' missing)") from None
        except json.JSONDecodeError:
            return meta[META + key]

    classes = tuple(get("classes"))
    return ModelInfo(
        path=path,
        sha256=sha256,
        name=str(get("model_name")),
        version=str(get("version")),
        precision=str(get("precision")),
        classes=classes,
        spec=InputSpec(size=int(get("input_size")), mean=tuple(get("mean")), std=tuple(get("std"))),
        temperature=float(get("temperature")),
        refuse_below=float(get("refuse_below")),
        data_manifest_sha256=str(get("data_manifest_sha256")),
    )


def session_options(threads: int):
    """The one set of onnxruntime options the device runs with (the benchmark times the same)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # Idle worker threads otherwise spin and burn battery between presses.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # On x86 without VNNI (AVX2 only) onnxruntime's u8s8 kernels add pairs of products in 16 bits,
    # which saturate: the same int8 file then answers differently (lab top-1 97.42% here, 97.59% on
    # a VNNI machine). This keeps the sums exact, as the Pi's NEON dot products are; ARM ignores it.
    opts.add_session_config_entry("session.x64quantprecision", "1")
    return opts


class OnnxClassifier:
    """Implements ports.Classifier on onnxruntime's CPU provider."""

    def __init__(self, path: Path | None = None, sha256: str = "", threads: int = 2, verify: bool = True) -> None:
        import onnxruntime as ort

        path = Path(path) if path else default_model_path()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"{path}: model file not found") from None
        except OSError as exc:
            raise ModelError(f"{path}: cannot read model ({exc.strerror or exc})") from None
        digest = hashlib.sha256(data).hexdigest()
        if verify:
            want = expected_sha256(path, sha256)
            if digest != want:
                raise ModelError(
                    f"{path}: checksum mismatch (sha256 {digest[:12]}..., expected {want[:12]}...): "
                    "the file is corrupt or not the model this device was given; reinstall it"
                )
        try:
            self._session = ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self._input = self._session.get_inputs()[0].name
        self.info = _parse_metadata(path, digest, self._session.get_modelmeta().custom_metadata_map)
        out_width = self._session.get_outputs()[0].shape[-1]
        if isinstance(out_width, int) and out_width != len(self.info.classes):
            raise ModelError(f"{path}: {out_width} outputs but {len(self.info.classes)} class names")

    def logits(self, tensor: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: tensor})[0]
