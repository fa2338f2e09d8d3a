"""Export to ONNX, quantize to int8 (static, QDQ, per-channel) and stamp the model's metadata."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch

from appliance.vision.preprocess import InputSpec

from .mobilenetv2 import MobileNetV2

INPUT_NAME, OUTPUT_NAME = "input", "logits"


def export_fp32(net: MobileNetV2, spec: InputSpec, path: Path) -> None:
    net = net.eval().to(memory_format=torch.contiguous_format)
    dummy = torch.zeros(1, 3, spec.size, spec.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns that it is the old one
        torch.onnx.export(
            net,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


class _Batches:
    """onnxruntime.quantization CalibrationDataReader over preprocessed tensors."""

    def __init__(self, tensors: Iterator[np.ndarray]) -> None:
        self._it = iter(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x}


# minmax-average: the mean of each photo's min/max rather than the extremes over all photos,
# so one odd photo cannot stretch a layer's range and cost every other photo precision.
CALIBRATION_METHODS = ("minmax", "minmax-average", "percentile", "entropy")
CALIBRATION_OPTIONS = {"percentile": {"CalibPercentile": 99.99}, "minmax-average": {"CalibMovingAverage": True}}


def quantize_int8(
    fp32: Path, int8: Path, calibration: list[np.ndarray], method: str = "minmax", keep_float: tuple[str, ...] = ()
) -> None:
    """Static QDQ quantization: int8 per-channel weights, uint8 activations, calibrated activation ranges."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ort.set_default_logger_severity(3)  # folded Clip constants are reported as unused: noise

    prepared = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(prepared),
            str(int8),
            _Batches(iter(calibration)),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "minmax-average": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
            extra_options=CALIBRATION_OPTIONS.get(method, {}),
            nodes_to_exclude=list(keep_float),
        )
    finally:
        prepared.unlink(missing_ok=True)
        for extra in int8.parent.glob("*.onnx.data"):
            extra.unlink(missing_ok=True)


def stamp_metadata(path: Path, metadata: dict[str, object]) -> str:
    """Write metadata into the ONNX file (values as JSON strings) and its .sha256 beside it."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(model, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return digest
