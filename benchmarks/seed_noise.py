"""Signal against seed noise: do architectures differ beyond the noise of their seeds on a task?

    ulsam-search bench seed-noise [TRIALS.csv or RUN_DIR or TABLE.csv ...]

Reads the trials of an ``archs`` study (every architecture trained with the same seeds; e.g.
``ulsam-search ablate benchmarks/signal/cluttered_a.yaml``), or a tabular benchmark's CSV (its final epoch), and
prints, per study:

- per architecture: the mean final top-1 over seeds, its sample std, and the paired difference from the baseline
  with its 95% CI and the Holm-corrected verdict (the confirm stage's statistics);
- the within-architecture seed std (pooled over architectures), the between-architecture std of the means, and the
  part of the latter the noise cannot explain: sqrt(max(0, var(means) - seed var / seeds));
- the seed-to-seed Spearman correlation of final top-1 across architectures, for every pair of seeds, and their
  mean with a 95% CI (Fisher's z with Bonett and Wright's standard error for Spearman, sqrt((1 + r^2/2) / (n - 3));
  one pair's error, so conservative for a mean over several pairs). Goal (issue 17): r >= 0.6 (the digits tabular
  benchmark: -0.04); "met" only when the whole CI lies at or above it, "not met" when it lies below, else "unclear";
- for a tabular benchmark, per seed, the Spearman correlation across architectures of top-1 at each earlier epoch
  with the final top-1: how well a mo-asha rung at that epoch ranks what the full budget would.

Without arguments it reads the committed studies, ``benchmarks/data/signal_*_trials.csv``. Writes nothing.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape  # an interval's "[no CI]" is not a style tag
from rich.table import Table

from ulsam_search.ablation.claims import interval
from ulsam_search.ablation.stats import compare_with_baseline
from ulsam_search._io import read_csv, require_columns
from ulsam_search.errors import InvalidInput, OneLineParser
from ulsam_search.search.backends.table import check_table

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "benchmarks" / "data"
GOAL = 0.6


def read_study(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The COMPLETE trials (arch, seed, top1) of a study's trials.csv, or of a run directory's, or of a tabular
    benchmark (``bench build-table``: one row per epoch, no status) at the epoch every (arch, seed) reached; and that
    benchmark's epochs up to there (None for a study)."""
    path = path / "trials.csv" if path.is_dir() else path
    if not path.is_file():
        raise InvalidInput(f"{path} does not exist: give a study's trials.csv, its run directory or a tabular "
                           "benchmark's CSV")
    table = read_csv(path, f"{path}: not a trials table or a tabular benchmark", dtype={"arch": str, "status": str})
    epochs = None
    if "status" not in table.columns and "epoch" in table.columns:
        benchmark = check_table(table, path)  # its checks: columns, values, one row per (arch, seed, epoch)
        epochs = benchmark.frame[benchmark.frame["epoch"] <= benchmark.epochs]
        table = epochs[epochs["epoch"] == benchmark.epochs].assign(status="COMPLETE")
    require_columns(table, ("arch", "seed", "top1", "top5", "status"), f"{path}: not a trials table")
    trials = table[table["status"] == "COMPLETE"][["arch", "seed", "top1", "top5"]]
    if trials.empty:
        raise InvalidInput(f"{path}: no COMPLETE trial, so nothing to compare")
    return trials.drop_duplicates(["arch", "seed"]), epochs


def rung_fidelity(epochs: pd.DataFrame) -> dict[int, tuple[int, dict[int, float]]]:
    """Seed -> (architectures, {earlier epoch: the Spearman correlation across those architectures of top-1 there
    with the final top-1}): what a rung at that epoch ranks by, against what it stands in for. NaN with fewer than
    3 architectures or where they all tie."""
    from scipy import stats

    fidelity = {}
    for seed, runs in epochs.groupby("seed"):
        wide = runs.pivot(index="arch", columns="epoch", values="top1")
        final = wide[wide.columns[-1]]
        fidelity[int(seed)] = (len(wide), {
            int(epoch): float(stats.spearmanr(wide[epoch], final).statistic)
            if len(wide) >= 3 and wide[epoch].nunique() > 1 and final.nunique() > 1 else math.nan
            for epoch in wide.columns[:-1]})
    return fidelity


def noise_figures(trials: pd.DataFrame) -> dict[str, float]:
    """Seed std (pooled), between-architecture std of the means, its part beyond noise, seed-to-seed Spearman."""
    from scipy import stats

    wide = trials.pivot(index="arch", columns="seed", values="top1").dropna()  # architectures with every seed
    seeds = wide.shape[1]
    seed_var = float(wide.var(axis=1, ddof=1).mean()) if seeds > 1 else math.nan
    means = wide.mean(axis=1)
    between_var = float(means.var(ddof=1))
    pairs = [float(stats.spearmanr(wide[a], wide[b]).statistic) for a, b in itertools.combinations(wide.columns, 2)]
    mean = float(np.mean(pairs)) if pairs else math.nan
    return {"archs": len(wide), "seeds": seeds, "seed_std": math.sqrt(seed_var), "between_std": math.sqrt(between_var),
            "signal_std": math.sqrt(max(0.0, between_var - seed_var / seeds)),
            "spearman_mean": mean, "spearman_ci": spearman_interval(mean, len(wide)), "spearman_pairs": pairs}


