"""The attention registry: each type's layer class, roles and cost rule, chosen by name (timm's ``create_attn``).

Backbones never know an attention layer's internals: a block has an ``attn`` slot (``nn.Identity`` when empty)
and a replaced block's slot in ``features`` takes the layer itself. A new type (SE, ECA, CBAM) is one file that
calls ``register_attention``; the ARCH string, ``build_model`` and ``count_cost`` then know it.
"""

from .registry import (DEFAULT_ATTENTION, INSERT, NAME_PATTERN, REPLACE, ROLES, AttentionType, CostRule,
                       create_attention, get_attention, list_attentions, register_attention)
from .ulsam import ULSAM  # importing a type's file registers it

__all__ = ["DEFAULT_ATTENTION", "INSERT", "REPLACE", "ROLES", "AttentionType", "CostRule", "ULSAM",
           "create_attention", "get_attention", "list_attentions", "register_attention"]
