"""Ablation statistics: per cell, the mean and 95% CI over seeds and the paired difference from the baseline.

Cells and the baseline train with the same seeds, so a cell is compared with the baseline seed by seed (paired
t-test over the seeds both finished) rather than by two independent means.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..config import SearchConfig
from ..search.records import COMPLETE
from .design import PAPER_RESULTS, Cell, study_cells


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
