"""The trial record and the results table of a search: one row per finished trial, written atomically; the Pareto set.

The Optuna study (``optuna.log``) is the single source of truth: a trial's record lives in its user attributes
(``TrialRecord``, written and read only here), and every row of the table is rebuilt from a trial's state and
record, so the table and the study cannot disagree, and a crash between the two cannot lose a trial.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .._io import atomic_path
from ..models.arch import NONE
from .objectives import COMPLETE, get_objective
from .rundir import STUDY_NAME

PRUNED, FAILED, INFEASIBLE = "PRUNED", "FAILED", "INFEASIBLE"
STATUSES = (COMPLETE, PRUNED, FAILED, INFEASIBLE)
COLUMNS = ("number", "trial_id", "arch", "backbone", "width", "top1", "top5", "val_loss", "macs", "params", "flops",
           "latency_ms", "epochs_done", "epochs_budget", "status", "feasible", "error", "seed", "seconds", "node",
           "duplicate_of", "retry_of", "started_at", "retries", "resumed_from_epoch")
# Columns read back as text whatever they hold: a node id can be all digits, a block choice `+4` looks like a number.
TEXT_COLUMNS = ("trial_id", "arch", "backbone", "status", "error", "node")
# The Optuna constraints every trial carries (> 0 violates; NSGA-II, TPE and GP read them).
CONSTRAINTS = ("max_macs", "max_params", "max_latency_ms", "min_top1")


@dataclass(frozen=True)
class TrialRecord:
    """What the run knows of a trial, kept in its Optuna user attributes; None is "not known" (not stored)."""

    arch: str | None = None
    choices: dict[str, str] | None = None  # block_<k> -> choice, the blocks the space searches
    backbone: str | None = None
    width: float | None = None
    seed: int | None = None
    macs: int | None = None
    params: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    epochs_budget: int | None = None
    status: str | None = None  # PRUNED, FAILED, INFEASIBLE or COMPLETE; None while it runs
    feasible: bool | None = None
    error: str | None = None
    trial_id: str | None = None  # Ray Tune's
    top1: float | None = None
    top5: float | None = None
    val_loss: float | None = None
    epochs_done: int | None = None
    history: list[dict] | None = None  # per epoch: epoch, top1, top5, val_loss, train_seconds
    seconds: float | None = None
    node: str | None = None
    started_at: float | None = None
    resumed_from_epoch: int | None = None
    retries: int | None = None
    duplicate_of: int | None = None  # the trial number whose results it copies (same ARCH and seed)
    promoted_through: int | None = None  # the last epoch the scheduler let it go on after
    retry_of: int | None = None  # the FAILED trial number it trains again (``retry_failed``), beyond n_trials

    @classmethod
    def read(cls, trial) -> TrialRecord:
        """The record of a live or frozen Optuna trial (attributes of other versions are left out)."""
        attrs = trial.user_attrs
        return cls(**{name: attrs[name] for name in _FIELDS if name in attrs})

    def known(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


_FIELDS = tuple(field.name for field in dataclasses.fields(TrialRecord))


def write_record(trial, **fields: Any) -> None:
    """Store ``fields`` of a ``TrialRecord`` in a live Optuna trial's user attributes; a None field is skipped."""
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise TypeError(f"not fields of a TrialRecord: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        if value is not None:
            trial.set_user_attr(name, value)


def write_constraints(trial, **violations: float) -> None:
    """Optuna constraint values, the same four on every trial (those not given are 0: met)."""
    for key in CONSTRAINTS:
        trial.set_constraint(key, float(violations.get(key, 0.0)))


def journal_storage(path: str | os.PathLike):
    """The Optuna storage over a run's journal (``optuna.log``)."""
    import optuna

    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def unfinished_trials(journal: str | os.PathLike) -> int:
    """Trials a run's journal holds as running or queued: an interrupted run leaves some, a finished one none
    (counting rows against n_trials cannot tell: retries of failed trials run beyond it)."""
    import optuna

    if not os.path.isfile(journal):
        return 0
    study = optuna.load_study(study_name=STUDY_NAME, storage=journal_storage(journal))
    return sum(not trial.state.is_finished() for trial in study.get_trials(deepcopy=False))


def retried_failures(table: pd.DataFrame) -> int:
    """Rows that train a failed trial again (``retry_failed``): they run beyond n_trials, so a count of the
    budget's own trials leaves them out (a table from before the column existed has none)."""
    return int(table["retry_of"].notna().sum()) if "retry_of" in table.columns else 0


def interrupted(table: pd.DataFrame, n_trials: int, journal: str | os.PathLike) -> bool:
    """Whether a run stopped before it ended: fewer rows than its budget, or trials left running or queued."""
    return len(table) < n_trials or unfinished_trials(journal) > 0


def trials_table(study, block_columns: Sequence[str]) -> pd.DataFrame:
    """A row per finished trial of ``study``; ``block_columns`` are the ``block_<k>`` choice columns."""
    import optuna

    state_status = {optuna.trial.TrialState.PRUNED: PRUNED, optuna.trial.TrialState.FAIL: FAILED}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING):
            continue
        record = TrialRecord.read(trial)
        row = {column: trial.number if column == "number" else getattr(record, column) for column in COLUMNS}
        row["status"] = record.status or state_status.get(trial.state, COMPLETE)
        choices = record.choices or {}
        row.update({column: choices.get(column, NONE) for column in block_columns})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *block_columns])
    return frame.sort_values("number", kind="stable").reset_index(drop=True)


