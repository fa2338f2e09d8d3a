"""MobileNetV2 1.0 in plain PyTorch, batch norm already folded into the convolutions.

The starting weights come from an int8 ONNX file whose batch norms were folded at
export, so every convolution here carries a bias and there is no BatchNorm layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), as in Sandler et al. 2018.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
FEATURE_WIDTH = 1280


def conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=True)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [conv(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [
            conv(hidden, hidden, 3, stride, groups=hidden),
            nn.ReLU6(inplace=True),
            conv(hidden, cout, 1),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv(3, 32, 3, 2), nn.ReLU6(inplace=True)]
        cin = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [conv(cin, FEATURE_WIDTH, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(FEATURE_WIDTH, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # adaptive pooling exports as GlobalAveragePool, which onnxruntime runs in int8
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(x)))

    def convolutions(self) -> list[nn.Conv2d]:
        """Every convolution in execution order (the order of the ONNX graph)."""
        return [m for m in self.features.modules() if isinstance(m, nn.Conv2d)]
