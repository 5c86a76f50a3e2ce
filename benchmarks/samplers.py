"""Samplers and early stopping compared on the tabular benchmark, a whole search in seconds.

    ulsam-search bench samplers [--config search_spaces/tabular_digits_search.yaml] [--table CSV]
                                [--samplers nsga2 tpe gp random] [--seeds 3] [--table-seeds 0 1]
                                [--grace-periods G ...] [--budgets 5 10 25 50 100] [--quick] [--out DIR]

Every search goes through the real runner: Optuna proposes, Ray Tune runs the trials, and the trials are answered
epoch by epoch from the table (``backend: table``) instead of being trained. The config
(by default ``search_spaces/tabular_digits_search.yaml``; ``tabular_cluttered_search.yaml`` is the cluttered-mnist
table, 9 epochs, where mo-asha has rungs at 1, 3 and 9) names the table, the budget (the table's epochs) and
mo-asha's reduction factor; the benchmark changes the sampler, its seed and
the number of trials, one trial at a time (``max_concurrent: 1``, so a search depends on its seeds only). NSGA-II
runs with a population of 10, the others with Optuna's defaults (TPE and GP: 10 random start-up trials), so every
sampler proposes the same first ~10 trials. Every sampler seed runs on every seed of the table (the training seed
answering the trials), so a figure is a mean over ``seeds x table seeds`` searches and includes the training noise.

The exhaustive front is the front over (top-1, MACs) of every architecture in the table at its final epoch, that
table seed. After each of a search's first b trials (b a percentage of the space) three measures compare the
search's front (its COMPLETE, feasible trials) with it:

- hypervolume fraction: the search front's hypervolume over the exhaustive front's, both against the benchmark's
  reference point: the baseline's MACs and, as the accuracy floor, the table's worst final top-1 for that table
  seed (printed, and in the CSV). Chance level (the report's default floor) makes the box so tall that every
  architecture of the table sits within ~5% of it in top-1 and any one of the cheapest architectures alone
  reaches 0.97-1.00 of the exhaustive front's hypervolume. A front member above the baseline's MACs lies outside
  the box and adds nothing to either hypervolume.
- IGD+ (pymoo): the mean over the exhaustive front's members of the distance to the nearest search point that
  does not dominate it, counting only the amounts by which that point is worse. Both sets are first normalised
  by the exhaustive front's ideal and nadir points (each objective 0 at the front's best value and 1 at its
  worst), so top-1 points and MACs count on one scale and no reference point is involved. Lower is better; 0
  once the search has every member of the front (or points as good).
- front share: the fraction of the exhaustive front's architectures (canonical ARCH strings; tied members all
  count) that the search has among its COMPLETE trials. A trial mo-asha pruned never reached the final budget,
  so it did not find its architecture, nor did a later duplicate of it (which copies the pruned result).

Beside the samplers, "cheapest alone" is the trivial baseline: the single architecture with the table's fewest
MACs (several tie) and the best final top-1 among those, that table seed, as a front of one point. Goals:
NSGA-II or TPE reaches >= 0.95 of the hypervolume within 25% of the space, and is above random at every budget
beyond the 10 shared start-up trials (a tie where every search of both has the whole front counts as not
behind).

Early stopping: the NSGA-II searches again with ``mo-asha`` at each grace period (its first rung, in epochs; by
default 1 and the config's).
Compute is the epochs trained (a pruned trial costs the epochs it ran, a duplicate or infeasible one nothing); the
saving at a level is the epochs FIFO needed to reach it over the epochs mo-asha needed (medians over searches,
printed with their ranges, flagged where the ranges overlap). Levels: hypervolume fraction 0.90, 0.95 and 0.98,
front share 0.5 and 1, IGD+ 0.1; a level the cheapest architecture alone already reaches is marked, since there
reaching it says nothing. Goal: >= 2x at hypervolume 0.98. With a budget of E epochs a trial stopped at the first
rung still costs ``grace`` epochs, so no scheduler can save more than ``E / grace``.

Writes ``samplers_<table>.csv`` (every search's three measures after every trial, with its compute and the
reference; ``<table>`` is the table's file name without ``tabular_``: ``samplers_digits.csv``,
``samplers_cluttered.csv``) and
``samplers_<table>.png`` to ``--out``, by default a new temporary folder (printed at the end): ``--out
benchmarks/data`` replaces the committed results for that table only. Needs pymoo: ``pip install
'ulsam-search[bench]'``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from ulsam_search.models.arch import Architecture
from ulsam_search.config import SearchConfig, load_search_config
from ulsam_search.errors import InvalidInput, OneLineParser
from ulsam_search.report import hypervolume, hypervolume_history, normalised_losses, reference_point
from ulsam_search.search.rundir import RunFacts
from ulsam_search.search.objectives import get_objective
from ulsam_search.search.records import eligible, pareto_set
from ulsam_search.search.runner import prepare_run, run_search
from ulsam_search.search.samplers import list_samplers
from ulsam_search.search.backends.table import read_table

ROOT = Path(__file__).resolve().parent.parent
# Levels a search's front must reach, for the epochs mo-asha and FIFO need: the hypervolume fraction saturates near
# the trivial answer's (cheapest alone reaches 0.93-0.95 on the shipped tables), so front share and IGD+ levels too.
TARGETS = (("hv_fraction", 0.90), ("hv_fraction", 0.95), ("hv_fraction", 0.98), ("front_share", 0.5),
           ("front_share", 1.0), ("igd_plus", 0.1))
MEASURE_NAMES = {"hv_fraction": "hypervolume", "front_share": "front share", "igd_plus": "IGD+"}
STARTUP_TRIALS = 10  # NSGA-II's first generation (population 10), TPE's and GP's random start-up trials
CHEAPEST = "cheapest alone"
PIP_HINT = "pip install 'ulsam-search[bench]'"


@dataclass(frozen=True)
class Exhaustive:
    """One table seed's exhaustive front and the benchmark's reference point for it."""

    table_seed: int
    floor: float  # the table's worst final top-1 (%) for the seed: the reference point's top-1
    reference: dict[str, float]  # objective -> reference value (raw units)
    hypervolume: float  # of the exhaustive front, against ``reference``
    front: pd.DataFrame  # the exhaustive front's rows
    cheapest: pd.DataFrame  # one row: the best of the architectures with the fewest MACs
    cheapest_ties: int  # how many architectures have the fewest MACs


def search_config(base: SearchConfig, table: Path, sampler: str, seed: int, table_seed: int, n_trials: int,
                  grace_period: int | None, name: str) -> SearchConfig:
    """``base`` answered from ``table``'s ``table_seed``; FIFO when ``grace_period`` is None, else mo-asha."""
    data = base.model_dump()
    data.update(name=name, n_trials=n_trials, max_concurrent=1, backend={"name": "table", "table": str(table)},
                sampler={"name": sampler, "seed": seed,
                         "options": {"population_size": 10} if sampler == "nsga2" else {}})
    data["training"]["seed"] = table_seed
    data["scheduler"]["name"] = "fifo" if grace_period is None else "mo-asha"
    data["scheduler"]["grace_period"] = grace_period or data["scheduler"]["grace_period"]
    return SearchConfig.model_validate(data)


