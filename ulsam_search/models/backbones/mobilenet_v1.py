"""MobileNet-V1 (Howard et al., 2017): conv stem, then depthwise-separable layers 1..13 as ``features[1..13]``.

Layer k is a 3x3 depthwise conv + BN + ReLU then a 1x1 pointwise conv + BN + ReLU (ReLU as in the paper), with an
``attn`` slot on its output. ``small_input`` (32x32 data) sets the stem and layer 2 to stride 1: total stride 8.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_backbone
from ._common import Block, ConvBNAct, MobileNet, make_block_table, stem_stride

WIDTHS = (0.25, 0.5, 0.75, 1.0)
# (output channels, stride) of layers 1..13 at width 1.0 (the MobileNet paper's Table 1)
_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def block_table(width: float = 1.0, small_input: bool = False, input_size: int = 224) -> list[Block]:
    return make_block_table([(c, s, 1) for c, s in _LAYERS], width, small_input, input_size)


class DepthwiseSeparable(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNAct(inp, inp, kernel_size=3, stride=stride, groups=inp, activation_layer=nn.ReLU)
        self.pw = ConvBNAct(inp, oup, kernel_size=1, activation_layer=nn.ReLU)
        self.out_channels = oup
        self.attn: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.pw(self.dw(x)))


@register_backbone("mobilenet_v1", WIDTHS, block_table)
def mobilenet_v1(width: float = 1.0, num_classes: int = 1000, small_input: bool = False, dropout: float = 0.2) -> MobileNet:
    blocks = block_table(width, small_input)
    features: list[nn.Module] = [
        ConvBNAct(3, blocks[0].c_in, stride=stem_stride(small_input), activation_layer=nn.ReLU)
    ]
    features += [DepthwiseSeparable(b.c_in, b.c_out, b.stride) for b in blocks]
    return MobileNet(features, blocks[-1].c_out, num_classes, dropout)
