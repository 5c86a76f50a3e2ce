"""What a report is made from: the run directory read and checked, and everything derived from it once
(``ReportData``): the front with its deltas, the reference point, the hypervolume and its history, the knee, the
trials off the front with reasons and, for a study, the cell statistics and the paper's claims tested."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import read_csv, require_columns
from ..ablation import cell_statistics
from ..ablation.claims import Claim, study_claims
from ..ablation.confirm import CONFIRM_DIR, Confirmation, read_confirmation
from ..config import SearchConfig, load_search_config
from ..errors import InvalidInput
from ..models.arch import Architecture
from ..models.variants import VARIANTS
from ..search.objectives import get_objective
from ..search.records import (COMPLETE, FAILED, INFEASIBLE, INTEGER_COLUMNS, PRUNED, STATUSES, TEXT_COLUMNS, eligible,
                               interrupted, knee_point, pareto_set)
from ..search.rundir import RunFacts, RunPaths
from ..search.space import PARAM_PREFIX
from .pareto import hypervolume, hypervolume_history, normalised_losses, reference_point

NUMERIC_COLUMNS = (*INTEGER_COLUMNS, "top1", "top5", "seconds", "started_at", "latency_ms")


@dataclass
class ReportData:
    """Everything the files and plots are made from."""

    name: str
    config: SearchConfig
    config_text: str
    facts: RunFacts
    table: pd.DataFrame  # every trial
    front: pd.DataFrame  # the Pareto set, sorted by MACs, with delta columns
    others: pd.DataFrame  # the trials that cannot be on the front, with a reason column
    blocks: list[str]  # block_<k> columns
    reference: dict[str, float]  # objective -> reference value (raw units)
    floor: float  # accuracy floor (top-1 %)
    hypervolume: float
    hypervolume_history: pd.DataFrame  # number, hypervolume
    baseline_top1: float | None
    knee: int | None  # trial number
    ablation: pd.DataFrame | None  # a study's cell statistics; None for a search
    confirmed: Confirmation | None = None  # the confirm stage's results (``confirm.csv``); None: single runs only
    claims: list[Claim] | None = None  # a study's test of the paper's claims (``ablation.claims``); None for a search
    stopped: bool = False  # the run has not finished (``records.interrupted``): figures cover the trials so far
    confirm_pending: bool = False  # a confirm stage started (its run directory exists) without results yet

    @property
    def latency_timed(self) -> bool:
        """Whether the run measured latency (an objective or a constraint): reports then show it."""
        column = get_objective("latency").column
        return column in self.table and bool(self.table[column].notna().any())


def load_run(run_dir: str | os.PathLike) -> tuple[SearchConfig, str, RunFacts, pd.DataFrame]:
    """The config, its text, the run facts and the trials table of ``run_dir``, checked; bad input raises."""
    root = Path(run_dir)
    if not root.is_dir():
        raise InvalidInput(f"run directory {root} does not exist")
    config_path, facts_path, trials_path = root / "config.yaml", root / "run.json", root / "trials.csv"
    if not config_path.is_file() or not facts_path.is_file():
        raise InvalidInput(f"{root} is not a run directory (no config.yaml and run.json); "
                           f"make one with `ulsam-search run CONFIG`")
    config = load_search_config(config_path)
    facts = RunFacts.read(facts_path)
    if not trials_path.is_file():
        raise InvalidInput(f"run {root} has no finished trials yet (no trials.csv)")
    table = read_trials(trials_path)
    if table.empty:
        raise InvalidInput(f"run {root} has no finished trials yet")
    for objective in config.objectives:
        column = get_objective(objective).column
        complete = table["status"] == COMPLETE
        if column not in table.columns or table.loc[complete, column].isna().any():
            raise InvalidInput(f"{trials_path}: objective {objective} has no values in column {column} for the "
                               f"complete trials")
    return config, config_path.read_text(), facts, table


def read_trials(path: Path) -> pd.DataFrame:
    """``trials.csv``, refusing a corrupt or truncated file with the row or column at fault."""
    refusal = f"{path}: not a trials table"
    header = read_csv(path, refusal, nrows=0).columns
    table = read_csv(path, refusal, dtype={c: str for c in header if c in TEXT_COLUMNS or c.startswith(PARAM_PREFIX)})
    require_columns(table, ("number", "arch", "status", "macs", "params"), refusal)
    bad = table[~table["status"].isin(STATUSES)]
    if not bad.empty:
        raise InvalidInput(f"{path}: row {bad.index[0] + 2} is truncated or corrupt (status "
                           f"{bad['status'].iloc[0]!r}; valid: {', '.join(STATUSES)})")
    for column in NUMERIC_COLUMNS:
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce")
            broken = values.isna() & table[column].notna()
            if broken.any():
                raise InvalidInput(f"{path}: row {broken.idxmax() + 2} is truncated or corrupt ({column} "
                                   f"{table[column][broken.idxmax()]!r} is not a number)")
            fraction = values.notna() & (values % 1 != 0)
            if column in INTEGER_COLUMNS and fraction.any():
                raise InvalidInput(f"{path}: row {fraction.idxmax() + 2} is truncated or corrupt ({column} "
                                   f"{values[fraction.idxmax()]:g} is not a whole number)")
            table[column] = values
    if table[["macs", "params"]].isna().any().any():
        raise InvalidInput(f"{path}: row {table[['macs', 'params']].isna().any(axis=1).idxmax() + 2} is truncated "
                           f"or corrupt (no macs or params)")
    return table


def paper_variant_names(archs) -> dict[str, str]:
    """ARCH -> the paper variant with the same placements and a g the paper reported (``paper-mv2-c/4``), with
    `` @0.35`` added where only the width differs."""
    exact, pattern = {}, {}
    for variant in VARIANTS.values():
        for groups in variant.paper_groups:
            arch = variant.arch(groups)
            exact[str(arch)] = f"{variant.name}/{groups}"
            pattern.setdefault((arch.backbone, arch.placements), f"{variant.name}/{groups}")
    names = {}
    for text in archs:
        arch = Architecture.parse(text)
        if text in exact:
            names[text] = exact[text]
        elif arch.placements and (arch.backbone, arch.placements) in pattern:
            names[text] = f"{pattern[arch.backbone, arch.placements]} @{arch.width:g}"
    return names


def reproduce_command(arch: str, config: SearchConfig, facts: RunFacts) -> str:
    """The ``ulsam-search train`` line that retrains one trial with the run's budget."""
    data, training = config.dataset, config.training
    parts = ["ulsam-search train", f"'{arch}'", f"--dataset {data.name}"]
    parts += [f"--data-root {data.root}"] if data.root else []
    parts += [f"--input-size {facts.input_size}", f"--epochs {training.epochs}",
              f"--batch-size {training.batch_size}", f"--lr {training.lr:g}", f"--optimizer {training.optimizer}",
              f"--weight-decay {training.weight_decay:g}", f"--warmup-epochs {training.warmup_epochs:g}",
              f"--label-smoothing {training.label_smoothing:g}", f"--seed {training.seed}",
              "--small-input" if facts.small_input else "--no-small-input"]
    parts += [f"--grad-clip {training.grad_clip:g}"] if training.grad_clip else []
    parts += [f"--train-limit {data.train_limit}"] if data.train_limit else []
    parts += [f"--pretrained {training.pretrained}"] if training.pretrained else []
    return " ".join(parts)


