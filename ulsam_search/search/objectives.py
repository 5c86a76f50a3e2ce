"""The objectives registry: the one place an objective is spelled (config choice, result key, direction, label).

Config validation, the searcher, the scheduler, the trials table, the report, its plots and the progress view all
read an objective from here. An objective's *reference* is the point the report's hypervolume is measured from
(the baseline's cost, or the accuracy floor); its *loss* maps raw values to [0, 1] at the reference and 0 at the
ideal, so objectives of different units share one hypervolume.

Import-light on purpose (no torch, Ray or Optuna): ``config`` reads the names from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._registry import Registry

if TYPE_CHECKING:
    import numpy as np

COMPLETE = "COMPLETE"  # the trials table's status of a trained trial (``records`` holds the others)


@dataclass(frozen=True)
class Objective:
    name: str  # as the config's ``objectives:`` lists it
    column: str  # the trial result's key and the trials.csv column
    direction: str  # "max" or "min"
    label: str  # axis and table label
    worst: float | None  # told for a trial never trained (infeasible); None: always known before training (a cost)
    reference: Callable[..., float]  # (facts, table, floor) -> the reference value in raw units
    loss: Callable[[np.ndarray, float], np.ndarray]  # (values, reference) -> 1 at the reference, 0 at the ideal

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "max" else "minimize"


OBJECTIVES: Registry[Objective] = Registry("objective")


def register_objective(objective: Objective) -> Objective:
    """Add ``objective``; a name is registered once."""
    if objective.direction not in ("max", "min"):
        raise ValueError(f"objective {objective.name!r}: direction must be max or min, got {objective.direction!r}")
    return OBJECTIVES.register(objective.name, objective)


def list_objectives() -> tuple[str, ...]:
    return OBJECTIVES.names()


def get_objective(name: str) -> Objective:
    return OBJECTIVES[name]


def baseline_latency(table, facts) -> float | None:
    """The baseline's measured ms per image in ``table``, if a trial timed it."""
    if "latency_ms" not in table:
        return None
    timed = table.loc[(table["arch"] == facts.baseline_arch) & table["latency_ms"].notna(), "latency_ms"]
    return float(timed.iloc[0]) if not timed.empty else None


def _latency_reference(facts, table, floor: float) -> float:
    """The baseline's measured latency, else the slowest complete trial's."""
    baseline = baseline_latency(table, facts)
    return baseline if baseline is not None else float(table.loc[table["status"] == COMPLETE, "latency_ms"].max())


def _accuracy_loss(values: np.ndarray, reference: float) -> np.ndarray:
    return (100.0 - values) / (100.0 - reference)


def _cost_loss(values: np.ndarray, reference: float) -> np.ndarray:
    return values / reference


register_objective(Objective("top1", "top1", "max", "top-1 %", 0.0, lambda facts, table, floor: floor,
                             _accuracy_loss))
register_objective(Objective("macs", "macs", "min", "MACs", None,
                             lambda facts, table, floor: float(facts.baseline_macs), _cost_loss))
register_objective(Objective("params", "params", "min", "parameters", None,
                             lambda facts, table, floor: float(facts.baseline_params), _cost_loss))
register_objective(Objective("latency", "latency_ms", "min", "latency", math.inf, _latency_reference, _cost_loss))
