"""Samplers and early stopping compared on the tabular benchmark, a whole search in seconds.

    ulsam-search bench samplers [--table benchmarks/data/tabular_digits.csv] [--samplers nsga2 tpe gp random]
                                [--seeds 3] [--table-seeds 0 1] [--grace-periods 1 2] [--budgets 5 10 25 50 100]
                                [--quick] [--out benchmarks/data]

Every search goes through the real runner: Optuna proposes, Ray Tune runs the trials, and the trials are answered
epoch by epoch from the table (``backend: table``) instead of being trained. The config is
``search_spaces/tabular_digits_search.yaml`` with the sampler, its seed and the budget changed, one trial at a time
(``max_concurrent: 1``, so a search depends on its seeds only). NSGA-II runs with a population of 10, the others
with Optuna's defaults. Every sampler seed runs on every seed of the table (the training seed answering the
trials), so a figure is a mean over ``seeds x table seeds`` searches and includes the training noise.

Hypervolume: the search's front over (top-1, MACs) after its first b trials, b a percentage of the space,
divided by the hypervolume of the exhaustive front (every architecture of the table, that table seed); both use
the report's reference point (the baseline's MACs, chance-level accuracy). Goals: NSGA-II or TPE reaches >= 0.95
within 25% of the space, and beats random at every budget.

Early stopping: the NSGA-II searches again with ``mo-asha`` at each grace period (its first rung, in epochs).
Compute is the epochs trained (a pruned trial costs the epochs it ran, a duplicate or infeasible one nothing); the
saving at a hypervolume level is the epochs FIFO needed to reach it over the epochs mo-asha needed (medians over
searches). Goal: >= 2x at >= 0.98. With a budget of E epochs a trial stopped at the first rung still costs
``grace`` epochs, so no scheduler can save more than ``E / grace``.

Writes ``samplers.csv`` (every search's hypervolume after every trial, with its compute) and ``samplers.png``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from rich.console import Console
from rich.table import Table

from ulsam_search.config import SearchConfig, load_search_config
from ulsam_search.report import RunFacts, hypervolume, hypervolume_history, normalised_losses, reference_point
from ulsam_search.results import pareto_set
from ulsam_search.search import prepare_run, run_search
from ulsam_search.tabular import read_table

ROOT = Path(__file__).resolve().parent.parent
LEVELS = (0.9, 0.95, 0.98)


def search_config(base: SearchConfig, table: Path, sampler: str, seed: int, table_seed: int, n_trials: int,
                  grace_period: int | None, name: str) -> SearchConfig:
    """``base`` answered from ``table``'s ``table_seed``; FIFO when ``grace_period`` is None, else mo-asha."""
    data = base.model_dump()
    data.update(name=name, n_trials=n_trials, max_concurrent=1, backend={"name": "table", "table": str(table)},
                sampler={"name": sampler, "seed": seed, "options": {"population_size": 10} if sampler == "nsga2" else {}})
    data["training"]["seed"] = table_seed
    data["scheduler"]["name"] = "fifo" if grace_period is None else "mo-asha"
    data["scheduler"]["grace_period"] = grace_period or data["scheduler"]["grace_period"]
    return SearchConfig.model_validate(data)


def exhaustive_hypervolume(table_path: Path, config: SearchConfig, reference: dict[str, float]) -> float:
    """Hypervolume of the front of every architecture in the table (the search's seed, its final epoch)."""
    frame = read_table(table_path).frame
    final = frame[(frame["seed"] == config.training.seed) & (frame["epoch"] == config.training.epochs)]
    everything = final.assign(status="COMPLETE", feasible=True)
    return hypervolume(normalised_losses(pareto_set(everything, config.objectives), reference))


def curve(trials: pd.DataFrame, config: SearchConfig, reference: dict[str, float], best: float) -> pd.DataFrame:
    """Per trial number: the hypervolume fraction of the trials so far and the epochs trained so far."""
    trials = trials.sort_values("number")
    trained = trials["duplicate_of"].isna() & (trials["status"] != "INFEASIBLE")
    epochs = trials["epochs_done"].fillna(0).where(trained, 0).cumsum()
    fractions = hypervolume_history(trials, config.objectives, reference)["hypervolume"].to_numpy() / best
    return pd.DataFrame({"trials": np.arange(1, len(trials) + 1), "hv_fraction": fractions, "epochs": epochs.values})


def epochs_to_reach(history: pd.DataFrame, level: float) -> float:
    reached = history[history["hv_fraction"] >= level - 1e-12]
    return float(reached["epochs"].iloc[0]) if len(reached) else math.inf


