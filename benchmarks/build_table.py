"""Build the tabular benchmark: every architecture of a small space trained for a fixed budget, once per seed.

    ulsam-search bench build-table [--config search_spaces/tabular_digits.yaml] [--seeds 0 1]
                                   [--out CSV] [--runs-dir runs] [--limit N] [--retry-failed]

The space and the budget are the config's (by default MobileNet-V2@0.35 on digits, blocks 12, 15 and 16 each none /
insert g / replace g for g in {1, 4}: 125 architectures, 3 epochs). Each seed is one grid search through the real
runner (``runs/<name>-seed<k>/``: every architecture once, trained by Ray Tune trials, latency timed once per
architecture), so an interrupted build continues where it stopped when run again (and a seed the output table
already holds is kept, not trained again: a table can grow by a seed at a time). The table is then assembled from
the runs' Optuna journals, where every trial keeps its epochs, and written atomically: one row per (ARCH, seed,
epoch) with top-1, top-5, validation loss, training seconds, MACs, params and latency. Latency is timed again for
every architecture once training is over, one after another on an otherwise idle machine: the trials' own timings
share the cores with the other trial and vary by 3x. ``--limit N`` builds only the first N architectures of the grid
(a slice). An architecture whose trials all failed stops the build (exit 1) with no table written (a hole would fail
every search proposing it); once the cause is fixed, ``--retry-failed`` trains it again. Without ``--out`` the table
goes to a new temporary folder (printed at the end), so a build never replaces the committed
``benchmarks/data/tabular_digits.csv`` unless named as ``--out``; the run directories stay in ``--runs-dir`` either
way, so a build continues where it stopped.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
from rich.console import Console

from ulsam_search._io import atomic_path
from ulsam_search.config import SearchConfig, load_search_config
from ulsam_search.errors import InvalidInput, OneLineParser
from ulsam_search.search.records import COMPLETE, TrialRecord, interrupted, journal_storage
from ulsam_search.search.rundir import STUDY_NAME, RunFacts
from ulsam_search.search.runner import run_search
from ulsam_search.search.space import build_space
from ulsam_search.search.backends.table import TABLE_COLUMNS, read_table

ROOT = Path(__file__).resolve().parent.parent


def seed_config(config: SearchConfig, seed: int, n_trials: int) -> SearchConfig:
    """The grid search that trains every architecture of ``config`` with ``seed``."""
    data = config.model_dump()
    data.update(name=f"{config.name}-seed{seed}", n_trials=n_trials)
    data["training"]["seed"] = seed
    data["sampler"] = {"name": "grid", "seed": 0, "options": {}}
    data["scheduler"] = {"name": "fifo"}
    data["constraints"] = {}  # a table holds every architecture, none left out as infeasible
    return SearchConfig.model_validate(data)


def journal_rows(run_dir: Path) -> list[dict]:
    """One row per epoch of every trained trial of the run in ``run_dir``."""
    storage = journal_storage(run_dir / "optuna.log")
    rows = []
    for trial in optuna.load_study(study_name=STUDY_NAME, storage=storage).get_trials(deepcopy=False):
        record = TrialRecord.read(trial)
        if record.status != COMPLETE or record.history is None:
            continue
        for epoch in record.history:
            rows.append({"arch": record.arch, "seed": record.seed, "macs": record.macs, "params": record.params,
                         "latency_ms": record.latency_ms, **epoch})
    return rows


def check_complete(trials: pd.DataFrame, run_dir: Path) -> None:
    """Refuse to write a table with a hole: an architecture whose trials all failed (an error, or a process killed
    more than max_retries times) would fail every search the table answers that proposes it."""
    done = set(trials.loc[trials["status"] == COMPLETE, "arch"])
    missing = trials[~trials["arch"].isin(done)].drop_duplicates("arch", keep="last")
    if len(missing):
        names = missing["arch"].fillna("?").astype(str)
        first = missing.iloc[0]
        error = str(first["error"] if pd.notna(first["error"]) else "no error recorded").splitlines()[0]
        raise RuntimeError(f"{len(missing)} of {trials['arch'].nunique()} architectures in {run_dir} have no complete "
                           f"trial ({', '.join(names.head(3))}{', ...' if len(names) > 3 else ''}; the first "
                           f"{first['status']}: {error}); no table written. Fix the cause (see "
                           f"{run_dir / 'trials.csv'}), then run the same command with --retry-failed")


def quiet_latency(config: SearchConfig, facts: RunFacts, archs: list[str], console: Console) -> dict[str, float]:
    """ms per image of every ARCH, timed one after another once training is over (``config.latency``'s settings,
    on the CPU): the trials' own timings share the machine with other trials and are noisier."""
    import torch

    from ulsam_search.models import build_model
    from ulsam_search.cost import measure_latency

    settings = config.latency
    torch.set_num_threads(settings.threads or 1)
    timings = {}
    for arch in archs:
        model = build_model(arch, facts.num_classes, small_input=facts.small_input)
        timings[arch] = measure_latency(model, facts.input_size, batch=settings.batch_size, warmup=settings.warmup,
                                        runs=settings.repeats).ms_per_image
    console.print(f"timed {len(archs)} architectures at batch {settings.batch_size} on the CPU with "
                  f"{settings.threads or 1} thread(s)")
    return timings


