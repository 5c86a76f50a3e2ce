"""The search space: per candidate block, the choices ``none``, ``+g`` (insert) and ``=g`` (replace).

``build_space`` checks a config against the backbone's block table (g must divide the block's channels, replace
needs a stride-1 block with c_in = c_out) and errors name the config field. ``SearchSpace.suggest`` is the
define-by-run function Optuna samples: one categorical parameter ``block_<k>`` per block that has a choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from ..models.arch import INSERT, NONE, REPLACE, Architecture, choice_rank, parse_choice, valid_groups
from ..models.backbones import get_backbone
from ..config import SearchConfig
from ..errors import InvalidInput

PARAM_PREFIX = "block_"


def param_name(block: int) -> str:
    """The Optuna parameter and trials.csv column of a candidate block."""
    return f"{PARAM_PREFIX}{block}"


@dataclass(frozen=True)
class SearchSpace:
    backbone: str
    width: float
    choices: tuple[tuple[int, tuple[str, ...]], ...]  # (block, allowed choices), blocks ascending

    @property
    def size(self) -> int:
        """How many architectures the space holds."""
        return math.prod(len(options) for _, options in self.choices)

    @property
    def blocks(self) -> tuple[int, ...]:
        return tuple(block for block, _ in self.choices)

    def architecture(self, chosen: Mapping[int, str]) -> Architecture:
        """The architecture for ``block -> choice``; blocks with a single choice take it."""
        placements = []
        for block, options in self.choices:
            choice = chosen.get(block, options[0]) if len(options) > 1 else options[0]
            placement = parse_choice(block, choice)
            if placement is not None:
                placements.append(placement)
        return Architecture(self.backbone, self.width, tuple(placements))

    def suggest(self, trial) -> Architecture:
        """Define-by-run: sample a choice for every block that has more than one."""
        chosen = {block: trial.suggest_categorical(param_name(block), list(options))
                  for block, options in self.choices if len(options) > 1}
        return self.architecture(chosen)

    def from_params(self, params: Mapping[str, str]) -> Architecture:
        return self.architecture({block: params[param_name(block)] for block in self.blocks
                                  if param_name(block) in params})

    def baseline_params(self) -> dict[str, str] | None:
        """The parameters of the backbone without ULSAM, or None where a block must take ULSAM."""
        if any(NONE not in options for _, options in self.choices):
            return None
        return {param_name(block): NONE for block, options in self.choices if len(options) > 1}

    def seed_of(self, params: Mapping[str, str]) -> None:
        """A search trains every architecture with the config's seed (an ablation's ``CellSpace`` varies it)."""
        return None

    def grid(self) -> dict[str, list[str]]:
        """The search space as ``GridSampler`` takes it."""
        return {param_name(block): list(options) for block, options in self.choices if len(options) > 1}

    def cheapest(self) -> Architecture:
        """The architecture with the fewest MACs and params: replace wherever allowed, else no ULSAM.

        A placement's cost does not depend on the others (each changes one block), so choosing per block is exact.
        Among g, the smallest is cheapest under the ``full`` convention (ULSAM's BatchNorms, softmax and
        parameters grow with g) and all are equal under ``paper``: the smallest g is cheapest under both.
        """
        def rank(choice: str) -> tuple[int, int]:
            return choice_rank(choice, order=(REPLACE, None, INSERT))

        return self.architecture({block: min(options, key=rank) for block, options in self.choices})


def build_space(config: SearchConfig) -> SearchSpace:
    """The space a config describes, validated against the backbone's block table."""
    try:
        get_backbone(config.backbone)
    except InvalidInput as error:
        raise InvalidInput(f"backbone: {error}") from None
    try:
        base = Architecture(config.backbone, config.width)
    except InvalidInput as error:
        raise InvalidInput(f"width: {error}") from None
    table = {block.index: block for block in base.blocks()}
    space = config.space
    candidates = sorted(table) if space.blocks == "all" else sorted(set(space.blocks))
    for block in candidates:
        if block not in table:
            raise InvalidInput(f"space.blocks: block {block} out of range for {config.backbone}; valid blocks: "
                               f"1..{len(table)}")
    for block in space.per_block:
        if block not in candidates:
            raise InvalidInput(f"space.per_block.{block}: block {block} is not a candidate; add it to space.blocks")
    choices, default_channels = [], []
    for block_index in candidates:
        block = table[block_index]
        override = space.per_block.get(block_index)
        ops = override.ops if override and override.ops else space.ops
        groups = override.groups if override and override.groups else space.groups
        fitting = [g for g in groups if block.c_out % g == 0]
        where = f"space.per_block.{block_index}" if override else "space"
        if override and override.groups and not fitting and set(ops) != {NONE}:
            raise InvalidInput(f"{where}.groups: none of {', '.join(map(str, groups))} divides the {block.c_out} "
                               f"channels of block {block_index}; valid g: {', '.join(map(str, valid_groups(block.c_out)))}")
        if override and override.ops and "replace" in override.ops and not block.replaceable:
            raise InvalidInput(f"{where}.ops: block {block_index} cannot be replaced (stride {block.stride}, "
                               f"{block.c_in}->{block.c_out} channels); use none or insert")
        if not (override and override.groups) and ("insert" in ops or "replace" in ops and block.replaceable):
            default_channels.append(block.c_out)
        options = [NONE] if NONE in ops else []
        options += [f"+{g}" for g in fitting if "insert" in ops]
        options += [f"={g}" for g in fitting if "replace" in ops and block.replaceable]
        if options:
            choices.append((block_index, tuple(options)))
    unused = [g for g in space.groups if default_channels and all(c % g for c in default_channels)]
    if unused:
        raise InvalidInput(f"space.groups: g={unused[0]} divides the channels of no candidate block "
                           f"({', '.join(map(str, sorted(set(default_channels))))}); remove it")
    result = SearchSpace(config.backbone, config.width, tuple(choices))
    if result.size <= 1:
        raise InvalidInput("space: nothing to search: every candidate block has a single choice; allow more ops "
                           "or blocks")
    return result
