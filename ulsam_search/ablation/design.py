"""Ablation design: controlled studies of placement and subspace count, run by the search runner; what it trains.

A study (the ``study`` key of a config, run by ``ulsam-search ablate``) is a table of cells, rows x g:

    placement   a row per (block, op): ULSAM at that one block at a fixed g
    grid        the same rows, one column per g
    subspaces   a row per given ARCH or paper variant (``paper-mv2-c``), its g set to each column in turn
    archs       the given ARCHs as they are, one cell each (the confirm stage's study)

plus the baseline (no ULSAM). Every cell trains once per seed, with the same seeds in every cell, so a cell and
the baseline are compared seed by seed (a paired t-test, Holm-corrected across the cells). The runner sees the cells through ``CellSpace``: a grid
over (ARCH, seed) that Optuna's ``GridSampler`` walks, so resume, duplicates and failures work as in a search.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import STUDIES, SearchConfig
from ..errors import InvalidInput
from ..models.arch import REPLACE, Architecture, Placement
from ..models.variants import VARIANTS, resolve_arch

# The paper's single-run numbers (docs/paper.md), top-1 / top-5 (None where only top-1 was given):
# (table, canonical ARCH) -> (top1, top5).
PAPER_RESULTS: dict[tuple[str, str], tuple[float, float | None]] = {
    ("imagenet", "mobilenet_v1"): (70.65, 89.76),
    **{("imagenet", f"mobilenet_v1:11={g}"): r for g, r in
       zip((1, 2, 4, 8, 16), ((69.92, 89.25), (70.14, 89.67), (70.43, 89.92), (70.29, 89.96), (70.04, 89.98)))},
    ("imagenet", "mobilenet_v1@0.75"): (67.48, 88.00),
    ("imagenet", "mobilenet_v1@0.75:11=1"): (67.98, 88.06), ("imagenet", "mobilenet_v1@0.75:11=4"): (67.81, 88.43),
    ("imagenet", "mobilenet_v1@0.5"): (63.22, 84.63),
    ("imagenet", "mobilenet_v1@0.5:11=1"): (63.42, 84.70), ("imagenet", "mobilenet_v1@0.5:11=4"): (63.25, 84.81),
    ("imagenet", "mobilenet_v2"): (71.25, 90.19),
    ("imagenet", "mobilenet_v2:12=4,15=4"): (71.52, 90.25), ("imagenet", "mobilenet_v2:15=4,16=4"): (70.74, 89.15),
    ("imagenet", "mobilenet_v2:12=4,13=4,15=4,16=4"): (69.72, 87.79),
    **{("imagenet", f"mobilenet_v2:16+{g}"): r for g, r in
       zip((1, 2, 4, 8, 16), ((71.31, 90.28), (71.39, 90.34), (71.64, 90.27), (71.35, 90.36), (71.42, 90.43)))},
    **{(table, arch): (top1, None) for table, arch, top1 in (
        ("food101", "mobilenet_v1", 81.31), ("birds", "mobilenet_v1", 62.88), ("dogs", "mobilenet_v1", 62.20),
        ("birds", "mobilenet_v2", 62.94))},
    **{(table, f"mobilenet_v1:11={g}"): (top1, None) for table, values in (
        ("food101", (81.28, 81.30, 81.19, 81.62)), ("birds", (62.46, 63.52, 64.44, 63.47)),
        ("dogs", (62.73, 63.06, 63.30, 62.75))) for g, top1 in zip((1, 4, 8, 16), values)},
    **{("birds", VARIANTS[f"paper-mv2-{v}"].template.format(g=g)): (top1, None) for v, values in (
        ("a", (63.01, 63.05, 63.11, 64.32)), ("b", (63.98, 64.44, 65.03, 63.47)), ("e", (63.43, 63.47, 63.10, 62.21)),
        ("d", (64.19, 64.57, 64.61, 65.03)), ("c", (63.35, 64.70, 65.41, 63.31)), ("f", (64.11, 64.15, 63.22, 63.98)))
       for g, top1 in zip((1, 4, 8, 16), values)},
}


@dataclass(frozen=True)
class Row:
    """One row of a study: a label and the placements, with g filled in per column."""

    label: str
    placements: tuple[Placement, ...]

    def arch(self, backbone: str, width: float, groups: int) -> Architecture:
        return Architecture(backbone, width, tuple(Placement(p.block, p.op, groups) for p in self.placements))


@dataclass(frozen=True)
class Cell:
    """One ARCH of a study: a row at one g (the baseline is the cell with g 0)."""

    row: str
    groups: int
    arch: str  # canonical


def _open_label(placement: Placement) -> str:
    """``12+g``: a placement with its g left open, as a subspaces row's label (the row's g varies by column)."""
    return f"{placement.block}{placement.choice.removesuffix(str(placement.groups))}g"


def study_rows(config: SearchConfig) -> list[Row]:
    """The rows a study describes, checked against the backbone (errors name the ``study`` field)."""
    study = config.study
    base = Architecture(config.backbone, config.width)
    table = {block.index: block for block in base.blocks()}
    if study.kind == "subspaces":
        rows = []
        for i, text in enumerate(study.archs):
            try:
                arch = resolve_arch(text)
            except InvalidInput as error:
                raise InvalidInput(f"study.archs.{i}: {error}") from None
            if arch.backbone != config.backbone or not arch.placements:
                raise InvalidInput(f"study.archs.{i}: {text} must place ULSAM on {config.backbone} (the config's "
                                   f"backbone)")
            label = text.split("/")[0] if text.startswith("paper-") else ",".join(
                _open_label(p) for p in arch.placements)
            rows.append(Row(label, arch.placements))
        return rows
    explicit = study.blocks != "all"
    blocks = study.blocks if explicit else sorted(table)
    rows = []
    for block in blocks:
        if block not in table:
            raise InvalidInput(f"study.blocks: block {block} out of range for {config.backbone}; valid blocks: "
                               f"1..{len(table)}")
        for op in study.ops:
            if op == REPLACE and not table[block].replaceable:
                if explicit and study.ops == (REPLACE,):
                    raise InvalidInput(f"study.blocks: block {block} cannot be replaced (stride "
                                       f"{table[block].stride}, {table[block].c_in}->{table[block].c_out} channels)")
                continue
            rows.append(Row(f"block {block} {op}", (Placement(block, op, 1),)))
    return rows


def study_cells(config: SearchConfig) -> tuple[str, list[Cell]]:
    """(the baseline ARCH, every cell whose g divides its blocks' channels); a row with no valid g is refused. An
    ``archs`` study's cells are its ARCHs as given (no g column)."""
    baseline = str(Architecture(config.backbone, config.width))
    if config.study.kind == "archs":
        return baseline, [Cell(arch, 0, arch) for arch in dict.fromkeys(map(str, _given_archs(config)))
                          if arch != baseline]
    cells = []
    for row in study_rows(config):
        fitting = []
        for groups in config.study.groups:
            try:
                fitting.append(Cell(row.label, groups, str(row.arch(config.backbone, config.width, groups))))
            except InvalidInput:
                continue  # g does not divide this row's channels: the cell stays empty
        if not fitting:
            raise InvalidInput(f"study.groups: none of {', '.join(map(str, config.study.groups))} fits {row.label}")
        cells += fitting
    return baseline, cells


def _given_archs(config: SearchConfig) -> list[Architecture]:
    """A study's ``archs``, resolved and on the config's backbone and width (errors name the entry)."""
    archs = []
    for i, text in enumerate(config.study.archs):
        try:
            arch = resolve_arch(text)
        except InvalidInput as error:
            raise InvalidInput(f"study.archs.{i}: {error}") from None
        if (arch.backbone, arch.width) != (config.backbone, config.width):
            raise InvalidInput(f"study.archs.{i}: {text} is not on {config.backbone}@{config.width:g} (the "
                               f"config's backbone and width)")
        archs.append(arch)
    return archs


@dataclass(frozen=True)
class CellSpace:
    """The runner's view of a study: one categorical over the cells' ARCHs and one over the seeds."""

    backbone: str
    width: float
    archs: tuple[str, ...]  # the baseline first
    seeds: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.archs) * len(self.seeds)

    @property
    def blocks(self) -> tuple[int, ...]:
        return tuple(sorted({p.block for a in self.archs for p in Architecture.parse(a).placements}))

    def suggest(self, trial) -> Architecture:
        trial.suggest_categorical("seed", list(self.seeds))
        return Architecture.parse(trial.suggest_categorical("arch", list(self.archs)))

    def from_params(self, params) -> Architecture:
        return Architecture.parse(params["arch"])

    def seed_of(self, params) -> int:
        return int(params["seed"])

    def grid(self) -> dict[str, list]:
        return {"arch": list(self.archs), "seed": list(self.seeds)}

    def baseline_params(self) -> None:
        return None  # the baseline is a cell

    def cheapest(self) -> Architecture:
        return Architecture.parse(self.archs[0])


def build_cell_space(config: SearchConfig) -> CellSpace:
    """The study's cells (the baseline first, each ARCH once) with its seeds, as the runner walks them."""
    baseline, cells = study_cells(config)
    archs = tuple(dict.fromkeys([baseline, *(c.arch for c in cells)]))
    return CellSpace(config.backbone, config.width, archs, config.study.seed_list)


def ablation_config(config: SearchConfig) -> SearchConfig:
    """The config the runner takes for a study: every (cell, seed) once, walked by the grid sampler."""
    if config.study is None:
        raise InvalidInput(f"config {config.name}: study: missing; an ablation names its study (kind: "
                           f"{', '.join(STUDIES)})")
    space = build_cell_space(config)
    # the grid walks the cells: another sampler's options (an NSGA-II population) do not apply to it
    return config.with_overrides(n_trials=space.size, sampler={**config.sampler.model_dump(), "name": "grid",
                                                               "options": {}},
                                 scheduler={"name": "fifo"})