def final_results(table_path: Path, config: SearchConfig) -> pd.DataFrame:
    """Every architecture of the table at the search's final epoch for its seed, as COMPLETE feasible trials."""
    frame = read_table(table_path).frame
    final = frame[(frame["seed"] == config.training.seed) & (frame["epoch"] == config.training.epochs)]
    return final.assign(status="COMPLETE", feasible=True, arch=final["arch"].map(canonical))


def canonical(arch: str) -> str:
    return str(Architecture.parse(arch))


def exhaustive(table_path: Path, config: SearchConfig, baseline: dict[str, float]) -> Exhaustive:
    """The exhaustive front of ``config``'s table seed, with the reference point: ``baseline``'s costs (the report's
    reference: the baseline's MACs) and the table's worst final top-1 as the accuracy floor."""
    final = final_results(table_path, config)
    floor = float(final["top1"].min())
    reference = {**baseline, "top1": floor} if "top1" in baseline else dict(baseline)
    front = pareto_set(final, config.objectives)
    cheapest = final[final["macs"] == final["macs"].min()].sort_values(["top1", "arch"], ascending=[False, True])
    return Exhaustive(table_seed=config.training.seed, floor=floor, reference=reference,
                      hypervolume=hypervolume(normalised_losses(front, reference)), front=front,
                      cheapest=cheapest.head(1), cheapest_ties=len(cheapest))