def median_epochs(runs: pd.DataFrame) -> dict[str, float]:
    """Median over searches of the epochs trained to reach each hypervolume level, and over the whole search."""
    searches = [run for _, run in runs.groupby(["table_seed", "seed"])]
    row = {f"{level:.2f}": float(np.median([epochs_to_reach(run, level) for run in searches])) for level in LEVELS}
    row["whole search"] = float(np.median([run["epochs"].max() for run in searches]))
    return row


def schedule(grace_period: float | None) -> str:
    """A search's scheduler as the tables and the plot name it (no grace period: FIFO)."""
    return "FIFO" if pd.isna(grace_period) else f"mo-asha, grace {grace_period:.0f}"


def plot(results: pd.DataFrame, budgets: list[float], size: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    fifo = results[results["scheduler"] == "fifo"]
    for sampler, runs in fifo.groupby("sampler"):
        table = runs.pivot_table(index="trials", columns=["table_seed", "seed"], values="hv_fraction")
        x = table.index / size * 100
        mean, std = table.mean(axis=1), table.std(axis=1).fillna(0)
        left.plot(x, mean, label=sampler)
        left.fill_between(x, (mean - std).clip(lower=0), (mean + std).clip(upper=1), alpha=0.15)  # a fraction <= 1
    for budget in budgets:
        left.axvline(budget, color="#cccccc", lw=0.8, zorder=0)
    left.axhline(0.95, color="#444444", ls="--", lw=0.8)
    left.set_xscale("log")
    left.set_xlabel("trials (% of the space, log scale)")
    left.set_ylabel("hypervolume / exhaustive front's")
    left.set_title("samplers (mean ± std over searches)")
    left.legend()
    left.grid(alpha=0.3)
    nsga2 = results[results["sampler"] == "nsga2"]
    colours = iter(["#1f77b4", "#d62728", "#2ca02c", "#9467bd"])
    for grace, runs in nsga2.groupby(nsga2["grace_period"].fillna(0)):  # FIFO (0) first
        colour = next(colours)
        for k, (_, run) in enumerate(runs.groupby(["table_seed", "seed"])):
            right.step(run["epochs"], run["hv_fraction"], where="post", alpha=0.6, color=colour,
                       label=schedule(grace or None) if k == 0 else None)
    right.axhline(0.98, color="#444444", ls="--", lw=0.8)
    right.set_xscale("log")
    right.set_xlabel("epochs trained (log scale)")
    right.set_ylabel("hypervolume / exhaustive front's")
    right.set_title("NSGA-II with and without mo-asha (one line per search)")
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ulsam-search bench samplers", description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(ROOT / "benchmarks" / "data" / "tabular_digits.csv"))
    parser.add_argument("--config", default=str(ROOT / "search_spaces" / "tabular_digits_search.yaml"))
    parser.add_argument("--samplers", nargs="+", default=["nsga2", "tpe", "gp", "random"])
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds 0..N-1 (default 3)")
    parser.add_argument("--table-seeds", type=int, nargs="+", help="the table's training seeds (default: all)")
    parser.add_argument("--grace-periods", type=int, nargs="+", default=[1, 2], help="mo-asha's first rungs")
    parser.add_argument("--budgets", type=float, nargs="+", default=[5, 10, 25, 50, 100])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "data"))
    parser.add_argument("--quick", action="store_true",
                        help="nsga2 and random, 1 seed on the table's first seed, grace 2, budgets up to 10%%")
    args = parser.parse_args(argv)
    table_path = Path(args.table).resolve()
    table = read_table(table_path)
    if args.quick:
        args.samplers, args.seeds, args.table_seeds, args.grace_periods = ["nsga2", "random"], 1, table.seeds[:1], [2]
        args.budgets = [5, 10]
    table_seeds = args.table_seeds or table.seeds
    console = Console(width=160)
    progress = Console(stderr=True, width=160)
    base = load_search_config(args.config)
    size = len(table.archs)
    budgets = [max(1, round(size * b / 100)) for b in args.budgets]
    n_trials = max(budgets)
    replicates = [(table_seed, seed) for table_seed in table_seeds for seed in range(args.seeds)]
    searches = [(sampler, None) for sampler in args.samplers] + [("nsga2", grace) for grace in args.grace_periods]
    started = time.perf_counter()
    records = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with tempfile.TemporaryDirectory() as runs:
            best = {}  # table seed -> (reference point, exhaustive hypervolume)
            for (sampler, grace), (table_seed, seed) in itertools.product(searches, replicates):
                config = search_config(base, table_path, sampler, seed, table_seed, n_trials, grace,
                                       f"{sampler}-{grace or 'fifo'}-{table_seed}-{seed}")
                clock = time.perf_counter()
                trials = run_search(config, runs, progress=False)
                if table_seed not in best:
                    paths, _, _ = prepare_run(config, runs)
                    reference, _ = reference_point(config, RunFacts.read(paths.facts), trials)
                    best[table_seed] = reference, exhaustive_hypervolume(table_path, config, reference)
                history = curve(trials, config, *best[table_seed])
                records.append(history.assign(sampler=sampler, seed=seed, table_seed=table_seed,
                                              scheduler=config.scheduler.name,
                                              grace_period=math.nan if grace is None else grace))
                progress.print(f"{sampler} seed {seed} on table seed {table_seed}, {schedule(grace)}: "
                               f"{len(trials)} trials in {time.perf_counter() - clock:.1f} s, hypervolume "
                               f"{history['hv_fraction'].iloc[-1]:.3f} of the exhaustive front's after "
                               f"{history['epochs'].iloc[-1]:.0f} epochs")
    finally:
        ray.shutdown()
    results = pd.concat(records, ignore_index=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "samplers.csv", index=False, float_format="%.6g")
    plot(results, list(args.budgets), size, out / "samplers.png")

    fifo = results[results["scheduler"] == "fifo"]
    console.print(f"Hypervolume / the exhaustive front's ({size} architectures), mean ± std over {len(replicates)} "
                  f"searches ({args.seeds} sampler seeds x table seeds {', '.join(map(str, table_seeds))})")
    view = Table()
    view.add_column("sampler")
    for pct, budget in zip(args.budgets, budgets):
        view.add_column(f"{pct:g}% ({budget})", justify="right")
    means = {}
    for sampler in args.samplers:
        cells = []
        for budget in budgets:
            at = fifo[(fifo["sampler"] == sampler) & (fifo["trials"] == budget)]["hv_fraction"]
            means[sampler, budget] = at.mean()
            cells.append(f"{at.mean():.3f} ± {at.std(ddof=1) if len(at) > 1 else 0:.3f}")
        view.add_row(sampler, *cells)
    console.print(view)
    at_quarter = [b for p, b in zip(args.budgets, budgets) if p <= 25]
    if at_quarter:
        top = max((means.get((s, at_quarter[-1]), 0), s) for s in ("nsga2", "tpe") if s in args.samplers)
        console.print(f"Goal >= 0.95 within 25% of the space: {top[1]} reaches {top[0]:.3f} at "
                      f"{at_quarter[-1]} trials: {'met' if top[0] >= 0.95 else 'not met'}")
    if "random" in args.samplers:
        for sampler in ("nsga2", "tpe"):
            if sampler in args.samplers:
                beats = all(means[sampler, b] > means["random", b] for b in budgets)
                console.print(f"{sampler} above random at every budget: {'yes' if beats else 'no'} ("
                              + ", ".join(f"{means[sampler, b] - means['random', b]:+.3f}" for b in budgets) + ")")

    console.print(f"mo-asha vs FIFO (NSGA-II): epochs to reach a hypervolume level, median over searches; at most "
                  f"{base.training.epochs} / grace saved")
    saving = Table()
    nsga2 = results[results["sampler"] == "nsga2"]
    schedules = {schedule(g): nsga2[nsga2["grace_period"].isna() if g is None else nsga2["grace_period"] == g]
                 for g in [None, *args.grace_periods]}
    saving.add_column("level", justify="right")
    for name in schedules:
        saving.add_column(f"{name} epochs", justify="right")
        if name != "FIFO":
            saving.add_column("saved", justify="right")
    needed = {name: median_epochs(runs) for name, runs in schedules.items()}  # schedule -> row label -> epochs
    for label, fifo_epochs in needed["FIFO"].items():
        cells = []
        for name in schedules:
            epochs = needed[name][label]
            cells.append(f"{epochs:.0f}" if math.isfinite(epochs) else "not reached")
            if name != "FIFO":
                finite = math.isfinite(fifo_epochs + epochs)
                cells.append(f"{fifo_epochs / epochs:.2f}x" if finite else "-")
        saving.add_row(label, *cells)
    console.print(saving)
    console.print(f"{len(searches) * len(replicates)} searches of {n_trials} trials in "
                  f"{time.perf_counter() - started:.0f} s; {out / 'samplers.csv'}, {out / 'samplers.png'}")
