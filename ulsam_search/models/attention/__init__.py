"""Attention layers chosen by name, built as ``cls(channels, **kwargs)`` (the timm ``create_attn`` pattern).

Backbones never know an attention layer's internals: a block has an ``attn`` slot (``nn.Identity`` when empty)
and a replaced block's slot in ``features`` takes the layer itself. New types (SE, ECA, CBAM) register here.
"""

from __future__ import annotations

from torch import nn

from ...errors import InvalidInput
from .ulsam import ULSAM

_ATTENTION_LAYERS: dict[str, type[nn.Module]] = {"ulsam": ULSAM}


def get_attention(name: str) -> type[nn.Module]:
    """The attention class registered under ``name``."""
    try:
        return _ATTENTION_LAYERS[name.lower()]
    except KeyError:
        raise InvalidInput(f"unknown attention '{name}'; valid: {', '.join(sorted(_ATTENTION_LAYERS))}") from None


def create_attention(name: str, channels: int, **kwargs) -> nn.Module:
    """Build attention ``name`` over ``channels`` channels, e.g. ``create_attention("ulsam", 96, groups=4)``."""
    return get_attention(name)(channels, **kwargs)
