"""Backbone registry: name -> model builder, allowed widths and block table (the one source of block facts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ...errors import InvalidInput
from . import mobilenet_v1, mobilenet_v2
from ._common import Block


@dataclass(frozen=True)
class Backbone:
    name: str
    widths: tuple[float, ...]
    build: Callable[..., nn.Module]
    blocks: Callable[..., list[Block]]


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v1": Backbone("mobilenet_v1", mobilenet_v1.WIDTHS, mobilenet_v1.mobilenet_v1, mobilenet_v1.block_table),
    "mobilenet_v2": Backbone("mobilenet_v2", mobilenet_v2.WIDTHS, mobilenet_v2.mobilenet_v2, mobilenet_v2.block_table),
}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise InvalidInput(f"unknown backbone '{name}'; valid: {', '.join(BACKBONES)}") from None


def block_table(name: str, width: float = 1.0, small_input: bool = False, input_size: int = 224) -> list[Block]:
    """Blocks 1..n of backbone ``name``: channels, stride, spatial sizes at ``input_size``, replaceable or not."""
    if input_size <= 0:
        raise InvalidInput(f"input size must be a positive integer, got {input_size}")
    return get_backbone(name).blocks(width, small_input, input_size)


__all__ = ["BACKBONES", "Backbone", "Block", "block_table", "get_backbone"]
