"""What both MobileNets share: channel rounding, conv-BN-activation, the block-table row, the head, initialisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


def _make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without going more than 10% down (torchvision's rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + activation, laid out as torchvision's ``Conv2dNormActivation`` (``0``, ``1``,
    ``2``) so torchvision weights load by name; ours keeps torchvision's 2.7 s import out of every Ray worker."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 activation_layer: type[nn.Module] = nn.ReLU6) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), activation_layer(inplace=True))
        self.out_channels = c_out


@dataclass(frozen=True)
class Block:
    """One numbered block of a backbone: channels and stride after the width multiplier, sizes for an input."""

    index: int
    c_in: int
    c_out: int
    stride: int
    expand_ratio: int
    in_size: int
    out_size: int

    @property
    def replaceable(self) -> bool:
        """ULSAM keeps the tensor's shape, so only a block that keeps it too can be replaced."""
        return self.stride == 1 and self.c_in == self.c_out


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a 3x3 conv with padding 1 (and after a 1x1 conv with stride 1)."""
    return math.ceil(size / stride)


def stem_stride(small_input: bool) -> int:
    return 1 if small_input else 2


def make_block_table(layers: list[tuple[int, int, int]], width: float, small_input: bool,
                     input_size: int) -> list[Block]:
    """Blocks 1..n from ``(c_out at width 1.0, stride, expand_ratio)`` rows; ``small_input`` makes block 2 stride 1."""
    c_in = _make_divisible(32 * width)
    size = conv_output_size(input_size, stem_stride(small_input))
    blocks = []
    for index, (c, s, t) in enumerate(layers, start=1):
        stride = 1 if small_input and index == 2 else s
        c_out = _make_divisible(c * width)
        out_size = conv_output_size(size, stride)
        blocks.append(Block(index, c_in, c_out, stride, t, size, out_size))
        c_in, size = c_out, out_size
    return blocks


class MobileNet(nn.Module):
    """A ``features`` stack (stem, numbered blocks 1..n, optional head conv) then pooling and a linear classifier."""

    def __init__(self, features: list[nn.Module], feature_channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(feature_channels, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
