"""The front's measures: reference point, normalised losses, hypervolume (now and after every trial) and knee.

The hypervolume is computed after normalising every objective so that the reference point is 1 in each (each
objective's ``loss`` in ``search.objectives``): top-1 as ``(100 - top1) / (100 - floor)`` and each cost as
``cost / reference cost``. By default the reference is the baseline backbone's cost and an accuracy floor of
``constraints.min_top1`` or else chance level, so the hypervolume is the share of the box "cheaper than the
baseline and better than the floor" that the front dominates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import SearchConfig
from ..search._private import compute_hypervolume
from ..search.objectives import get_objective
from ..search.records import eligible, pareto_mask
from ..search.rundir import RunFacts


def reference_point(config: SearchConfig, facts: RunFacts, table: pd.DataFrame) -> tuple[dict[str, float], float]:
    """(objective -> reference value, accuracy floor): the baseline's cost, min_top1 or chance level."""
    floor = config.constraints.min_top1 if config.constraints.min_top1 is not None else 100.0 / facts.num_classes
    return {o: get_objective(o).reference(facts, table, floor) for o in config.objectives}, floor


def normalised_losses(frame: pd.DataFrame, reference: dict[str, float]) -> np.ndarray:
    """n x k losses to minimise, 1 at the reference point in every objective, 0 at the ideal."""
    columns = []
    for name, ref in reference.items():
        objective = get_objective(name)
        columns.append(objective.loss(frame[objective.column].to_numpy(dtype=float), ref))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def hypervolume(losses: np.ndarray) -> float:
    """Hypervolume dominated by ``losses`` within the unit box (reference point 1 in every objective)."""
    inside = losses[np.all(losses < 1.0, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(compute_hypervolume(inside, np.ones(losses.shape[1])))


def hypervolume_history(table: pd.DataFrame, objectives, reference: dict[str, float]) -> pd.DataFrame:
    """Hypervolume of the front of trials 0..n for every trial number n (recomputed only when the front moves)."""
    candidates = eligible(table).sort_values("number")
    losses = normalised_losses(candidates, reference)
    numbers = table["number"].sort_values().to_numpy()
    rank = {number: i for i, number in enumerate(candidates["number"])}
    front: np.ndarray = np.empty((0, losses.shape[1]))
    value, values = 0.0, []
    for number in numbers:
        i = rank.get(number)
        if i is not None and not np.any(np.all(front <= losses[i], axis=1)):
            front = np.vstack([front, losses[i]])
            front = front[pareto_mask(front, ["min"] * front.shape[1])]
            value = hypervolume(front)
        values.append(value)
    return pd.DataFrame({"number": numbers, "hypervolume": values})