def assemble(rows: list[dict], latency: dict[str, float]) -> pd.DataFrame:
    """The table, sorted, with one latency figure per ARCH."""
    frame = pd.DataFrame(rows)
    frame["latency_ms"] = frame["arch"].map(latency)
    return frame[list(TABLE_COLUMNS)].sort_values(["arch", "seed", "epoch"]).reset_index(drop=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineParser(prog="ulsam-search bench build-table", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "search_spaces" / "tabular_digits.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", help="the table's CSV (default: <config name>.csv in a new temporary folder; "
                                      "`--out benchmarks/data/tabular_digits.csv` replaces the committed table)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--limit", type=int, help="only the first N architectures of the grid")
    parser.add_argument("--retry-failed", action="store_true",
                        help="once a failure's cause is fixed: train again every architecture whose trial failed")
    args = parser.parse_args(argv)
    if min(args.seeds) < 0:
        raise InvalidInput(f"bench build-table: --seeds {' '.join(map(str, args.seeds))}: seeds are whole numbers >= 0")
    if args.limit is not None and args.limit < 1:
        raise InvalidInput(f"bench build-table: --limit {args.limit}: needs at least 1 architecture")
    if args.out and Path(args.out).is_dir():
        raise InvalidInput(f"bench build-table: --out {args.out} is a folder; give the table's file, e.g. "
                           f"{Path(args.out) / 'tabular_x.csv'}")
    return args


def print_summary(out: Path, table: pd.DataFrame, seconds: float) -> None:
    final = table[table["epoch"] == table.groupby(["arch", "seed"])["epoch"].transform("max")]
    Console().print(
        f"{out}: {final['arch'].nunique()} architectures x {final['seed'].nunique()} seeds, "
        f"{table['epoch'].max()} epochs "
        f"each ({len(table)} rows); final top-1 {final['top1'].min():.1f}-{final['top1'].max():.1f}% (mean "
        f"{final['top1'].mean():.2f}); latency {table['latency_ms'].min():.3g}-{table['latency_ms'].max():.3g} ms; "
        f"built in {seconds:.0f} s")
    Console().print(f"wrote {out}")


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    console = Console(stderr=True)
    config = load_search_config(args.config)
    size = build_space(config).size
    n_trials = min(size, args.limit or size)
    started = time.perf_counter()
    out = Path(args.out) if args.out else None  # default: a new temporary folder, made once the table is written
    built = read_table(out).frame if out and out.exists() else pd.DataFrame(columns=TABLE_COLUMNS)  # checked
    rows = built[~built["seed"].isin(args.seeds)].drop(columns="latency_ms").to_dict("records")  # other seeds stay
    timed, facts = dict(zip(built["arch"], built["latency_ms"])), None
    for seed in args.seeds:
        kept = built[built["seed"] == seed]
        if kept["arch"].nunique() >= n_trials:  # this seed is in the table already: an earlier build
            console.print(f"seed {seed}: {kept['arch'].nunique()} architectures already in {out}")
            rows += kept.drop(columns="latency_ms").to_dict("records")
            continue
        run = seed_config(config, seed, n_trials)
        console.print(f"seed {seed}: {n_trials} of {size} architectures in {Path(args.runs_dir) / run.name}")
        trials = run_search(run, args.runs_dir, retry_failed=args.retry_failed)
        if interrupted(trials, n_trials, Path(args.runs_dir) / run.name / "optuna.log"):  # Ctrl-C
            console.print(f"seed {seed} stopped before its {n_trials} architectures; the same command "
                          "continues it")
            raise KeyboardInterrupt
        check_complete(trials, Path(args.runs_dir) / run.name)
        rows += journal_rows(Path(args.runs_dir) / run.name)
        facts = RunFacts.read(Path(args.runs_dir) / run.name / "run.json")
    untimed = sorted({row["arch"] for row in rows} - set(timed))
    if untimed:
        timed.update(quiet_latency(config, facts, untimed, console))
    table = assemble(rows, timed)
    out = out or Path(tempfile.mkdtemp(prefix="ulsam-bench-table-")) / f"{config.name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as temporary:
        table.to_csv(temporary, index=False, float_format="%.6g")
    print_summary(out, table, time.perf_counter() - started)
