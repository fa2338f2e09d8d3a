"""Load the ImageNet int8 MobileNetV2 (QOperator ONNX) into the PyTorch model as float weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .mobilenetv2 import MobileNetV2


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _per_channel(values: np.ndarray, channels: int) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return np.broadcast_to(values, (channels,)) if values.size == 1 else values


def dequantized_conv_weights(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) in float32 for each QLinearConv, in graph order.

    QLinearConv inputs: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias(int32).
    The bias is stored with scale x_scale * w_scale (ONNX spec).
    """
    model = onnx.load(str(path))
    init = _initializers(model)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for node in model.graph.node:
        if node.op_type != "QLinearConv":
            continue
        names = list(node.input)
        w_q = init[names[3]].astype(np.float64)
        cout = w_q.shape[0]
        w_scale = _per_channel(init[names[4]], cout)
        w_zp = _per_channel(init[names[5]], cout)
        x_scale = float(np.asarray(init[names[1]]).reshape(-1)[0])
        shape = (cout,) + (1,) * (w_q.ndim - 1)
        weight = (w_q - w_zp.reshape(shape)) * w_scale.reshape(shape)
        bias = init[names[8]].astype(np.float64) * x_scale * w_scale if len(names) > 8 else np.zeros(cout)
        out.append((weight.astype(np.float32), bias.astype(np.float32)))
    return out


def load_imagenet_backbone(net: MobileNetV2, path: Path) -> None:
    """Copy the dequantized ImageNet convolutions into ``net``; the classifier stays fresh."""
    weights = dequantized_conv_weights(path)
    convs = net.convolutions()
    if len(weights) != len(convs):
        raise ValueError(f"{path}: {len(weights)} convolutions, the model has {len(convs)}")
    with torch.no_grad():
        for layer, (w, b) in zip(convs, weights, strict=True):
            if tuple(layer.weight.shape) != w.shape:
                raise ValueError(f"{path}: weight shape {w.shape} != {tuple(layer.weight.shape)}")
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))


def load_from_export(net: MobileNetV2, path: Path, classes: list[str] | None = None) -> None:
    """Every weight (backbone and classifier) from one of our own fp32 ONNX exports.

    Lets a training stage continue from the previous stage's exported model. With ``classes``
    (the new model's class list) the classifier rows are copied by class name, so classes can
    be added: a new class keeps its fresh initial row.
    """
    model = onnx.load(str(path))
    init = _initializers(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    layers = net.convolutions()
    if len(convs) != len(layers) or len(gemms) != 1:
        raise ValueError(f"{path}: not a fp32 export of this MobileNetV2 ({len(convs)} convolutions)")
    with torch.no_grad():
        for layer, node in zip(layers, convs, strict=True):
            layer.weight.copy_(torch.from_numpy(init[node.input[1]].copy()))
            layer.bias.copy_(torch.from_numpy(init[node.input[2]].copy()))
        gemm = gemms[0]
        weight = init[gemm.input[1]]
        trans_b = any(a.name == "transB" and a.i == 1 for a in gemm.attribute)
        weight = weight if trans_b else weight.T
        bias = init[gemm.input[2]]
        if classes is not None:
            meta = {p.key: p.value for p in model.metadata_props}
            old = json.loads(meta.get("appliance.classes", "[]"))
            if len(old) != weight.shape[0]:
                raise ValueError(f"{path}: metadata lists {len(old)} classes for {weight.shape[0]} outputs")
            for i, slug in enumerate(classes):
                if slug in old:
                    net.classifier.weight[i].copy_(torch.from_numpy(weight[old.index(slug)].copy()))
                    net.classifier.bias[i] = float(bias[old.index(slug)])
            return
        if tuple(weight.shape) != tuple(net.classifier.weight.shape):
            raise ValueError(
                f"{path}: classifier is {weight.shape}, the model wants {tuple(net.classifier.weight.shape)}"
            )
        net.classifier.weight.copy_(torch.from_numpy(weight.copy()))
        net.classifier.bias.copy_(torch.from_numpy(bias.copy()))
