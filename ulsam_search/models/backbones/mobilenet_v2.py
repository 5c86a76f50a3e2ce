"""MobileNet-V2 (Sandler et al., 2018), parameter-for-parameter torchvision's ``mobilenet_v2``.

Blocks 1..17 are ``features[1..17]``; each inverted-residual block has an ``attn`` slot applied to its output
(after the residual add), empty by default, so a model without ULSAM has exactly torchvision's state_dict.
``small_input`` (32x32 data) sets the stem and block 2 to stride 1: total stride 8 instead of 32, 4x4 last map.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_backbone
from ._common import Block, ConvBNAct, MobileNet, _make_divisible, make_block_table, stem_stride

WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# expansion t, output channels c, repeats n, first stride s (the MobileNet-V2 paper's Table 2)
_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def block_table(width: float = 1.0, small_input: bool = False, input_size: int = 224) -> list[Block]:
    layers = [(c, s if i == 0 else 1, t) for t, c, n, s in _SETTING for i in range(n)]
    return make_block_table(layers, width, small_input, input_size)


class InvertedResidual(nn.Module):
    """torchvision's block (same layers, same names) plus an ``attn`` slot on the output."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(inp, hidden_dim, kernel_size=1, activation_layer=nn.ReLU6))
        layers += [
            ConvBNAct(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, activation_layer=nn.ReLU6),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self.attn: nn.Module = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.conv(x) if self.use_res_connect else self.conv(x)
        return self.attn(out)


@register_backbone("mobilenet_v2", WIDTHS, block_table)
def mobilenet_v2(width: float = 1.0, num_classes: int = 1000, small_input: bool = False, dropout: float = 0.2) -> MobileNet:
    blocks = block_table(width, small_input)
    last_channel = _make_divisible(1280 * max(1.0, width))
    features: list[nn.Module] = [
        ConvBNAct(3, blocks[0].c_in, stride=stem_stride(small_input), activation_layer=nn.ReLU6)
    ]
    features += [InvertedResidual(b.c_in, b.c_out, b.stride, b.expand_ratio) for b in blocks]
    features.append(ConvBNAct(blocks[-1].c_out, last_channel, kernel_size=1, activation_layer=nn.ReLU6))
    return MobileNet(features, last_channel, num_classes, dropout)