def minimised(frame: pd.DataFrame, objectives) -> np.ndarray:
    """n x k raw objective values, each to minimise (top-1 as its error, 100 - top-1)."""
    columns = []
    for objective in objectives:
        column, direction = get_objective(objective).column, get_objective(objective).direction
        values = frame[column].to_numpy(dtype=float)
        columns.append(100.0 - values if column == "top1" else values if direction == "min" else -values)
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def igd_plus(found: np.ndarray, front: np.ndarray) -> float:
    """IGD+ of the points ``found`` (n x k, to minimise) against the reference set ``front`` (m x k, the exhaustive
    front), both normalised by the front's ideal and nadir points (an objective the front does not spread over is
    left in its units); pymoo's indicator. inf when nothing was found."""
    from pymoo.indicators.igd_plus import IGDPlus

    found, front = np.atleast_2d(np.asarray(found, dtype=float)), np.atleast_2d(np.asarray(front, dtype=float))
    if found.size == 0:
        return math.inf
    ideal, nadir = front.min(axis=0), front.max(axis=0)
    scale = np.where(nadir > ideal, nadir - ideal, 1.0)
    return float(IGDPlus((front - ideal) / scale)((found - ideal) / scale))


def front_share(found_archs, front_archs) -> float:
    """The fraction of the exhaustive front's ARCHs among ``found_archs``."""
    members = set(front_archs)
    return len(members & set(found_archs)) / len(members) if members else math.nan


def scores(found: pd.DataFrame, objectives, best: Exhaustive) -> dict[str, float]:
    """The three measures for a set of COMPLETE feasible trials (``found``) against ``best``."""
    front = pareto_set(found, objectives)
    return {"hv_fraction": hypervolume(normalised_losses(front, best.reference)) / best.hypervolume,
            "igd_plus": igd_plus(minimised(front, objectives), minimised(best.front, objectives)),
            "front_share": front_share(found["arch"].map(canonical), best.front["arch"])}


def curve(trials: pd.DataFrame, config: SearchConfig, best: Exhaustive) -> pd.DataFrame:
    """Per trial number: the three measures of the trials so far and the epochs trained so far."""
    trials = trials.sort_values("number")
    trained = trials["duplicate_of"].isna() & (trials["status"] != "INFEASIBLE")
    epochs = trials["epochs_done"].fillna(0).where(trained, 0).cumsum()
    fractions = hypervolume_history(trials, config.objectives, best.reference)["hypervolume"].to_numpy()
    candidates = eligible(trials).assign(arch=lambda frame: frame["arch"].map(canonical))  # parsed once
    front_losses = minimised(best.front, config.objectives)
    igd, share, value, found = [], [], math.inf, 0.0
    for number in trials["number"]:
        if number in candidates["number"].values:  # the measures move only when a trial may join the front
            so_far = candidates[candidates["number"] <= number]
            value = igd_plus(minimised(pareto_set(so_far, config.objectives), config.objectives), front_losses)
            found = front_share(so_far["arch"], best.front["arch"])
        igd.append(value)
        share.append(found)
    return pd.DataFrame({"trials": np.arange(1, len(trials) + 1), "hv_fraction": fractions / best.hypervolume,
                         "igd_plus": igd, "front_share": share, "epochs": epochs.values})