def _front(config: SearchConfig, facts: RunFacts, table: pd.DataFrame) -> tuple[pd.DataFrame, float | None]:
    """(the Pareto set sorted by MACs with its deltas from the baseline, paper names and retrain commands, the
    baseline's top-1 where it was trained)."""
    front = pareto_set(table, list(config.objectives)).sort_values(["macs", "params", "number"]).reset_index(drop=True)
    candidates = eligible(table)
    baseline_rows = candidates[candidates["arch"] == facts.baseline_arch]
    baseline_top1 = float(baseline_rows["top1"].iloc[0]) if not baseline_rows.empty else None
    baseline_top5 = float(baseline_rows["top5"].iloc[0]) if not baseline_rows.empty else None
    names = paper_variant_names(front["arch"].unique())
    front = front.assign(
        d_top1=front["top1"] - baseline_top1 if baseline_top1 is not None else np.nan,
        d_top5=front["top5"] - baseline_top5 if baseline_top5 is not None else np.nan,
        d_macs_pct=(front["macs"] / facts.baseline_macs - 1) * 100,
        d_params_pct=(front["params"] / facts.baseline_params - 1) * 100,
        paper_variant=front["arch"].map(lambda arch: names.get(arch, "")),
        command=[reproduce_command(arch, config, facts) for arch in front["arch"]])
    return front, baseline_top1


def not_on_front(table: pd.DataFrame) -> pd.DataFrame:
    """Pruned, failed and infeasible trials (and complete ones below min_top1) with why they cannot count."""
    budget = table["epochs_budget"]
    reasons = pd.Series("", index=table.index, dtype=object)
    pruned = table["status"] == PRUNED
    reasons[pruned] = [f"stopped by the scheduler after epoch {int(d)} of {int(b)}"
                       for d, b in zip(table.loc[pruned, "epochs_done"].fillna(0), budget[pruned].fillna(0))]
    errors = table["error"] if "error" in table else pd.Series(None, index=table.index, dtype=object)
    for status in (FAILED, INFEASIBLE):
        rows = table["status"] == status
        reasons[rows] = errors[rows].fillna(status.lower()).astype(str)
    below = (table["status"] == COMPLETE) & ~table["feasible"].fillna(True).astype(bool)
    reasons[below] = "top-1 below constraints.min_top1"
    return table.assign(reason=reasons)[reasons != ""]


def _stopped(table: pd.DataFrame, config: SearchConfig, journal: Path) -> bool:
    """Whether the run has not finished (stopped, or still running); a journal the report cannot read (copied
    without its study, corrupt) leaves the rows to judge, as they do where there is no journal."""
    try:
        return interrupted(table, config.n_trials, journal)
    except (ValueError, KeyError):  # optuna: a line that is not JSON; an empty journal has no study
        return len(table) < config.n_trials


def collect(run_dir: str | os.PathLike) -> ReportData:
    """Read ``run_dir`` and derive everything the report shows, once."""
    config, config_text, facts, table = load_run(run_dir)
    reference, floor = reference_point(config, facts, table)
    front, baseline_top1 = _front(config, facts, table)
    front_losses = normalised_losses(front, reference)
    knee = knee_point(front_losses)
    confirmed, paths = read_confirmation(Path(run_dir), config.objectives), RunPaths(Path(run_dir))
    return ReportData(name=config.name, config=config, config_text=config_text, facts=facts, table=table,
                      front=front, others=not_on_front(table),
                      blocks=[c for c in table.columns if c.startswith(PARAM_PREFIX)], reference=reference,
                      floor=floor, hypervolume=hypervolume(front_losses),
                      hypervolume_history=hypervolume_history(table, list(config.objectives), reference),
                      baseline_top1=baseline_top1, knee=int(front["number"].iloc[knee]) if knee is not None else None,
                      ablation=cell_statistics(config, table) if config.study else None,
                      claims=study_claims(config, table) if config.study else None,
                      confirmed=confirmed, stopped=_stopped(table, config, paths.journal),
                      confirm_pending=confirmed is None and RunPaths(paths.root / CONFIRM_DIR).config.is_file())
