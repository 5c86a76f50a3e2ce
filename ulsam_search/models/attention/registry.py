"""The attention registry itself, apart from the types' files so that each can import it without a cycle."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..._registry import Registry

INSERT, REPLACE = "insert", "replace"
ROLES = (INSERT, REPLACE)
DEFAULT_ATTENTION = "ulsam"
# a name ends in a letter or "_", so the ARCH placement "12+se4" splits into name "se" and g=4 unambiguously
NAME_PATTERN = r"[a-z](?:[a-z0-9_]*[a-z_])?"

CostRule = Callable[[nn.Module, int, int, int, str], tuple[int, int]]


@dataclass(frozen=True)
class AttentionType:
    """An attention layer as the search sees it.

    ``cls(channels, groups=g, **kwargs)`` builds one; ``roles`` says where a placement may put it (``insert``
    after a block, ``replace`` a block); ``cost(module, channels, height, width, convention)`` gives the
    (MACs, params) of one instance on a ``channels x height x width`` tensor under the ``paper`` or ``full``
    convention (see ``ulsam_search.cost``): the layer's internals are counted by this rule, not by thop.
    """

    name: str
    cls: type[nn.Module]
    roles: frozenset[str]
    cost: CostRule

    def __post_init__(self) -> None:
        if not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(f"attention name '{self.name}' must match {NAME_PATTERN} (lower case, not ending in "
                             f"a digit, so that ARCH strings parse)")
        object.__setattr__(self, "roles", frozenset(self.roles))
        if not self.roles or not self.roles <= set(ROLES):
            raise ValueError(f"attention '{self.name}' roles {sorted(self.roles)} must be a non-empty subset of "
                             f"{', '.join(ROLES)}")


ATTENTIONS: Registry[AttentionType] = Registry("attention")


def register_attention(attention: AttentionType) -> AttentionType:
    """Add ``attention`` to the registry; a name is registered once."""
    return ATTENTIONS.register(attention.name, attention)


def list_attentions() -> list[str]:
    """The registered attention names, in registration order."""
    return list(ATTENTIONS.names())


def get_attention(name: str) -> AttentionType:
    """The attention type registered under ``name`` (any case, as ARCH strings are)."""
    return ATTENTIONS[name.lower()]


def create_attention(name: str, channels: int, **kwargs) -> nn.Module:
    """Build attention ``name`` over ``channels`` channels, e.g. ``create_attention("ulsam", 96, groups=4)``."""
    return get_attention(name).cls(channels, **kwargs)