def reaches(values, measure: str, level: float):
    """Whether a measure is at ``level`` or better (IGD+ is lower-is-better)."""
    return values <= level + 1e-12 if measure == "igd_plus" else values >= level - 1e-12


def epochs_to_reach(history: pd.DataFrame, measure: str, level: float) -> float:
    reached = history[reaches(history[measure], measure, level)]
    return float(reached["epochs"].iloc[0]) if len(reached) else math.inf


def epochs_needed(runs: pd.DataFrame) -> dict[tuple[str, float] | str, list[float]]:
    """Per target (and the whole search): the epochs each search trained to reach it, inf where it never did."""
    searches = [run for _, run in runs.groupby(["table_seed", "seed"])]
    needed = {target: [epochs_to_reach(run, *target) for run in searches] for target in TARGETS}
    return {**needed, "whole search": [float(run["epochs"].max()) for run in searches]}


def spread(epochs: list[float]) -> str:
    """``72 (45-108)``: the median and range over searches; ``never`` for a search that did not reach it."""
    median, low, high = float(np.median(epochs)), min(epochs), max(epochs)
    if low == high:
        return f"{median:.0f}" if math.isfinite(median) else "not reached"
    span = "-".join(f"{e:.0f}" if math.isfinite(e) else "never" for e in (low, high))
    return f"{median:.0f} ({span})" if math.isfinite(median) else f"not reached ({span})"


def saved(fifo: list[float], early: list[float]) -> str:
    """FIFO's median over mo-asha's, flagged when the two ranges overlap (then the saving, or the loss, is within
    the spread of the searches)."""
    fifo_median, early_median = float(np.median(fifo)), float(np.median(early))
    if not math.isfinite(early_median):
        return "-"  # the row says "not reached" already
    if not math.isfinite(fifo_median):
        return "FIFO's median never reaches it"
    overlap = min(early) <= max(fifo) and min(fifo) <= max(early)
    return f"{fifo_median / early_median:.2f}x" + (" (ranges overlap)" if overlap else "")


def schedule(grace_period: float | None) -> str:
    """A search's scheduler as the tables and the plot name it (no grace period: FIFO)."""
    return "FIFO" if pd.isna(grace_period) else f"mo-asha, grace {grace_period:.0f}"


def mean_std(values: pd.Series, digits: int = 3) -> str:
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}"


def plot(results: pd.DataFrame, budgets: list[float], size: int, cheapest: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.5))
    fifo = results[results["scheduler"] == "fifo"]
    for axis, measure, bounded in ((left, "hv_fraction", True), (middle, "igd_plus", False)):
        for sampler, runs in fifo.groupby("sampler"):
            table = runs.pivot_table(index="trials", columns=["table_seed", "seed"], values=measure)
            table = table.replace(math.inf, np.nan)  # no complete trial yet: nothing to draw
            x = table.index / size * 100
            mean, std = table.mean(axis=1), table.std(axis=1).fillna(0)
            axis.plot(x, mean, label=sampler)
            low, high = (mean - std).clip(lower=0), (mean + std).clip(upper=1) if bounded else mean + std
            axis.fill_between(x, low, high, alpha=0.15)  # a fraction <= 1, a distance >= 0
        axis.axhline(cheapest[measure], color="#444444", ls=":", lw=1.2, label=f"{CHEAPEST} (mean)")
        for budget in budgets:
            axis.axvline(budget, color="#cccccc", lw=0.8, zorder=0)
        axis.set_xscale("log")
        axis.set_xlabel("trials (% of the space, log scale)")
        axis.legend()
        axis.grid(alpha=0.3)
    left.axhline(0.95, color="#444444", ls="--", lw=0.8)
    left.set_ylabel("hypervolume / exhaustive front's")
    left.set_title("hypervolume fraction (floor: the table's worst top-1)")
    middle.set_ylabel("IGD+ (normalised by the exhaustive front)")
    middle.set_title("IGD+ to the exhaustive front (lower is better)")
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


