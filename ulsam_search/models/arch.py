"""Architecture: a backbone, a width and attention placements; the ARCH string and the one per-block choice parser.

ARCH grammar (the identity of an architecture in every table, cache and report)::

    BACKBONE[@WIDTH][:PLACEMENT,...]     PLACEMENT = <block><op>[<attention>]<g>
        <op>         + (insert the attention layer after the block) or = (replace the block by it)
        <attention>  a registered attention name (``models.attention``), omitted for the default ``ulsam``;
                     names end in a letter or "_", so ``12+se4`` is SE with g=4 and ``12+4`` is ULSAM with g=4

The canonical form sorts placements by block, omits ``@1.0`` and the name ``ulsam``; ``Architecture.parse(str(a))
== a``. An ``Architecture`` is validated against the backbone's block table and the attention types' roles when it
is made, so every instance is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InvalidInput
from .attention import DEFAULT_ATTENTION, INSERT, NAME_PATTERN, REPLACE, get_attention
from .backbones import Block, block_table, get_backbone

_OP_SYMBOL = {INSERT: "+", REPLACE: "="}
_OP = {symbol: op for op, symbol in _OP_SYMBOL.items()}
_ARCH = re.compile(r"^(?P<backbone>[A-Za-z0-9_]+)(?:@(?P<width>[^:]*))?(?::(?P<placements>.*))?$")
_CHOICE_PATTERN = rf"(?P<op>[+=])(?P<attention>{NAME_PATTERN})?(?P<groups>[0-9]+)"  # ASCII digits only
_PLACEMENT = re.compile(rf"^(?P<block>[0-9]+){_CHOICE_PATTERN}$")
_PLACEMENT_HELP = "expected <block>+<g> (insert ULSAM after the block) or <block>=<g> (replace the block by ULSAM)"


@dataclass(frozen=True, order=True)
class Placement:
    """Attention ``attention`` (ULSAM by default) with ``groups`` subspaces inserted after, or replacing, block
    ``block``."""

    block: int
    op: str
    groups: int
    attention: str = DEFAULT_ATTENTION

    def __post_init__(self) -> None:
        object.__setattr__(self, "attention", self.attention.lower())  # as the registry looks names up

    def __str__(self) -> str:
        return f"{self.block}{self.choice}"

    @property
    def choice(self) -> str:
        """The per-block choice as results tables write it: ``+g`` or ``=g`` (``+<name>g`` for other types)."""
        name = "" if self.attention == DEFAULT_ATTENTION else self.attention
        return f"{_OP_SYMBOL[self.op]}{name}{self.groups}"


@dataclass(frozen=True)
class Architecture:
    backbone: str
    width: float = 1.0
    placements: tuple[Placement, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "placements", tuple(sorted(self.placements)))
        object.__setattr__(self, "width", float(self.width))
        spec = get_backbone(self.backbone)
        if self.width not in spec.widths:
            valid = ", ".join(f"{w:g}" for w in spec.widths)
            raise InvalidInput(f"width {self.width:g} is not available for {self.backbone}; valid widths: {valid}")
        blocks = {b.index: b for b in self.blocks()}
        seen: set[int] = set()
        for p in self.placements:
            _validate_placement(self.backbone, p, blocks, seen)

    @classmethod
    def parse(cls, text: str) -> Architecture:
        """Parse an ARCH string (see the module docstring); errors name the offending token."""
        text = text.strip()
        match = _ARCH.match(text)
        if match is None:
            raise InvalidInput(f"malformed ARCH '{text}': expected BACKBONE[@WIDTH][:PLACEMENT,...], "
                               f"e.g. mobilenet_v2:12=4,15=4")
        width = 1.0
        if match["width"] is not None:
            try:
                width = float(match["width"])
            except ValueError:
                raise InvalidInput(f"malformed width '{match['width']}' in ARCH '{text}': expected a number "
                                   f"such as 0.75") from None
        placements = []
        if match["placements"] is not None:
            for token in match["placements"].split(","):
                placement = _PLACEMENT.match(token.strip())
                if placement is None:
                    raise InvalidInput(f"malformed placement '{token}' in ARCH '{text}': {_PLACEMENT_HELP}")
                placements.append(_placement(int(placement["block"]), placement))
        return cls(match["backbone"], width, tuple(placements))

    def __str__(self) -> str:
        text = self.backbone if self.width == 1.0 else f"{self.backbone}@{self.width:g}"
        if self.placements:
            text += ":" + ",".join(str(p) for p in self.placements)
        return text

    def blocks(self, small_input: bool = False, input_size: int = 224) -> list[Block]:
        return block_table(self.backbone, self.width, small_input, input_size)

    @property
    def baseline(self) -> Architecture:
        """The same backbone and width without attention."""
        return Architecture(self.backbone, self.width)

    def choices(self) -> dict[int, str]:
        """Block index -> ``none``, ``+g`` or ``=g`` for every block of the backbone."""
        chosen = {p.block: p.choice for p in self.placements}
        return {b.index: chosen.get(b.index, NONE) for b in self.blocks()}


NONE = "none"  # the choice of a block without attention
_CHOICE = re.compile(rf"^{_CHOICE_PATTERN}$")


def _placement(block: int, match: re.Match) -> Placement:
    return Placement(block, _OP[match["op"]], int(match["groups"]), match["attention"] or DEFAULT_ATTENTION)


def parse_choice(block: int, choice: str) -> Placement | None:
    """The one reader of a per-block choice as trials.csv and the Optuna study store it: ``none``, ``+g``, ``=g``."""
    if choice == NONE:
        return None
    match = _CHOICE.match(choice)
    if match is None:
        raise InvalidInput(f"malformed choice '{choice}' for block {block}: expected none, +g (insert) or =g (replace)")
    return _placement(block, match)


def choice_rank(choice: str, order: tuple[str | None, ...] = (None, INSERT, REPLACE)) -> tuple[int, int]:
    """A sort key of a choice: its op's position in ``order`` (None stands for ``none``), then g."""
    placement = parse_choice(0, choice)
    return (order.index(None), 0) if placement is None else (order.index(placement.op), placement.groups)


