"""Statistics over seeds: per ARCH the mean and 95% CI, the paired difference from the baseline, Holm's correction
across the comparisons of one table, and a verdict per comparison.

ARCHs and the baseline train with the same seeds, so an ARCH is compared with the baseline seed by seed (a paired
t-test over the seeds both finished) rather than by two independent means. A table compares several ARCHs with one
baseline, so the p-values are corrected for multiple comparisons (Holm's step-down method, which controls the
family-wise error rate at ``ALPHA`` for any dependence between the tests). The verdict is on top-1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..config import SearchConfig
from ..search.records import COMPLETE
from .design import PAPER_RESULTS, Cell, study_cells

ALPHA = 0.05
BETTER, WORSE, INDISTINGUISHABLE = "better", "worse", "not distinguishable"
METRICS = ("top1", "top5")


def mean_ci(values: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, sample std, 95% CI low, high) with Student's t; std and CI are NaN for a single value."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def paired_difference(runs: pd.Series, base: pd.Series) -> dict[str, float]:
    """``runs - base`` over the seeds (the index) both have: mean, 95% CI, paired t-test p-value and the count;
    p is NaN below two seeds or when every difference is the same (no spread to test against)."""
    from scipy import stats

    seeds = runs.index.intersection(base.index)
    diffs = runs.loc[seeds].to_numpy(float) - base.loc[seeds].to_numpy(float)
    mean, _, low, high = mean_ci(diffs)
    p = float(stats.ttest_rel(runs.loc[seeds], base.loc[seeds]).pvalue) \
        if len(seeds) > 1 and np.any(diffs != diffs[0]) else math.nan
    return {"mean": mean, "ci_low": low, "ci_high": high, "p": p, "n": len(seeds)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the given order; NaN (not tested) stays NaN and does not count as a test."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(difference: float, p_adjusted: float) -> str:
    """Better or worse than the baseline at 95% after correction, else not distinguishable from it."""
    if math.isnan(p_adjusted) or p_adjusted >= ALPHA:
        return INDISTINGUISHABLE
    return BETTER if difference > 0 else WORSE


def compare_with_baseline(done: pd.DataFrame, baseline: str, archs: Sequence[str]) -> pd.DataFrame:
    """One row per ARCH of ``archs`` (the baseline's row first, ``done`` holding one row per finished ARCH and seed):
    n, mean/std/95% CI of top-1 and top-5, the paired difference from the baseline (mean, CI, p, Holm-adjusted p
    across ``archs``) and the top-1 verdict."""
    by_arch = {arch: group.set_index("seed") for arch, group in done.groupby("arch")}
    base = by_arch.get(baseline)
    rows = []
    for arch in dict.fromkeys([baseline, *archs]):
        runs = by_arch.get(arch)
        row = {"arch": arch, "n": 0 if runs is None else len(runs)}
        for metric in METRICS:
            values = runs[metric].to_numpy(dtype=float) if runs is not None else np.array([])
            row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = \
                mean_ci(values)
            if runs is not None and base is not None and arch != baseline:
                d = paired_difference(runs[metric], base[metric])
                row |= {f"d_{metric}": d["mean"], f"d_{metric}_ci_low": d["ci_low"],
                        f"d_{metric}_ci_high": d["ci_high"], f"d_{metric}_p": d["p"], "paired_seeds": d["n"]}
        rows.append(row)
    frame = pd.DataFrame(rows)
    compared = frame.index[1:]
    frame.loc[compared, "d_top1_p_holm"] = holm(frame.loc[compared].get("d_top1_p", pd.Series(
        math.nan, index=compared)).tolist())
    frame.loc[compared, "verdict"] = [verdict(d, p) for d, p in zip(
        frame.loc[compared].get("d_top1", pd.Series(math.nan, index=compared)), frame.loc[compared, "d_top1_p_holm"])]
    return frame


def cell_statistics(config: SearchConfig, table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (baseline first): n, mean/std/95% CI of top-1 and top-5, the paired difference from the
    baseline over the seeds both have (mean, 95% CI, t-test p-value, Holm-adjusted across the cells, verdict),
    MACs, params and the paper's number."""
    baseline, cells = study_cells(config)
    compared = compare_with_baseline(table[table["status"] == COMPLETE], baseline, [c.arch for c in cells])
    by_arch = compared.set_index("arch")
    rows = []
    for cell in [Cell("baseline", 0, baseline), *cells]:
        found = by_arch.loc[cell.arch].to_dict()
        row = {"row": cell.row, "groups": cell.groups or None, "arch": cell.arch, "n": int(found.pop("n"))}
        cost = table.loc[table["arch"] == cell.arch, ["macs", "params"]]
        row["macs"], row["params"] = (cost.iloc[0].tolist() if len(cost) else (math.nan, math.nan))
        row |= found
        paper = PAPER_RESULTS.get((config.study.paper_reference, cell.arch)) if config.study.paper_reference else None
        row["paper_top1"], row["paper_top5"] = paper if paper else (None, None)
        rows.append(row)
    return pd.DataFrame(rows)