@dataclass(frozen=True)
class Plan:
    """What the command line asks for, resolved: the table, the searches and the budgets."""

    args: argparse.Namespace
    table_path: Path
    table_seeds: list[int]
    base: SearchConfig
    size: int  # architectures in the table
    budgets: list[int]  # trials at each --budgets percentage
    replicates: list[tuple[int, int]]  # (table seed, sampler seed)
    searches: list[tuple[str, int | None]]  # (sampler, mo-asha grace period or None for FIFO)


def config_table(config: SearchConfig) -> Path:
    """The table ``config`` names: relative to the working folder, else to the repository (where the shipped configs'
    ``benchmarks/data/...`` lies), so the benchmark runs from any folder."""
    if config.backend.name != "table":
        raise InvalidInput(f"bench samplers: config {config.name} has backend {config.backend.name}; it needs "
                           "backend: {name: table, table: CSV} (or --table CSV)")
    path = Path(config.backend.table)
    return (path if path.is_absolute() or path.exists() else ROOT / path).resolve()


def check_plan(args: argparse.Namespace, base: SearchConfig, table) -> None:
    """Bad input before Ray starts: unknown samplers, no seeds, budgets outside (0, 100]%, a config trained for
    another budget than the table's, grace periods outside 1..budget, table seeds the table does not hold."""
    unknown = [name for name in args.samplers if name not in list_samplers()]
    if unknown:
        raise InvalidInput(f"bench samplers: --samplers {' '.join(unknown)}: unknown; valid: "
                           f"{', '.join(list_samplers())}")
    if args.seeds < 1:
        raise InvalidInput(f"bench samplers: --seeds {args.seeds}: needs at least 1 sampler seed")
    outside = [b for b in args.budgets if not 0 < b <= 100]
    if outside:
        raise InvalidInput(f"bench samplers: --budgets {' '.join(f'{b:g}' for b in outside)}: a budget is a "
                           "percentage of the space in (0, 100]")
    epochs = base.training.epochs
    if epochs != table.epochs:
        raise InvalidInput(f"bench samplers: {Path(table.source).name} holds {table.epochs} epochs per trial, config "
                           f"{base.name} trains {epochs}: give the config made for that table (--config)")
    wrong = [g for g in args.grace_periods or () if not 1 <= g <= epochs]
    if wrong:
        raise InvalidInput(f"bench samplers: --grace-periods {' '.join(map(str, wrong))}: a first rung lies in "
                           f"1..{epochs} epochs")
    missing = sorted(set(args.table_seeds or ()) - set(table.seeds))
    if missing:
        raise InvalidInput(f"bench samplers: --table-seeds {' '.join(map(str, missing))}: the table holds seeds "
                           f"{', '.join(map(str, table.seeds))}")


