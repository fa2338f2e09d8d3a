"""Quantization-aware fine-tuning: train with the int8 rounding the shipped file will have.

The shipped file is quantized after training (``export.quantize_int8``: int8 symmetric
per-channel weights, uint8 activations from min/max ranges). Its misses on the lab photos are
partly the rounding's, so a last stage trains through a simulation of it: every convolution's
and the classifier's weights are rounded per output channel, and every input to them is
rounded to 256 levels of its running range, with straight-through gradients. The floats
trained this way are exported and quantized as usual; nothing here reaches the ONNX graph.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from .mobilenetv2 import MobileNetV2


class PerChannelWeightRounding(nn.Module):
    """Symmetric int8 per output channel, as onnxruntime's QDQ quantizer rounds weights."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(1) / 127.0).clamp_min(1e-8)
        zero = torch.zeros(weight.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


class ActivationRounding:
    """uint8 over a running min/max: the range the calibration photos would give."""

    def __init__(self, momentum: float = 0.01) -> None:
        self.momentum = momentum
        self.low: torch.Tensor | None = None
        self.high: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = inputs[0]
        if module.training or self.low is None:
            low, high = x.detach().amin().clamp_max(0.0), x.detach().amax().clamp_min(0.0)
            if self.low is None or self.high is None:
                self.low, self.high = low, high
            else:
                self.low = torch.lerp(self.low, low, self.momentum)
                self.high = torch.lerp(self.high, high, self.momentum)
        scale = float(((self.high - self.low) / 255.0).clamp_min(1e-8))
        zero = int(torch.round(-self.low / scale).clamp(0, 255))
        return (torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255),)


def quantized_layers(net: MobileNetV2) -> list[nn.Module]:
    return [*net.convolutions(), net.classifier]


def enable(net: MobileNetV2) -> list[torch.utils.hooks.RemovableHandle]:
    """Round weights and inputs of every convolution and the classifier from now on."""
    handles = []
    for layer in quantized_layers(net):
        parametrize.register_parametrization(layer, "weight", PerChannelWeightRounding())
        handles.append(layer.register_forward_pre_hook(ActivationRounding()))
    return handles


def disable(net: MobileNetV2, handles: list[torch.utils.hooks.RemovableHandle]) -> None:
    """Back to plain float layers holding the trained (unrounded) weights, ready for export."""
    for handle in handles:
        handle.remove()
    for layer in quantized_layers(net):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