def spearman_interval(r: float, n: int) -> tuple[float, float]:
    """95% CI of a Spearman correlation over n architectures (Bonett and Wright 2000); NaN below 4 or at |r| = 1,
    where Fisher's z has no finite error."""
    if n < 4 or not abs(r) < 1:
        return math.nan, math.nan
    half = 1.96 * math.sqrt((1 + r * r / 2) / (n - 3))
    return math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)


def goal_verdict(low: float, high: float, archs: int) -> str:
    """Met only when the whole CI clears the goal: a point estimate above it with a wide CI is not a finding."""
    if math.isnan(low):
        return "unclear (too few architectures for a CI)" if archs < 4 else \
            "unclear (no CI: r = ±1, or a seed on which every architecture ties)"
    return "met" if low >= GOAL else "not met" if high < GOAL else "unclear (the CI spans it)"


def _arch_table(name: str, trials: pd.DataFrame, baseline: str, role: str) -> Table:
    compared = compare_with_baseline(trials, baseline, sorted(trials["arch"].unique())).set_index("arch")
    view = Table(title=f"{name}: final top-1 per architecture (mean ± sample std over seeds; Δ paired, 95% CI)")
    for column in ("ARCH", "n", "top-1 %", "Δ top-1", "p (Holm)", "verdict"):
        view.add_column(column, justify="left" if column in ("ARCH", "verdict") else "right")
    for arch, row in compared.iterrows():
        one_seed = row["n"] < 2  # no std, no CI, no test
        delta = "" if arch == baseline else escape(interval(row["d_top1"], row["d_top1_ci_low"], row["d_top1_ci_high"]))
        holm = "" if arch == baseline or pd.isna(row.get("d_top1_p_holm")) else f"{row['d_top1_p_holm']:.3f}"
        view.add_row(arch + (f" ({role})" if arch == baseline else ""), str(int(row["n"])),
                     f"{row['top1_mean']:.2f}" + ("" if one_seed else f" ± {row['top1_std']:.2f}"), delta, holm,
                     "" if arch == baseline else "one seed" if one_seed else str(row["verdict"]))
    return view


def main(argv: list[str]) -> None:
    parser = OneLineParser(prog="ulsam-search bench seed-noise", description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", help="trials.csv files or run directories (default: the committed "
                                                   "studies, benchmarks/data/signal_*_trials.csv)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.studies] or sorted(COMMITTED.glob("signal_*_trials.csv"))
    console = Console(width=160, soft_wrap=True)
    if not paths:
        console.print(f"no studies given and none committed in {COMMITTED} yet")
        return
    for path in paths:
        print_study(console, path)


def print_study(console: Console, path: Path) -> None:
    trials, epochs = read_study(path)
    name = path.name.removeprefix("signal_").removesuffix("_trials.csv").removesuffix(".csv") if path.is_file() \
        else path.name
    baseline = min(trials["arch"], key=lambda arch: (":" in arch, len(arch)))  # the ARCH with no placement
    console.print(_arch_table(name, trials, baseline, "baseline" if ":" not in baseline else "reference: no baseline"))
    figures = noise_figures(trials)
    if figures["seeds"] < 2 or figures["archs"] < 3:
        console.print(f"{name}: {figures['archs']} architectures x {figures['seeds']} seed(s) with every seed: seed "
                      "noise and the seed-to-seed correlation need two seeds and three architectures")
    else:
        pairs, ci = ", ".join(f"{r:+.2f}" for r in figures["spearman_pairs"]), figures["spearman_ci"]
        console.print(f"{name}: {figures['archs']} architectures x {figures['seeds']} seeds; seed std "
                      f"{figures['seed_std']:.2f} points, between-architecture std {figures['between_std']:.2f} "
                      f"(beyond noise {figures['signal_std']:.2f}); seed-to-seed Spearman {pairs} (mean, "
                      f"95% CI: {escape(interval(figures['spearman_mean'], *ci))}); "
                      f"goal r >= {GOAL}: {goal_verdict(*ci, figures['archs'])}")
    if epochs is not None:
        fidelity = rung_fidelity(epochs)
        last = int(epochs["epoch"].max())
        if last == 1:
            console.print(f"{name}: one epoch, so no earlier rung to rank by")
            return
        cells = "; ".join(f"seed {seed} ({archs} architectures): " + ", ".join(
            f"epoch {epoch} " + ("n/a" if math.isnan(r) else f"{r:+.2f}") for epoch, r in by_epoch.items())
            for seed, (archs, by_epoch) in fidelity.items())
        console.print(f"{name}: top-1 at an earlier epoch against the final (epoch {last}) top-1, Spearman across "
                      f"architectures (what a mo-asha rung there ranks by): {cells}")