def parse_plan(argv: list[str]) -> Plan:
    parser = OneLineParser(prog="ulsam-search bench samplers", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "search_spaces" / "tabular_digits_search.yaml"),
                        help="the search config: its table, budget and mo-asha reduction factor")
    parser.add_argument("--table", help="the tabular benchmark (default: the config's backend.table)")
    parser.add_argument("--samplers", nargs="+", default=["nsga2", "tpe", "gp", "random"])
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds 0..N-1 (default 3)")
    parser.add_argument("--table-seeds", type=int, nargs="+", help="the table's training seeds (default: all)")
    parser.add_argument("--grace-periods", type=int, nargs="+",
                        help="mo-asha's first rungs (default: 1 and the config's grace period)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[5, 10, 25, 50, 100])
    parser.add_argument("--out", help="folder for samplers_<table>.csv and .png (default: a new temporary folder; "
                                      "`--out benchmarks/data` replaces the committed results for that table)")
    parser.add_argument("--quick", action="store_true", help="nsga2 and random, 1 seed on the table's first seed, "
                                                             "the config's grace period, budgets up to 10%%")
    args = parser.parse_args(argv)
    try:
        import pymoo.indicators.igd_plus  # noqa: F401
    except ImportError:
        raise InvalidInput(f"bench samplers needs pymoo for IGD+: {PIP_HINT}") from None
    base = load_search_config(args.config)
    table_path = Path(args.table).resolve() if args.table else config_table(base)
    table = read_table(table_path)
    if args.quick:  # before the checks: what --quick replaces is not checked
        args.samplers, args.seeds, args.table_seeds = ["nsga2", "random"], 1, table.seeds[:1]
        args.grace_periods, args.budgets = [base.scheduler.grace_period], [5, 10]
    check_plan(args, base, table)
    args.grace_periods = sorted(set(args.grace_periods or {1, base.scheduler.grace_period}))
    table_seeds = args.table_seeds or table.seeds
    size = len(table.archs)
    return Plan(args, table_path, table_seeds, base, size,
                [max(1, round(size * b / 100)) for b in args.budgets],
                [(table_seed, seed) for table_seed in table_seeds for seed in range(args.seeds)],
                [(sampler, None) for sampler in args.samplers] + [("nsga2", grace) for grace in args.grace_periods])


def run_searches(plan: Plan, progress: Console) -> tuple[pd.DataFrame, dict[int, Exhaustive]]:
    """Every (search, replicate) through the real runner on a local Ray: the measures after every trial, and per
    table seed its exhaustive front."""
    import ray

    from ulsam_search.search._ray import start_local_ray

    n_trials = max(plan.budgets)
    records = []
    best: dict[int, Exhaustive] = {}  # table seed -> its exhaustive front and reference point
    start_local_ray(2)
    try:
        with tempfile.TemporaryDirectory() as runs:
            for (sampler, grace), (table_seed, seed) in itertools.product(plan.searches, plan.replicates):
                config = search_config(plan.base, plan.table_path, sampler, seed, table_seed, n_trials, grace,
                                       f"{sampler}-{grace or 'fifo'}-{table_seed}-{seed}")
                clock = time.perf_counter()
                trials = run_search(config, runs, progress=False)
                if table_seed not in best:
                    paths, _, _ = prepare_run(config, runs)
                    baseline, _ = reference_point(config, RunFacts.read(paths.facts), trials)
                    best[table_seed] = exhaustive(plan.table_path, config, baseline)
                history = curve(trials, config, best[table_seed])
                records.append(history.assign(sampler=sampler, seed=seed, table_seed=table_seed,
                                              scheduler=config.scheduler.name,
                                              grace_period=math.nan if grace is None else grace,
                                              floor=best[table_seed].floor,
                                              reference_macs=int(best[table_seed].reference.get("macs", 0))))
                last = history.iloc[-1]
                progress.print(f"{sampler} seed {seed} on table seed {table_seed}, {schedule(grace)}: "
                               f"{len(trials)} trials in {time.perf_counter() - clock:.1f} s, hypervolume "
                               f"{last['hv_fraction']:.3f} of the exhaustive front's, IGD+ {last['igd_plus']:.3f}, "
                               f"{last['front_share']:.0%} of the front after {last['epochs']:.0f} epochs")
    finally:
        ray.shutdown()
    return pd.concat(records, ignore_index=True), best


def print_references(console: Console, plan: Plan, best: dict[int, Exhaustive]) -> None:
    console.print(f"table: {plan.table_path} ({plan.size} architectures, {plan.base.training.epochs} epochs; config "
                  f"{plan.base.name})")
    for table_seed in plan.table_seeds:
        ex = best[table_seed]
        costs = "".join(f", {o} {v:.4g} ms (the baseline's)" if o == "latency" else
                        f", {'MACs' if o == 'macs' else o} {v / 1e6:.4f} M (the baseline's)"
                        for o, v in ex.reference.items() if o != "top1")
        console.print(f"reference: top-1 floor {ex.floor:.10g}% (the table's worst final top-1, seed {table_seed})"
                      + costs)
        cheapest = ex.cheapest.iloc[0]
        above = int((ex.front["macs"] >= ex.reference["macs"]).sum()) if "macs" in ex.reference else 0
        console.print(f"  exhaustive front, seed {table_seed}: {len(ex.front)} architectures"
                      + (f" ({above} at or above the baseline's MACs, outside the box)" if above else "")
                      + f"; {CHEAPEST}: {cheapest['arch']} (top-1 {cheapest['top1']:.10g}%, the best of the "
                        f"{ex.cheapest_ties} with the fewest MACs, {cheapest['macs'] / 1e6:.4f} M)")


def print_measures(console: Console, plan: Plan, results: pd.DataFrame, trivial: pd.DataFrame):
    """One table per measure (sampler x budget, FIFO searches); returns the means and whether every search of a
    sampler had the whole front, by (measure, sampler, budget) and (sampler, budget)."""
    args = plan.args
    fifo = results[results["scheduler"] == "fifo"]
    means: dict[tuple[str, str, int], float] = {}  # (measure, sampler, budget) -> mean over searches
    perfect: dict[tuple[str, int], bool] = {}  # (sampler, budget) -> every search has the whole front
    measures = (("hv_fraction", "Hypervolume / the exhaustive front's (higher is better)"),
                ("igd_plus", "IGD+ to the exhaustive front, normalised by its ideal and nadir (lower is better)"),
                ("front_share", "Share of the exhaustive front's architectures found (higher is better)"))
    for measure, title in measures:
        console.print(f"{title}, {plan.size} architectures, mean ± std over {len(plan.replicates)} searches "
                      f"({args.seeds} sampler seeds x table seeds {', '.join(map(str, plan.table_seeds))})")
        view = Table()
        view.add_column("sampler")
        for pct, budget in zip(args.budgets, plan.budgets):
            view.add_column(f"{pct:g}% ({budget})", justify="right")
        for sampler in args.samplers:
            cells = []
            for budget in plan.budgets:
                at = fifo[(fifo["sampler"] == sampler) & (fifo["trials"] == budget)]
                means[measure, sampler, budget] = at[measure].mean()
                perfect[sampler, budget] = bool((at["front_share"] == 1).all())
                cells.append(mean_std(at[measure]))
            view.add_row(sampler, *cells)
        view.add_row(CHEAPEST, *[mean_std(trivial[measure])] * len(plan.budgets))
        console.print(view)
    return means, perfect


def print_goals(console: Console, plan: Plan, means, perfect, trivial: pd.DataFrame) -> None:
    samplers = plan.args.samplers
    goal_samplers = [s for s in ("nsga2", "tpe") if s in samplers]
    at_quarter = [b for p, b in zip(plan.args.budgets, plan.budgets) if p <= 25]
    console.print("Goals: NSGA-II or TPE >= 0.95 of the hypervolume within 25% of the space; above random at every "
                  f"budget beyond the {STARTUP_TRIALS} shared start-up trials")
    if at_quarter and goal_samplers:
        b = at_quarter[-1]
        top = max((means["hv_fraction", s, b], s) for s in goal_samplers)
        console.print(f"  >= 0.95 within 25% of the space: {'met' if top[0] >= 0.95 else 'not met'} ("
                      + ", ".join(f"{s} {means['hv_fraction', s, b]:.3f}" for s in goal_samplers)
                      + f" at {b} trials; {CHEAPEST} {trivial['hv_fraction'].mean():.3f})")
    later = [b for b in plan.budgets if b > STARTUP_TRIALS]
    if "random" not in samplers or not later or not goal_samplers:
        return

    def versus_random(measure: str, sampler: str) -> str:
        return ", ".join(f"{means[measure, sampler, b] - means[measure, 'random', b]:+.3f}" for b in later)

    verdicts = {}
    for sampler in [s for s in samplers if s != "random"]:
        ahead = all(means["hv_fraction", sampler, b] > means["hv_fraction", "random", b]
                    or (perfect[sampler, b] and perfect["random", b]) for b in later)
        verdicts[sampler] = ahead
        console.print(f"  {sampler} above random beyond {STARTUP_TRIALS} trials: {'yes' if ahead else 'no'} "
                      f"(hypervolume {versus_random('hv_fraction', sampler)}; IGD+, lower is better, "
                      f"{versus_random('igd_plus', sampler)} at {', '.join(map(str, later))} trials)")
    met = any(verdicts[s] for s in goal_samplers)
    console.print(f"  above random at every budget beyond {STARTUP_TRIALS} trials: {'met' if met else 'not met'}")


def print_savings(console: Console, plan: Plan, results: pd.DataFrame, trivial: pd.DataFrame) -> None:
    console.print(f"mo-asha vs FIFO (NSGA-II): epochs trained to reach a level, median (range) over searches; at most "
                  f"{plan.base.training.epochs} / grace saved; * the cheapest architecture alone is already there")
    view = Table()
    nsga2 = results[results["sampler"] == "nsga2"]
    schedules = {schedule(g): nsga2[nsga2["grace_period"].isna() if g is None else nsga2["grace_period"] == g]
                 for g in [None, *plan.args.grace_periods]}
    view.add_column("level")
    for name in schedules:
        view.add_column(f"{name} epochs", justify="right")
        if name != "FIFO":
            view.add_column("saved", justify="right")
    needed = {name: epochs_needed(runs) for name, runs in schedules.items()}  # schedule -> target -> epochs
    for target, fifo in needed["FIFO"].items():
        label = target
        if target != "whole search":
            measure, level = target
            trivially = bool(reaches(trivial[measure], measure, level).all())
            label = f"{MEASURE_NAMES[measure]} {level:.2f}" + (" *" if trivially else "")
        cells = []
        for name in schedules:
            cells.append(spread(needed[name][target]))
            if name != "FIFO":
                cells.append(saved(fifo, needed[name][target]))
        view.add_row(label, *cells)
    console.print(view)


def output_stem(table: Path) -> str:
    """One pair of result files per table: ``samplers_digits`` for ``tabular_digits.csv``."""
    return "samplers_" + table.stem.removeprefix("tabular_")


def main(argv: list[str]) -> None:
    plan = parse_plan(argv)
    console = Console(width=160, soft_wrap=True)  # long lines stay whole; the tables still fit 160 columns
    started = time.perf_counter()
    results, best = run_searches(plan, Console(stderr=True, width=160))
    out = Path(plan.args.out) if plan.args.out else Path(tempfile.mkdtemp(prefix="ulsam-bench-samplers-"))
    out.mkdir(parents=True, exist_ok=True)
    stem = output_stem(plan.table_path)
    results.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
    # The trivial baseline, per search (it depends on the table seed only), so its mean weighs the seeds alike.
    trivial = pd.DataFrame([{"table_seed": t, "seed": s, **scores(best[t].cheapest, plan.base.objectives, best[t])}
                            for t, s in plan.replicates])
    plot(results, list(plan.args.budgets), plan.size, trivial.mean(numeric_only=True).to_dict(), out / f"{stem}.png")
    print_references(console, plan, best)
    means, perfect = print_measures(console, plan, results, trivial)
    print_goals(console, plan, means, perfect, trivial)
    print_savings(console, plan, results, trivial)
    console.print(f"{len(plan.searches) * len(plan.replicates)} searches of {max(plan.budgets)} trials in "
                  f"{time.perf_counter() - started:.0f} s")
    console.print(f"wrote {out / stem}.csv and {out / stem}.png (folder {out})")
