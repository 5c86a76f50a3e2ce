"""Ablations: controlled studies of placement and subspace count, run by the search runner, with statistics.

A study (the ``study`` key of a config, run by ``ulsam-search ablate``) is a table of cells, rows x g:

    placement   a row per (block, op): ULSAM at that one block at a fixed g
    grid        the same rows, one column per g
    subspaces   a row per given ARCH or paper variant (``paper-mv2-c``), its g set to each column in turn

plus the baseline (no ULSAM). Every cell trains once per seed, with the same seeds in every cell, so a cell and
the baseline are compared seed by seed (a paired t-test). The runner sees the cells through ``CellSpace``: a grid
over (ARCH, seed) that Optuna's ``GridSampler`` walks, so resume, duplicates and failures work as in a search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..models.arch import INSERT, REPLACE, Architecture, Placement
from ..config import SearchConfig
from ..errors import InvalidInput
from ..report import markdown_table
from ..search.records import COMPLETE
from ..search.space import param_name
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
    row: str
    groups: int
    arch: str  # canonical


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
                f"{p.block}{'+' if p.op == INSERT else '='}g" for p in arch.placements)
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
    """(the baseline ARCH, every cell whose g divides its blocks' channels); a row with no valid g is refused."""
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
    return str(Architecture(config.backbone, config.width)), cells


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
    baseline, cells = study_cells(config)
    archs = tuple(dict.fromkeys([baseline, *(c.arch for c in cells)]))
    return CellSpace(config.backbone, config.width, archs, config.study.seed_list)


def ablation_config(config: SearchConfig) -> SearchConfig:
    """The config the runner takes for a study: every (cell, seed) once, walked by the grid sampler."""
    if config.study is None:
        raise InvalidInput(f"config {config.name}: study: missing; an ablation names its study (kind: placement, "
                           f"subspaces or grid)")
    space = build_cell_space(config)
    return config.with_overrides(n_trials=space.size, sampler={**config.sampler.model_dump(), "name": "grid"},
                                 scheduler={"name": "fifo"})


# --- statistics ----------------------------------------------------------------------------------------------

def _mean_ci(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, sample std, 95% CI low, high) with Student's t; std and CI are NaN for a single value."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def cell_statistics(config: SearchConfig, table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (baseline first): n, mean/std/95% CI of top-1 and top-5, the paired difference from the
    baseline over the seeds both have (mean, 95% CI, t-test p-value), MACs, params and the paper's number."""
    from scipy import stats

    baseline, cells = study_cells(config)
    done = table[table["status"] == COMPLETE]
    by_arch = {arch: group.set_index("seed") for arch, group in done.groupby("arch")}
    base = by_arch.get(baseline)
    rows = []
    for cell in [Cell("baseline", 0, baseline), *cells]:
        runs = by_arch.get(cell.arch)
        row = {"row": cell.row, "groups": cell.groups or None, "arch": cell.arch,
               "n": 0 if runs is None else len(runs)}
        cost = table.loc[table["arch"] == cell.arch, ["macs", "params"]]
        row["macs"], row["params"] = (cost.iloc[0].tolist() if len(cost) else (math.nan, math.nan))
        for metric in ("top1", "top5"):
            values = runs[metric].to_numpy(dtype=float) if runs is not None else np.array([])
            row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = \
                _mean_ci(values)
            if runs is not None and base is not None and cell.arch != baseline:
                seeds = runs.index.intersection(base.index)
                diffs = runs.loc[seeds, metric].to_numpy(float) - base.loc[seeds, metric].to_numpy(float)
                mean, _, low, high = _mean_ci(diffs)
                p = float(stats.ttest_rel(runs.loc[seeds, metric], base.loc[seeds, metric]).pvalue) \
                    if len(seeds) > 1 and np.any(diffs != diffs[0]) else math.nan
                row |= {f"d_{metric}": mean, f"d_{metric}_ci_low": low, f"d_{metric}_ci_high": high,
                        f"d_{metric}_p": p, "paired_seeds": len(seeds)}
        paper = PAPER_RESULTS.get((config.study.paper_reference, cell.arch)) if config.study.paper_reference else None
        row["paper_top1"], row["paper_top5"] = paper if paper else (None, None)
        rows.append(row)
    return pd.DataFrame(rows)


# --- report --------------------------------------------------------------------------------------------------

def _cell_text(row: pd.Series, metric: str) -> str:
    if row["n"] == 0:
        return "not run yet"
    text = f"{row[f'{metric}_mean']:.2f}"
    if not math.isnan(row[f"{metric}_std"]):
        text += f" ± {row[f'{metric}_std']:.2f} [{row[f'{metric}_ci_low']:.2f}, {row[f'{metric}_ci_high']:.2f}]"
    if f"d_{metric}" in row and not pd.isna(row.get(f"d_{metric}")):
        p = row[f"d_{metric}_p"]
        text += f" Δ {row[f'd_{metric}']:+.2f}" + ("" if pd.isna(p) else f" (p={p:.3f})")
    paper = row[f"paper_{metric}"]
    if paper is not None and not pd.isna(paper):
        text += f" · paper {paper:.2f}"
    return text


def _span(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def ablation_tables(stats: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Paper-style tables, rows x g, for top-1 and top-5, with MACs and params per row; the baseline's first row
    repeats its one value under every g, to read down each column."""
    groups = sorted(int(g) for g in stats["groups"].dropna().unique())
    tables = {}
    for metric in ("top1", "top5"):
        cells: dict[str, dict[str, str]] = {}
        for _, row in stats.iterrows():
            text = _cell_text(row, metric)
            columns = groups if pd.isna(row["groups"]) else [int(row["groups"])]
            cells.setdefault(row["row"], {}).update({f"g={g}": text for g in columns})
        table = pd.DataFrame.from_dict(cells, orient="index", columns=[f"g={g}" for g in groups]).fillna("")
        costs = stats.groupby("row", sort=False).agg(MACs=("macs", _span), params=("params", _span))
        tables[metric] = table.join(costs).rename_axis("row")
    return tables


def ablation_markdown(config: SearchConfig, stats: pd.DataFrame) -> str:
    study = config.study
    seeds = ", ".join(map(str, study.seed_list))
    lines = [f"# Ablation {config.name}: {study.kind} study", "",
             f"{len(stats) - 1} cells and the baseline, each trained with seeds {seeds} on {config.dataset.name} "
             f"for {config.training.epochs} epochs. Cells: mean ± sample std [95% CI, Student's t]; Δ is the "
             f"mean paired difference from the baseline over the seeds both finished, with the paired t-test's "
             f"p-value." + (f" `paper` is the paper's single run on {study.paper_reference} (docs/paper.md)."
                            if study.paper_reference else ""), ""]
    for metric, table in ablation_tables(stats).items():
        lines += [f"## {'Top-1' if metric == 'top1' else 'Top-5'} accuracy (%)", "",
                  markdown_table(["", *table.columns], [[row, *cells] for row, cells in
                                                         zip(table.index, table.astype(str).values.tolist())]), ""]
    return "\n".join(lines)
