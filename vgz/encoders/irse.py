"""IR and IR-SE ResNets: the backbone of pSp's encoders and of ArcFace (pSp's identity loss).

"Improved residual" units (Deng et al., ArcFace; the TreB1eN InsightFace port that pSp uses):
BN -> 3x3 conv -> PReLU -> 3x3 conv (stride) -> BN (-> squeeze-excitation), plus a shortcut
(a strided identity, or a 1x1 conv + BN where the width changes). Parameter names are pSp's
(``input_layer.0.weight``, ``body.3.res_layer.5.fc1.weight``, ``body.3.shortcut_layer.0.weight``),
so ``model_ir_se50.pth`` and pSp checkpoints load by name.

Shapes: images ``[N, 3, H, W]`` -> features ``[N, widths[-1], H / 16, W / 16]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IR_UNITS", "SEModule", "StridedIdentity", "BottleneckIR", "ir_stem", "ir_body", "ArcFace"]

#: Units per stage of the IR-50/100/152 ResNets (pSp's ``get_blocks``).
IR_UNITS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}


class SEModule(nn.Module):
    """Squeeze-excitation: scale channels by ``sigmoid(fc2(relu(fc1(mean over pixels))))``."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class StridedIdentity(nn.Module):
    """pSp's shortcut ``MaxPool2d(1, stride)``: every ``stride``-th pixel (a 1x1 max is the pixel), without the pooling op."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stride == 1 else x[:, :, ::self.stride, ::self.stride]


class BottleneckIR(nn.Module):
    """One IR (``se_reduction=0``) or IR-SE unit: ``[N, C_in, H, W] -> [N, depth, H / stride, W / stride]``."""

    def __init__(self, in_channels: int, depth: int, stride: int, se_reduction: int = 16):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = StridedIdentity(stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        layers = [nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
                  nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth)]
        if se_reduction:
            layers.append(SEModule(depth, se_reduction))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def ir_stem(in_channels: int, width: int) -> nn.Sequential:
    """``input_layer``: 3x3 conv (no bias) -> BN -> PReLU, full resolution."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))


def ir_body(units: Sequence[int], widths: Sequence[int], stem_width: int, se_reduction: int) -> nn.Sequential:
    """``body``: four stages, each halving the resolution in its first unit."""
    modules, in_channels = [], stem_width
    for count, depth in zip(units, widths):
        for i in range(count):
            modules.append(BottleneckIR(in_channels, depth, 2 if i == 0 else 1, se_reduction))
            in_channels = depth
    return nn.Sequential(*modules)


class ArcFace(nn.Module):
    """ArcFace IR-SE50 (``model_ir_se50.pth``), pSp's identity network: faces ``[N, 3, 112, 112]``
    in [-1, 1] -> unit-norm embeddings ``[N, 512]``.

    Frozen and in eval mode (pSp's ``IDLoss``): BatchNorm uses its running statistics and dropout
    is off.
    """

    def __init__(self, num_layers: int = 50, se: bool = True):
        super().__init__()
        self.input_layer = ir_stem(3, 64)
        self.body = ir_body(IR_UNITS[num_layers], (64, 128, 256, 512), 64, 16 if se else 0)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.4), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512, affine=False))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ArcFace":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.output_layer(self.body(self.input_layer(x)))
        return x / x.norm(dim=1, keepdim=True)