def valid_groups(channels: int) -> list[int]:
    """Subspace counts that divide ``channels``."""
    return [g for g in range(1, channels + 1) if channels % g == 0]


def _validate_placement(backbone: str, p: Placement, blocks: dict[int, Block], seen: set[int]) -> None:
    if p.op not in _OP_SYMBOL:
        raise InvalidInput(f"unknown placement op '{p.op}'; valid: {', '.join(_OP_SYMBOL)}")
    if p.block not in blocks:
        raise InvalidInput(f"block {p.block} out of range for {backbone}; valid blocks: 1..{len(blocks)}")
    if p.block in seen:
        raise InvalidInput(f"block {p.block} is placed twice; give each block one placement (+g or =g)")
    seen.add(p.block)
    roles = get_attention(p.attention).roles
    if p.op not in roles:
        raise InvalidInput(f"attention '{p.attention}' cannot {p.op} block {p.block}; its roles: "
                           f"{', '.join(sorted(roles))}")
    block = blocks[p.block]
    if p.op == REPLACE and not block.replaceable:
        replaceable = ", ".join(str(b.index) for b in blocks.values() if b.replaceable)
        raise InvalidInput(f"block {p.block} of {backbone} cannot be replaced (stride {block.stride}, "
                           f"{block.c_in}->{block.c_out} channels); replaceable blocks: {replaceable}")
    if p.groups <= 0 or block.c_out % p.groups:
        valid = ", ".join(map(str, valid_groups(block.c_out)))
        raise InvalidInput(f"g={p.groups} does not divide the {block.c_out} channels at block {p.block} of "
                           f"{backbone}; valid g: {valid}")
