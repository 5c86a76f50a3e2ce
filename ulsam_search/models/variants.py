"""The paper's named variants (docs/paper.md), accepted wherever an ARCH is, with an optional ``/g`` suffix.

The slides drop the paper's position column; these placements are the unique ones that reproduce the reported
costs. Where several identical repeated blocks fit (MV1 layers 7-11, MV2 blocks 15/16), the choice below is
ours and gives the same cost; positions marked unverified are a best reading.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import Architecture
from ..errors import InvalidInput

DEFAULT_GROUPS = 4


@dataclass(frozen=True)
class Variant:
    name: str
    template: str  # an ARCH string with {g} for the subspace count
    description: str
    paper_groups: tuple[int, ...]
    verified: bool = True

    def arch(self, groups: int = DEFAULT_GROUPS) -> Architecture:
        return Architecture.parse(self.template.format(g=groups))


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("paper-mv1-added-14", "mobilenet_v1:11+{g}",
            "MV1 + ULSAM on the 14x14x512 tensor (after layer 11; any of 7-11 costs the same)", (1, 2, 4, 8, 16)),
    Variant("paper-mv1-added-7", "mobilenet_v1:13+{g}", "MV1 + ULSAM on the 7x7x1024 tensor (after layer 13)",
            (1, 2, 4, 8, 16)),
    Variant("paper-mv1-reduced", "mobilenet_v1:11={g}",
            "MV1, one 14x14 layer replaced by ULSAM (layer 11; any of 7-11 costs the same)", (1, 2, 4, 8, 16)),
    Variant("paper-mv1-0.75-reduced", "mobilenet_v1@0.75:11={g}", "MV1 width 0.75, layer 11 replaced by ULSAM",
            (1, 4)),
    Variant("paper-mv1-0.5-reduced", "mobilenet_v1@0.5:11={g}", "MV1 width 0.5, layer 11 replaced by ULSAM", (1, 4)),
    Variant("paper-mv2-added", "mobilenet_v2:16+{g}",
            "MV2 + ULSAM on the 7x7x160 tensor (after block 16; position unverified)", (1, 2, 4, 8, 16), False),
    Variant("paper-mv2-a", "mobilenet_v2:12={g}", "MV2 reduced (a): block 12 replaced", (1, 4, 8, 16)),
    Variant("paper-mv2-b", "mobilenet_v2:15={g}", "MV2 reduced (b): block 15 replaced", (1, 4, 8, 16)),
    Variant("paper-mv2-c", "mobilenet_v2:12={g},15={g}",
            "MV2 reduced (c): blocks 12 and 15 replaced (~13% fewer MACs/params)", (1, 4, 8, 16)),
    Variant("paper-mv2-d", "mobilenet_v2:15={g},16={g}", "MV2 reduced (d): blocks 15 and 16 replaced", (1, 4, 8, 16)),
    Variant("paper-mv2-e", "mobilenet_v2:9={g},12={g}", "MV2 reduced (e): blocks 9 and 12 replaced (Birds only)",
            (1, 4, 8, 16)),
    Variant("paper-mv2-f", "mobilenet_v2:12={g},13={g},15={g},16={g}",
            "MV2 reduced (f): blocks 12, 13, 15 and 16 replaced (~25% fewer MACs/params)", (1, 4, 8, 16)),
)}


def resolve_arch(text: str) -> Architecture:
    """An ARCH string or a variant name (``paper-mv2-c``, ``paper-mv2-c/8``) as an ``Architecture``."""
    text = text.strip()
    if not text.startswith("paper-"):
        return Architecture.parse(text)
    name, _, groups = text.partition("/")
    if name not in VARIANTS:
        raise InvalidInput(f"unknown variant '{name}'; valid variants: {', '.join(VARIANTS)}")
    if not groups:
        return VARIANTS[name].arch()
    if not (groups.isascii() and groups.isdigit()):  # int() refuses "²", which isdigit() accepts
        raise InvalidInput(f"malformed subspace count '/{groups}' in '{text}': expected /<g> with g a positive integer")
    return VARIANTS[name].arch(int(groups))