# The whole-number columns of trials.csv: a column with a missing value would otherwise be written as floats.
INTEGER_COLUMNS = ("number", *(name for name, kind in typing.get_type_hints(TrialRecord).items()
                               if kind == int | None and name in COLUMNS))


def whole_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its INTEGER_COLUMNS as nullable integers, so a CSV says "3", not "3.0", beside a blank."""
    return frame.astype({column: "Int64" for column in INTEGER_COLUMNS if column in frame.columns})


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` as CSV atomically: readers see the old table or the new one, never half of one."""
    with atomic_path(path) as temporary:
        whole_numbers(frame).to_csv(temporary, index=False)


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Which rows of ``values`` (n x k) no other row dominates, for ``directions`` of 'min'/'max' per column.

    Optuna's own non-dominated test (the one ``Study.best_trials`` uses); equal rows are all kept.
    """
    from ._private import is_pareto_front

    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    return is_pareto_front(np.asarray(values, dtype=float) * signs)


def eligible(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials that may be on a front: COMPLETE and feasible (pruned, failed and infeasible ones never count)."""
    return frame[(frame["status"] == COMPLETE) & frame["feasible"].fillna(True).astype(bool)]


def pareto_set(frame: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The non-dominated rows among ``eligible`` trials, one per ARCH."""
    candidates = eligible(frame).drop_duplicates("arch")
    if candidates.empty:
        return candidates
    columns = [get_objective(o).column for o in objectives]
    directions = [get_objective(o).direction for o in objectives]
    mask = pareto_mask(candidates[columns].to_numpy(dtype=float), directions)
    return candidates[mask].sort_values(columns[1] if len(columns) > 1 else columns[0])


def scaled_to_range(losses: np.ndarray) -> np.ndarray:
    """Each column of ``losses`` mapped onto [0, 1] by its own range (a constant column to 0)."""
    spread = np.ptp(losses, axis=0)
    return (losses - losses.min(axis=0)) / np.where(spread > 0, spread, 1.0)


def knee_point(losses: np.ndarray) -> int | None:
    """Row of the front closest to the utopia point once each objective is scaled to the front's own range."""
    if len(losses) == 0:
        return None
    return int(np.argmin(np.linalg.norm(scaled_to_range(losses), axis=1)))


def crowding_distance(losses: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row of a front (n x k, to minimise): per objective, the gap between its
    neighbours over the front's range, summed; the extremes of each objective are infinitely far."""
    n = len(losses)
    distance = np.zeros(n)
    if n < 3:
        return np.full(n, np.inf)
    for column in np.asarray(losses, dtype=float).T:
        order = np.argsort(column, kind="stable")
        spread = column[order[-1]] - column[order[0]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if spread > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / spread
    return distance
