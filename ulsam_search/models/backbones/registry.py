"""The backbone registry itself, apart from the backbones' files so that each can import it without a cycle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..._registry import Registry
from ...errors import InvalidInput
from ._common import Block


@dataclass(frozen=True)
class Backbone:
    name: str
    widths: tuple[float, ...]
    build: Callable[..., nn.Module]  # (width, num_classes, small_input, dropout) -> model with numbered features
    blocks: Callable[..., list[Block]]  # (width, small_input, input_size) -> blocks 1..n


BACKBONES: Registry[Backbone] = Registry("backbone")


def register_backbone(name: str, widths: tuple[float, ...], blocks: Callable[..., list[Block]]):
    """Decorator registering a model builder as backbone ``name``; a name is registered once."""

    def register(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        BACKBONES.register(name, Backbone(name, tuple(widths), build, blocks))
        return build

    return register


def list_backbones() -> list[str]:
    """The registered backbone names, in registration order."""
    return list(BACKBONES.names())


def get_backbone(name: str) -> Backbone:
    return BACKBONES[name]


def block_table(name: str, width: float = 1.0, small_input: bool = False, input_size: int = 224) -> list[Block]:
    """Blocks 1..n of backbone ``name``: channels, stride, spatial sizes at ``input_size``, replaceable or not."""
    if input_size <= 0:
        raise InvalidInput(f"input size must be a positive integer, got {input_size}")
    return get_backbone(name).blocks(width, small_input, input_size)
