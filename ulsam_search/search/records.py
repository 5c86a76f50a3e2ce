"""The results table of a search: one row per finished trial, written atomically; the Pareto set.

The Optuna study (``optuna.log``) is the single source of truth: every row is rebuilt from a trial's state, values
and user attributes, so the table and the study cannot disagree, and a crash between the two cannot lose a trial.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from .._io import atomic_path

COMPLETE, PRUNED, FAILED, INFEASIBLE = "COMPLETE", "PRUNED", "FAILED", "INFEASIBLE"
STATUSES = (COMPLETE, PRUNED, FAILED, INFEASIBLE)
COLUMNS = ("number", "trial_id", "arch", "backbone", "width", "top1", "top5", "val_loss", "macs", "params", "flops",
           "latency_ms", "epochs_done", "epochs_budget", "status", "feasible", "error", "seed", "seconds", "node",
           "duplicate_of", "started_at", "retries", "resumed_from_epoch")
# Columns read back as text whatever they hold: a node id can be all digits, a block choice `+4` looks like a number.
TEXT_COLUMNS = ("trial_id", "arch", "backbone", "status", "error", "node")
# Objective name -> (column, direction) as the table stores it.
OBJECTIVE_COLUMNS = {"top1": ("top1", "max"), "macs": ("macs", "min"), "params": ("params", "min"),
                     "latency": ("latency_ms", "min")}


def trials_table(study, block_columns: Sequence[str]) -> pd.DataFrame:
    """A row per finished trial of ``study``; ``block_columns`` are the ``block_<k>`` choice columns."""
    import optuna

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING):
            continue
        attrs = trial.user_attrs
        row = {column: attrs.get(column) for column in COLUMNS}
        row["number"] = trial.number
        row["status"] = attrs.get("status") or {optuna.trial.TrialState.PRUNED: PRUNED,
                                                 optuna.trial.TrialState.FAIL: FAILED}.get(trial.state, COMPLETE)
        choices = attrs.get("choices", {})
        row.update({column: choices.get(column, "none") for column in block_columns})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *block_columns])
    return frame.sort_values("number", kind="stable").reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` as CSV atomically: readers see the old table or the new one, never half of one."""
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Which rows of ``values`` (n x k) no other row dominates, for ``directions`` of 'min'/'max' per column.

    Optuna's own non-dominated test (the one ``Study.best_trials`` uses); equal rows are all kept.
    """
    from optuna.study._multi_objective import _is_pareto_front

    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    return _is_pareto_front(np.asarray(values, dtype=float) * signs, assume_unique_lexsorted=False)


def eligible(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials that may be on a front: COMPLETE and feasible (pruned, failed and infeasible ones never count)."""
    return frame[(frame["status"] == COMPLETE) & frame["feasible"].fillna(True).astype(bool)]


def pareto_set(frame: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The non-dominated rows among ``eligible`` trials, one per ARCH."""
    candidates = eligible(frame).drop_duplicates("arch")
    if candidates.empty:
        return candidates
    columns = [OBJECTIVE_COLUMNS[o][0] for o in objectives]
    directions = [OBJECTIVE_COLUMNS[o][1] for o in objectives]
    mask = pareto_mask(candidates[columns].to_numpy(dtype=float), directions)
    return candidates[mask].sort_values(columns[1] if len(columns) > 1 else columns[0])
