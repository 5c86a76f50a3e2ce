"""Architecture: a backbone, a width and ULSAM placements; the ARCH string; building the model.

ARCH grammar (the identity of an architecture in every table, cache and report)::

    BACKBONE[@WIDTH][:PLACEMENT,...]     PLACEMENT = <block>+<g> (insert after block) | <block>=<g> (replace block)

The canonical form sorts placements by block and omits ``@1.0``; ``Architecture.parse(str(a)) == a``.
An ``Architecture`` is validated against the backbone's block table when it is made, so every instance is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from .attention import create_attention
from .backbones import Block, block_table, get_backbone
from ..errors import InvalidInput
from .attention.ulsam import convert_official_state_dict

INSERT, REPLACE = "insert", "replace"
_OP_SYMBOL = {INSERT: "+", REPLACE: "="}
_ARCH = re.compile(r"^(?P<backbone>[A-Za-z0-9_]+)(?:@(?P<width>[^:]*))?(?::(?P<placements>.*))?$")
_PLACEMENT = re.compile(r"^(?P<block>[0-9]+)(?P<op>[+=])(?P<groups>[0-9]+)$")  # ASCII digits only
_PLACEMENT_HELP = "expected <block>+<g> (insert ULSAM after the block) or <block>=<g> (replace the block by ULSAM)"


@dataclass(frozen=True, order=True)
class Placement:
    """ULSAM with ``groups`` subspaces inserted after, or replacing, block ``block``."""

    block: int
    op: str
    groups: int

    def __str__(self) -> str:
        return f"{self.block}{_OP_SYMBOL[self.op]}{self.groups}"

    @property
    def choice(self) -> str:
        """The per-block choice as results tables write it: ``+g`` or ``=g``."""
        return f"{_OP_SYMBOL[self.op]}{self.groups}"


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
                op = INSERT if placement["op"] == "+" else REPLACE
                placements.append(Placement(int(placement["block"]), op, int(placement["groups"])))
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
        """The same backbone and width without ULSAM."""
        return Architecture(self.backbone, self.width)

    def choices(self) -> dict[int, str]:
        """Block index -> ``none``, ``+g`` or ``=g`` for every block of the backbone."""
        chosen = {p.block: p.choice for p in self.placements}
        return {b.index: chosen.get(b.index, NONE) for b in self.blocks()}


NONE = "none"  # the choice of a block without ULSAM
_CHOICE = re.compile(r"^(?P<op>[+=])(?P<groups>[0-9]+)$")


def parse_choice(block: int, choice: str) -> Placement | None:
    """The one reader of a per-block choice as trials.csv and the Optuna study store it: ``none``, ``+g``, ``=g``."""
    if choice == NONE:
        return None
    match = _CHOICE.match(choice)
    if match is None:
        raise InvalidInput(f"malformed choice '{choice}' for block {block}: expected none, +g (insert) or =g (replace)")
    return Placement(block, INSERT if match["op"] == "+" else REPLACE, int(match["groups"]))


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
    block = blocks[p.block]
    if p.op == REPLACE and not block.replaceable:
        replaceable = ", ".join(str(b.index) for b in blocks.values() if b.replaceable)
        raise InvalidInput(f"block {p.block} of {backbone} cannot be replaced (stride {block.stride}, "
                           f"{block.c_in}->{block.c_out} channels); replaceable blocks: {replaceable}")
    if p.groups <= 0 or block.c_out % p.groups:
        valid = ", ".join(map(str, valid_groups(block.c_out)))
        raise InvalidInput(f"g={p.groups} does not divide the {block.c_out} channels at block {p.block} of "
                           f"{backbone}; valid g: {valid}")


def build_model(arch: Architecture | str, num_classes: int = 1000, small_input: bool = False,
                dropout: float = 0.2, **ulsam_kwargs) -> nn.Module:
    """The backbone with ULSAM placed as ``arch`` says; ``ulsam_kwargs`` go to every ULSAM (e.g. bn_momentum).

    Insert fills block k's ``attn`` slot; replace puts ULSAM at ``features[k]``. Other blocks keep their indices and
    parameter names, so pretrained backbone weights load into them (``load_matching_state_dict``).
    """
    if isinstance(arch, str):
        arch = Architecture.parse(arch)
    if num_classes <= 0:
        raise InvalidInput(f"number of classes must be a positive integer, got {num_classes}")
    model = get_backbone(arch.backbone).build(arch.width, num_classes, small_input, dropout)
    blocks = {b.index: b for b in arch.blocks(small_input)}
    for p in arch.placements:
        attention = create_attention("ulsam", blocks[p.block].c_out, groups=p.groups, **ulsam_kwargs)
        if p.op == INSERT:
            model.features[p.block].attn = attention
        else:
            model.features[p.block] = attention
    model.arch = arch
    return model


@dataclass(frozen=True)
class LoadReport:
    """What ``load_matching_state_dict`` did: keys loaded, source keys skipped, model keys left as initialised."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    missing: tuple[str, ...]

    def summary(self) -> str:
        return f"loaded {len(self.loaded)} tensors, skipped {len(self.skipped)}, new {len(self.missing)}"


def load_matching_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> LoadReport:
    """Load every tensor whose name and shape match (e.g. torchvision weights into the surviving blocks).

    Official ULSAM keys (``subspaces.{i}.*``) are converted first.
    """
    state_dict = convert_official_state_dict(state_dict)
    own = model.state_dict()
    matching = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return LoadReport(
        loaded=tuple(matching),
        skipped=tuple(k for k in state_dict if k not in matching),
        missing=tuple(k for k in own if k not in matching),
    )
